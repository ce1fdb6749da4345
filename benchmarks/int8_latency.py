"""INT8 / FP32 latency per backend, measured side by side: ONNX Runtime and OpenVINO, 224x224.

For each model (random weights: latency does not depend on their values) the FP32 ONNX export
is quantized four ways and every artifact is timed in one process, in alternating rounds
(edgecnn.bench.rounds.measure_in_rounds), batch 1, 2 threads:

* ``ort_fp32``         FP32 ONNX in ONNX Runtime (CPU EP)
* ``ort_int8_stock``   ONNX Runtime's quantize_static layout as it comes (``tuned=False``)
* ``ort_int8``         the tuned ``onnxruntime`` layout (edgecnn.quantize.onnxruntime_static)
* ``ort_int8_7bit``    the tuned layout with reduce_range (7-bit weights): its speed here
* ``ov_fp32``          FP32 ONNX in OpenVINO (CPU plugin, f32 precision hint)
* ``ov_int8_nncf_default``  ``nncf.quantize(model, dataset)`` with every default
* ``ov_int8``          edgecnn's openvino target (edgecnn.quantize.openvino_nncf, minmax)

Calibration: 64 images of imagenet-sample's val split (it has no train split) at 224.
Acceptance (issue 5): ORT INT8/FP32 <= 0.75 MobileNetV2, 0.40 ResNet-50, 0.85 EfficientNet-B0,
0.85 MobileNetV3-Large; OpenVINO INT8/FP32 <= the NNCF-default ratio.

    flock /tmp/edgecnn-cpu.lock .venv/bin/python benchmarks/int8_latency.py
    .venv/bin/python benchmarks/int8_latency.py --archs mobilenet_v2 --rounds 2   # quick look

Writes benchmarks/results/int8_latency.json (``--out`` to change) and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ACCEPTANCE = {"mobilenet_v2": 0.75, "resnet50": 0.40, "efficientnet_b0": 0.85,
              "mobilenet_v3_large": 0.85}
RESULTS = Path(__file__).parent / "results"


def build_artifacts(arch: str, folder: Path, calibration, resolution: int) -> dict:
    import nncf
    import openvino as ov
    import torch

    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model
    from edgecnn.quantize.onnxruntime_static import quantize_static_onnx
    from edgecnn.quantize.openvino_nncf import quantize_openvino

    torch.manual_seed(0)
    fp32 = folder / f"{arch}.onnx"
    export_onnx(create_model(arch, num_classes=1000), fp32, resolution)
    infos = {
        "ort_int8_stock": quantize_static_onnx(fp32, folder / f"{arch}.stock.onnx", calibration,
                                               tuned=False),
        "ort_int8": quantize_static_onnx(fp32, folder / f"{arch}.int8.onnx", calibration),
        "ort_int8_7bit": quantize_static_onnx(fp32, folder / f"{arch}.int8_7bit.onnx",
                                              calibration, reduce_range=True),
        "ov_int8": quantize_openvino(fp32, folder / f"{arch}.int8.xml", calibration),
    }
    # The NNCF baseline exactly as its documentation's first example calls it.
    default = nncf.quantize(ov.Core().read_model(str(fp32)),
                            nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))]),
                            subset_size=len(calibration))
    ov.save_model(default, str(folder / f"{arch}.nncf_default.xml"), compress_to_fp16=False)
    paths = {"ort_fp32": fp32, "ov_fp32": fp32,
             "ov_int8_nncf_default": folder / f"{arch}.nncf_default.xml",
             **{k: info.path for k, info in infos.items()}}
    described = {k: {kk: vv for kk, vv in info.to_dict().items() if kk != "path"}
                 for k, info in infos.items()}
    described["ov_int8_nncf_default"] = {"quantizer": f"nncf {nncf.__version__} quantize, "
                                                      "all defaults"}
    return {"paths": paths, "quantize": described}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ACCEPTANCE))
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "int8_latency.json")
    args = parser.parse_args()

    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.backends.openvino_backend import OpenVINORunner
    from edgecnn.bench.rounds import measure_in_rounds
    from edgecnn.data import calibration_indices, load_split
    from edgecnn.data.eval_batches import normalize_nchw
    from edgecnn.models import create_model
    from edgecnn.targets.context import run_context

    card = create_model("mobilenet_v2", num_classes=1000).card  # ImageNet mean/std
    val = load_split("imagenet-sample", "val", size=args.resolution)
    picks = calibration_indices(len(val), args.samples, 0)
    calibration = normalize_nchw(val.images[picks], card.mean, card.std)
    results: dict = {}
    for arch in args.archs:
        with tempfile.TemporaryDirectory(prefix=f"int8-latency-{arch}-") as work:
            built = build_artifacts(arch, Path(work), calibration, args.resolution)
            runners = {k: (OpenVINORunner(p, threads=args.threads) if k.startswith("ov_")
                           else OnnxRuntimeRunner(p, threads=args.threads))
                       for k, p in built["paths"].items()}
            latency = measure_in_rounds(runners, [1], rounds=args.rounds, warmup=10,
                                        iterations=20, seconds=1.0)
        p50 = {k: v["1"]["p50_ms"] for k, v in latency.items()}
        ratios = {
            "ort_int8_stock": p50["ort_int8_stock"] / p50["ort_fp32"],
            "ort_int8": p50["ort_int8"] / p50["ort_fp32"],
            "ort_int8_7bit": p50["ort_int8_7bit"] / p50["ort_fp32"],
            "ov_int8_nncf_default": p50["ov_int8_nncf_default"] / p50["ov_fp32"],
            "ov_int8": p50["ov_int8"] / p50["ov_fp32"],
        }
        limit = ACCEPTANCE.get(arch)
        results[arch] = {
            "p50_ms": p50, "int8_over_fp32_p50": ratios, "latency": latency,
            "quantize": built["quantize"],
            "acceptance": {
                "ort_limit": limit,
                "ort_pass": None if limit is None else ratios["ort_int8"] <= limit,
                "ov_limit": ratios["ov_int8_nncf_default"],
                "ov_pass": ratios["ov_int8"] <= ratios["ov_int8_nncf_default"]}}
        print(f"{arch}: ORT FP32 {p50['ort_fp32']:.2f} ms, INT8/FP32 stock "
              f"{ratios['ort_int8_stock']:.3f}, tuned {ratios['ort_int8']:.3f} (limit {limit}), "
              f"tuned 7-bit {ratios['ort_int8_7bit']:.3f} | OpenVINO FP32 {p50['ov_fp32']:.2f} "
              f"ms, INT8/FP32 NNCF default {ratios['ov_int8_nncf_default']:.3f}, edgecnn "
              f"{ratios['ov_int8']:.3f}", flush=True)
    from importlib import metadata

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "versions": {p: metadata.version(p) for p in ("onnxruntime", "openvino", "nncf")},
        "what": __doc__.split("\n\n")[0], "resolution": args.resolution, "batch": 1,
        "threads": args.threads, "rounds": args.rounds,
        "calibration": f"{args.samples} images of {val.description}",
        "models": results, "context": run_context(args.threads),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""Where the tensorrt target's INT8 ONNX puts Q/DQ, per op type and input role, beside a direct
ModelOpt run on the same graph: MobileNetV2, MobileNetV3-Large, EfficientNet-B0, ResNet-50 at
224x224 (random weights, BatchNorm statistics randomised; placement does not depend on them).

tests/quantize/test_tensorrt_layout.py checks three of these at 64x64 node by node; this prints
the four-model table at the resolution the models are deployed at (minutes on two cores).

    nice -n 19 .venv/bin/python benchmarks/tensorrt_placement.py [--resolution 224]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

MODELS = ("mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "resnet50")


def randomise_batchnorm(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_(0, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()

    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model
    from edgecnn.quantize.modelopt_tensorrt import run_modelopt
    from edgecnn.quantize.qdq_placement import format_table, placement, role_table
    from edgecnn.quantize.targets import quantize_for_target

    tables, differences = {}, {}
    with tempfile.TemporaryDirectory(prefix="edgecnn-placement-") as work:
        for name in args.models:
            model = create_model(name).eval()
            randomise_batchnorm(model)
            fp32 = Path(work) / f"{name}.onnx"
            export_onnx(model, fp32, args.resolution)
            images = np.random.default_rng(0).standard_normal(
                (args.samples, 3, args.resolution, args.resolution)).astype(np.float32)
            target = Path(work) / f"{name}.int8.tensorrt.onnx"
            info = quantize_for_target("tensorrt", fp32, target, images, method="minmax")
            direct = Path(work) / f"{name}.direct.onnx"
            run_modelopt(fp32, direct, images, "max")
            ours, theirs = placement(target), placement(direct)
            differences[name] = sum(ours.get(n) != theirs.get(n) for n in set(ours) | set(theirs))
            tables[name] = {"tensorrt target": role_table(ours),
                            "ModelOpt direct": role_table(theirs)}
            print(f"{name}: {info.quantizer}; nodes placed differently from ModelOpt: "
                  f"{differences[name]}", flush=True)
    print(f"\nQ/DQ-fed inputs / inputs of that role, {args.resolution}x{args.resolution}:\n")
    print(format_table(tables))
    if any(differences.values()):
        raise SystemExit(f"placement differs from ModelOpt's: {differences}")


if __name__ == "__main__":
    main()

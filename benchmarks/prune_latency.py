"""ONNX Runtime latency of a model before and after structured pruning to a fraction of its MACs.

Latency does not depend on the weights' values, so this needs no training: the model (random
weights, or a checkpoint with --weights) is pruned with edgecnn.prune.structured, both versions
are exported to ONNX and timed side by side in alternating rounds (batch 1 and 8, 2 threads).
Accuracy after fine-tuning is the recipe stage's job (issue 8), not this script's.

    .venv/bin/python benchmarks/prune_latency.py --arch resnet20 [--macs-fraction 0.5]
    .venv/bin/python benchmarks/prune_latency.py --arch mobilenet_v2 --cifar-stem --width 0.5

Writes benchmarks/results/prune_latency_<arch>.json and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.bench import run_context
from edgecnn.bench.rounds import measure_in_rounds
from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.prune.structured import prune_channels

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--cifar-stem", action="store_true")
    parser.add_argument("--width", type=float)
    parser.add_argument("--weights")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--macs-fraction", type=float, default=0.5)
    parser.add_argument("--importance", default="l1")
    parser.add_argument("--round-to", type=int, help="keep channel counts multiples of this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    torch.manual_seed(0)
    options = {"width_mult": args.width} if args.width else {}
    kwargs = {"cifar_stem": True} if args.cifar_stem else {}
    dense = create_model(args.arch, pretrained=args.weights, num_classes=10, **kwargs, **options)
    pruned = create_model(args.arch, pretrained=args.weights, num_classes=10, **kwargs,
                          **options)
    pruned.load_state_dict(dense.state_dict())
    result = prune_channels(pruned, args.resolution, macs_fraction=args.macs_fraction,
                            importance=args.importance, round_to=args.round_to)
    with tempfile.TemporaryDirectory() as work:
        paths = {"dense": Path(work) / "dense.onnx", "pruned": Path(work) / "pruned.onnx"}
        export_onnx(dense, paths["dense"], args.resolution)
        export_onnx(pruned, paths["pruned"], args.resolution)
        runners = {k: OnnxRuntimeRunner(p, threads=args.threads) for k, p in paths.items()}
        latency = measure_in_rounds(runners, [1, 8], rounds=args.rounds, warmup=20,
                                    iterations=200, seconds=1.0)
    ratios = {b: latency["pruned"][b]["p50_ms"] / latency["dense"][b]["p50_ms"]
              for b in ("1", "8")}
    suffix = f"_round{args.round_to}" if args.round_to else ""
    out = RESULTS / f"prune_latency_{args.arch}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "arch": args.arch, "cifar_stem": args.cifar_stem, "width_mult": args.width,
        "resolution": args.resolution, "round_to": args.round_to, "prune": result.to_dict(),
        "latency": latency,
        "pruned_over_dense_p50": ratios, "context": run_context(args.threads),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, indent=2) + "\n")
    print(f"{args.arch}: MACs {result.macs_before:,} -> {result.macs_after:,} "
          f"({result.macs_fraction:.2f}), params {result.params_before:,} -> "
          f"{result.params_after:,}; ONNX Runtime p50 pruned/dense: batch 1 {ratios['1']:.2f}, "
          f"batch 8 {ratios['8']:.2f}; written to {out}")


if __name__ == "__main__":
    main()

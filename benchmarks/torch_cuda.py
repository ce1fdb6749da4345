"""The desktop-GPU baseline: PyTorch eager FP32 / FP16 / channels_last / torch.compile.

For MobileNetV2, ResNet-50 and EfficientNet-B0 at 224x224, batch 1 and 64, on the visible CUDA
GPU, timed with CUDA events (edgecnn/bench/torch_cuda.py). Random weights: latency does not
depend on them.

    python benchmarks/torch_cuda.py [--iterations 100] [--models mobilenet_v2,resnet50]

Writes benchmarks/results/torch_cuda_<gpu>.json and prints the table. Where no GPU is visible it
says so and exits 2 without writing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    import torch

    from edgecnn.bench.torch_cuda import VARIANTS, prepare, time_cuda, variant
    from edgecnn.models import create_model
    from edgecnn.targets.context import run_context

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet50,efficientnet_b0")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU is visible: nothing measured", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0)
    rows = []
    for arch in args.models.split(","):
        model = create_model(arch)
        for name in VARIANTS:
            spec = variant(name)
            prepared = prepare(model, spec)
            for batch in (int(b) for b in args.batches.split(",")):
                stats = time_cuda(prepared, spec, batch, 224, warmup=args.warmup,
                                  iterations=args.iterations)
                rows.append({"arch": arch, "variant": name, **stats.to_dict()})
                print(f"{arch:<16} {name:<20} batch {batch:>3}: p50 {stats.p50_ms:7.3f} ms  "
                      f"{stats.throughput:9.1f} img/s", flush=True)
    out = RESULTS / f"torch_cuda_{gpu.replace(' ', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "rows": rows,
                               "context": run_context(),
                               "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                         time.gmtime())}, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

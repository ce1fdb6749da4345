"""Training speed with and without explicit padding of tiny-map depthwise convolutions (CPU).

oneDNN computes depthwise weight gradients on maps smaller than the kernel with a slow generic
path (see edgecnn/models/onednn_workarounds.py). This measures training images/s of two copies of
the same model, one patched, taking turns step by step on the same random batches so machine
noise hits both alike.

    .venv/bin/python benchmarks/train_tiny_depthwise_padding.py [--width 0.5] [--steps 40]

Writes benchmarks/results/train_tiny_depthwise_padding_w{WIDTH}.json and prints the ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgecnn.bench.context import cpu_model, cpu_vector_extensions
from edgecnn.models import create_model
from edgecnn.models.onednn_workarounds import explicit_padding_on_tiny_depthwise

RESULTS = Path(__file__).parent / "results"


def step_seconds(model, optimizer, x, y) -> float:
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    args = parser.parse_args()

    torch.manual_seed(0)
    plain = create_model(args.arch, num_classes=10, cifar_stem=True, width_mult=args.width)
    plain = plain.to(memory_format=torch.channels_last).train()
    patched = copy.deepcopy(plain)
    models = {"plain": plain, "patched": patched}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True)
                  for k, m in models.items()}
    shape = (args.batch_size, 3, args.resolution, args.resolution)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,))
    seconds = dict.fromkeys(models, 0.0)
    with explicit_padding_on_tiny_depthwise(patched, shape) as patched_layers:
        for key in models:  # warm-up: oneDNN builds its kernels on first use
            for _ in range(3):
                step_seconds(models[key], optimizers[key], x, y)
        for i in range(args.steps):
            for key in (["plain", "patched"] if i % 2 == 0 else ["patched", "plain"]):
                seconds[key] += step_seconds(models[key], optimizers[key], x, y)
    rate = {k: args.steps * args.batch_size / s for k, s in seconds.items()}
    result = {
        "benchmark": "CPU training throughput with explicit padding of tiny-map depthwise convs",
        "arch": args.arch, "width_mult": args.width, "resolution": args.resolution,
        "cifar_stem": True, "batch_size": args.batch_size, "steps": args.steps,
        "patched_layers": patched_layers,
        "plain_images_per_second": round(rate["plain"], 1),
        "patched_images_per_second": round(rate["patched"], 1),
        "speedup": round(rate["patched"] / rate["plain"], 3),
        "threads": torch.get_num_threads(),
        "machine": {"cpu": cpu_model(), "cpu_extensions": cpu_vector_extensions(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    out = RESULTS / f"train_tiny_depthwise_padding_w{args.width:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.arch} w{args.width:g}: {patched_layers} layers patched; patched / plain = "
          f"{result['speedup']:.3f} ({rate['patched']:.0f} vs {rate['plain']:.0f} img/s); "
          f"written to {out}")


if __name__ == "__main__":
    main()

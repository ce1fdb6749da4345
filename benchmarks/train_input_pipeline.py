"""Is CNN training on CIFAR-10 (ResNet-20 by default) limited by its input pipeline?

Measures training images/s of the same model and optimizer fed three ways in one process. The
first two take turns step by step, so machine noise hits both alike; the threaded loader, whose
producer would work during the other steps, is timed in a block of its own in each round:

* pipeline: the loader as the trainer uses it on a CPU — uint8 images in memory, CIFAR
  augmentation (pad 4, random crop, flip) and normalisation on the fly, prepared inline;
* threaded: the same, prepared by a background thread (what the trainer does on CUDA);
* preloaded: batches already augmented-free, normalised and resident as float tensors.

    .venv/bin/python benchmarks/train_input_pipeline.py [--rounds 3] [--batches 60]
    .venv/bin/python benchmarks/train_input_pipeline.py --arch mobilenet_v2 --cifar-stem \
        --width 0.5 --fp32

Writes benchmarks/results/train_input_pipeline[_ARCH].json and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgecnn.bench.context import cpu_model, cpu_vector_extensions
from edgecnn.data import BatchLoader, load_split
from edgecnn.models import create_model
from edgecnn.train.trainer import cpu_has_native_bf16

RESULTS = Path(__file__).parent / "results"


def train_step(model, optimizer, x, y, autocast_dtype) -> None:
    with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def interleaved(model, optimizer, sources: dict, steps: int, autocast_dtype) -> dict[str, float]:
    """Images/s of each source, taking turns step by step (order flipped every step) so that
    machine noise hits every source alike; each step's time includes fetching its batch."""
    model.train()
    iterators = {key: iter(source) for key, source in sources.items()}
    seconds, seen = dict.fromkeys(sources, 0.0), dict.fromkeys(sources, 0)
    keys = list(sources)
    for i in range(steps):
        for key in keys if i % 2 == 0 else keys[::-1]:
            start = time.perf_counter()
            x, y = next(iterators[key])
            train_step(model, optimizer, x, y, autocast_dtype)
            seconds[key] += time.perf_counter() - start
            seen[key] += len(y)
    return {key: seen[key] / seconds[key] for key in keys}


def train_steps(model, optimizer, batches, autocast_dtype) -> float:
    """Images per second over ``batches`` (an iterable of (x, y)) of real training steps."""
    model.train()
    seen, start = 0, time.perf_counter()
    for x, y in batches:
        train_step(model, optimizer, x, y, autocast_dtype)
        seen += len(y)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=60, help="training steps per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--cifar-stem", action="store_true")
    parser.add_argument("--width", type=float, help="width_mult (MobileNet, EfficientNet)")
    parser.add_argument("--fp32", action="store_true",
                        help="no bf16 autocast even where the CPU has native BF16")
    args = parser.parse_args()
    results = RESULTS / ("train_input_pipeline.json" if args.arch == "resnet20"
                         else f"train_input_pipeline_{args.arch}.json")

    train = load_split("cifar10-jpeg", "train", val_size=5000)
    options = {"width_mult": args.width} if args.width else {}
    model = create_model(args.arch, num_classes=10, cifar_stem=args.cifar_stem, **options)
    model = model.to(memory_format=torch.channels_last)
    mean, std = model.card.mean, model.card.std
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    autocast_dtype = torch.bfloat16 if cpu_has_native_bf16() and not args.fp32 else None
    loader = BatchLoader(train, args.batch_size, mean, std, shuffle=True, augment="cifar",
                         drop_last=True, channels_last=True, prefetch=0)
    threaded = BatchLoader(train, args.batch_size, mean, std, shuffle=True, augment="cifar",
                           drop_last=True, channels_last=True, prefetch=2)
    plain = BatchLoader(train, args.batch_size, mean, std, augment="none", drop_last=True,
                        channels_last=True, prefetch=0)
    preloaded = [batch for _, batch in zip(range(args.batches), plain, strict=False)]

    def first_batches(source):
        return (b for _, b in zip(range(args.batches), source, strict=False))

    train_steps(model, optimizer, preloaded[:10], autocast_dtype)  # warm-up
    rows = []
    for round_index in range(args.rounds):
        loader.set_epoch(round_index)
        threaded.set_epoch(round_index)
        row = {"round": round_index, **interleaved(
            model, optimizer, {"pipeline": loader, "preloaded": preloaded}, args.batches,
            autocast_dtype)}
        # The producer thread works while other steps run, so it is timed in a block of its own.
        row["threaded"] = train_steps(model, optimizer, first_batches(threaded), autocast_dtype)
        rows.append(row)
        print(f"round {round_index}: " + ", ".join(
            f"{k} {row[k]:.0f} img/s" for k in ("pipeline", "preloaded", "threaded")))
    pipeline = sum(r["pipeline"] for r in rows) / len(rows)
    thread = sum(r["threaded"] for r in rows) / len(rows)
    pre = sum(r["preloaded"] for r in rows) / len(rows)
    result = {
        "benchmark": f"{args.arch} CIFAR-10 training throughput: input pipeline vs preloaded",
        "arch": args.arch, "cifar_stem": args.cifar_stem, "width_mult": args.width,
        "pipeline_images_per_second": round(pipeline, 1),
        "threaded_images_per_second": round(thread, 1),
        "preloaded_images_per_second": round(pre, 1),
        "ratio": round(pipeline / pre, 3),
        "threaded_ratio": round(thread / pre, 3),
        "rounds": rows, "batch_size": args.batch_size, "batches_per_round": args.batches,
        "autocast": str(autocast_dtype), "threads": torch.get_num_threads(),
        "machine": {"cpu": cpu_model(), "cpu_extensions": cpu_vector_extensions(),
                    "cores": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"pipeline / preloaded = {result['ratio']:.3f} ({pipeline:.0f} vs {pre:.0f} img/s); "
          f"threaded / preloaded = {result['threaded_ratio']:.3f}; written to {results}")


if __name__ == "__main__":
    main()

"""Training speed of every point of a sweep, to choose a schedule that fits a time budget.

    flock /tmp/edgecnn-cpu.lock python benchmarks/zoo_training_speed.py sweeps/cifar10_zoo.yaml

For each point: the model its recipe builds (``edgecnn.train.trainer.build_model``), in the
recipe's memory format and autocast precision, with the trainer's CPU workaround, timed over
SGD steps of the recipe's batch size on random images of its resolution (the images' content
does not change the arithmetic) with the sweep's ``build_cpus`` threads. Printed: img/s and the
training time the recipe's schedule takes at that speed; the total is the zoo's training budget
(quantization, evaluation and benchmarks come on top: see the sweep's own timing).
Writes benchmarks/results/zoo/training_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgecnn.models.onednn_workarounds import explicit_padding_on_tiny_depthwise
from edgecnn.profile import profile_model
from edgecnn.recipe.loading import parse_assignment
from edgecnn.sweep.spec import load_sweep
from edgecnn.train.trainer import build_model, pick_precision, recipe_resolution

CIFAR10_TRAIN_IMAGES = 50_000


def images_per_second(model: torch.nn.Module, batch: int, resolution: int, channels_last: bool,
                      autocast: torch.dtype | None, seconds: float) -> float:
    x = torch.randn(batch, 3, resolution, resolution)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with explicit_padding_on_tiny_depthwise(model, (1, 3, resolution, resolution)):
        for _ in range(2):  # oneDNN picks and caches its kernels on the first steps
            step()
        steps, start = 0, time.perf_counter()
        while steps < 3 or time.perf_counter() - start < seconds:
            step()
            steps += 1
        return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per model")
    parser.add_argument("--only", nargs="*", help="point names to time (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a recipe field for every point, as edgecnn sweep --set")
    parser.add_argument("--out", default="benchmarks/results/zoo/training_speed.json")
    args = parser.parse_args()
    sweep = load_sweep(args.sweep, dict(parse_assignment(a) for a in args.set))
    torch.set_num_threads(sweep.build_cpus)
    rows, total = [], 0.0
    print(f"{'point':28s} {'MACs':>8s} {'img/s':>7s} {'train min':>9s}")
    for point in sweep.points:
        if args.only and point.name not in args.only:
            continue
        recipe, cfg = point.recipe, point.recipe.train
        resolution = recipe_resolution(recipe)
        model = build_model(recipe, 10)
        macs = profile_model(build_model(recipe, 10, device="meta"), resolution).macs
        speed = images_per_second(model, cfg.batch_size, resolution, cfg.channels_last,
                                  pick_precision(cfg.precision, torch.device("cpu")),
                                  args.seconds)
        train_images = CIFAR10_TRAIN_IMAGES - recipe.data.val_size
        minutes = cfg.epochs * train_images / speed / 60
        total += minutes
        rows.append({"point": point.name, "macs": macs, "resolution": resolution,
                     "images_per_second": round(speed, 1), "epochs": cfg.epochs,
                     "train_minutes": round(minutes, 2)})
        print(f"{point.name:28s} {macs / 1e6:7.1f}M {speed:7.0f} {minutes:9.1f}", flush=True)
    print(f"total training: {total:.0f} min for {len(rows)} models "
          f"({sweep.build_cpus} threads, {platform.processor() or platform.machine()})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sweep": args.sweep, "threads": sweep.build_cpus,
                               "torch": torch.__version__, "rows": rows,
                               "total_train_minutes": round(total, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""ONNX Runtime latency of a model before and after structured pruning, at several thread counts.

Two sources for the pair of models:

- a build of a pruning recipe (``--run runs/mobilenet_v2_pruned``): its dense and pruned FP32
  ONNX (``export/model.fp32.onnx``, ``export/model.pruned.fp32.onnx``), i.e. the fine-tuned
  models whose accuracy the build reported;
- an architecture pruned here (``--arch``): latency does not depend on the weights' values, so
  random weights (or ``--weights``) pruned with edgecnn.prune.structured to ``--macs-fraction``
  need no training.

Both models are timed side by side in alternating rounds (batch 1 and 8) once per thread count,
since at batch 1 a 32x32 model of a few M mult-adds is bound by per-operator overhead that a
second thread adds to rather than hides. A model pruned in another form than it is built in
(``make_prunable``: ResNet-20's zero-padding shortcuts become 1x1 selection convolutions, which
ONNX Runtime runs faster) gets a third model timed beside them, the dense one in that form
(random weights), and the pruned one is also compared with it: that ratio is the speed-up of
pruning alone.

    .venv/bin/python benchmarks/prune_latency.py --run runs/mobilenet_v2_pruned --threads 1,2
    .venv/bin/python benchmarks/prune_latency.py --arch resnet20 --round-to 8
    .venv/bin/python benchmarks/prune_latency.py --arch mobilenet_v2 --cifar-stem --width 0.5 \
        --round-to 16

Writes benchmarks/results/prune_latency_<name>.json and prints the pruned/dense p50 ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.bench.rounds import measure_in_rounds
from edgecnn.targets.context import run_context

RESULTS = Path(__file__).parent / "results"
DENSE_OTHER_FORM = "dense_prunable_form"
BATCHES = [1, 8]


def prune_here(args: argparse.Namespace, work: Path) -> tuple[dict[str, Path], dict]:
    """Dense and pruned ONNX of ``args.arch``, pruned in this process."""
    import torch

    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model
    from edgecnn.prune.structured import prune_channels

    torch.manual_seed(0)
    options = {"width_mult": args.width} if args.width else {}
    kwargs = {"cifar_stem": True} if args.cifar_stem else {}
    dense = create_model(args.arch, pretrained=args.weights, num_classes=10, **kwargs, **options)
    pruned = create_model(args.arch, pretrained=args.weights, num_classes=10, **kwargs,
                          **options)
    pruned.load_state_dict(dense.state_dict())
    target = ({"ratio": args.ratio} if args.ratio is not None
              else {"macs_fraction": args.macs_fraction})
    result = prune_channels(pruned, args.resolution, **target, importance=args.importance,
                            round_to=args.round_to, keep_layers=args.keep_layers)
    paths = {"dense": work / "dense.onnx", "pruned": work / "pruned.onnx"}
    export_onnx(dense, paths["dense"], args.resolution)
    export_onnx(pruned, paths["pruned"], args.resolution)
    return paths, {"arch": args.arch, "cifar_stem": args.cifar_stem, "width_mult": args.width,
                   "resolution": args.resolution, "round_to": args.round_to,
                   "keep_layers": args.keep_layers,
                   "prune": result.to_dict()}


def dense_in_prunable_form(arch: str, options: dict, resolution: int, work: Path) -> Path | None:
    """ONNX of ``arch`` unpruned but in its prunable form, or None if it has no other form."""
    import torch

    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model
    from edgecnn.prune.structured import make_prunable

    torch.manual_seed(0)  # random weights: latency does not depend on them
    model = create_model(arch, num_classes=10, **options).eval()
    if not callable(getattr(model, "make_prunable", None)):
        return None
    make_prunable(model)
    path = work / "dense_prunable_form.onnx"
    export_onnx(model, path, resolution)
    return path


def from_run(run: Path) -> tuple[dict[str, Path], dict]:
    """Dense and pruned ONNX of a finished build of a pruning recipe."""
    paths = {"dense": run / "export" / "model.fp32.onnx",
             "pruned": run / "export" / "model.pruned.fp32.onnx"}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found: build a recipe with a prune section "
                         "and keep_dense: true first")
    prune = json.loads((run / "prune" / "result.json").read_text())
    keep = ("method", "params_before", "macs_before", "params", "macs", "macs_fraction",
            "finetune_epochs", "finetune_seconds")
    model = json.loads((run / "recipe.json").read_text())["model"]
    return paths, {"run": str(run), "prune": {k: prune[k] for k in keep},
                   "arch": model["arch"], "cifar_stem": model["cifar_stem"],
                   "width_mult": model["options"].get("width_mult")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a build's run directory (dense + pruned)")
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--cifar-stem", action="store_true")
    parser.add_argument("--width", type=float)
    parser.add_argument("--weights")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--macs-fraction", type=float, default=0.5)
    parser.add_argument("--ratio", type=float, help="channel ratio instead of --macs-fraction")
    parser.add_argument("--keep-layers", nargs="*", default=[],
                        help="module-name patterns never pruned (prune.keep_layers)")
    parser.add_argument("--importance", default="l1")
    parser.add_argument("--round-to", type=int, help="keep channel counts multiples of this")
    parser.add_argument("--threads", default="2", help="thread counts, comma separated")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--name", help="suffix of the results file for --arch")
    args = parser.parse_args()

    threads = [int(t) for t in args.threads.split(",")]
    measured = {}
    with tempfile.TemporaryDirectory() as work:
        paths, source = from_run(args.run) if args.run else prune_here(args, Path(work))
        options = ({"cifar_stem": True} if source["cifar_stem"] else {}) | (
            {"width_mult": source["width_mult"]} if source["width_mult"] else {})
        other_form = dense_in_prunable_form(source["arch"], options, args.resolution, Path(work))
        if other_form is not None:
            paths[DENSE_OTHER_FORM] = other_form
        for count in threads:
            runners = {k: OnnxRuntimeRunner(p, threads=count) for k, p in paths.items()}
            latency = measure_in_rounds(runners, BATCHES, rounds=args.rounds, warmup=20,
                                        iterations=200, seconds=1.0)
            measured[str(count)] = {"latency": latency}
            for dense in ("dense", DENSE_OTHER_FORM):
                if dense not in latency:
                    continue
                ratios = {str(b): latency["pruned"][str(b)]["p50_ms"]
                          / latency[dense][str(b)]["p50_ms"] for b in BATCHES}
                measured[str(count)][f"pruned_over_{dense}_p50"] = ratios
                print(f"{count} thread(s): p50 {dense} / pruned / ratio: " + "; ".join(
                    f"batch {b} {latency[dense][str(b)]['p50_ms']:.3f} / "
                    f"{latency['pruned'][str(b)]['p50_ms']:.3f} ms / {ratios[str(b)]:.2f}"
                    for b in BATCHES), flush=True)
    name = args.run.name if args.run else args.arch + (
        f"_round{args.round_to}" if args.round_to else "") + (f"_{args.name}" if args.name else "")
    out = RESULTS / f"prune_latency_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        **source, "by_threads": measured, "context": run_context(None),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, indent=2) + "\n")
    prune = source["prune"]
    after = prune.get("macs_after", prune.get("macs"))  # PruneResult / the prune stage's name
    print(f"{name}: MACs {prune['macs_before']:,} -> {after:,} ({prune['macs_fraction']:.2f}); "
          f"written to {out}")


if __name__ == "__main__":
    main()

"""The ``edgecnn`` command: parses arguments, calls the library, prints.

Errors a user can cause arrive as :class:`EdgeCNNError` and are printed as one line on stderr
with exit code 2; the library modules are imported inside each command so ``edgecnn --help``
runs without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError
from edgecnn.settings import debug_errors

EXIT_USER_ERROR = 2


def _bounded_int(low: int, high: int):
    """An argparse type: an integer in [low, high] (argparse reports a bad one, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    return parse


def _seconds(text: str) -> float:
    """Minimum timed seconds: a finite number from 0 to an hour."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 3600:  # also false for NaN
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 3600")
    return value


POSITIVE = _bounded_int(1, 1_000_000)
THREADS = _bounded_int(1, 1024)
RESOLUTION = _bounded_int(8, 4096)
COUNT = _bounded_int(0, 1_000_000)


def _parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as a YAML scalar (``0.5`` -> float, ``true`` -> bool)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise EdgeCNNError(f"--option {text!r} must look like key=value, e.g. width_mult=0.5")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise EdgeCNNError(f"--option {text!r}: the value is not a valid scalar") from None


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    options = dict(_parse_option(o) for o in args.option)
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.cifar_stem:
        options["cifar_stem"] = True
    if args.separable:
        options["separable"] = args.separable
    return options


def cmd_models(args: argparse.Namespace) -> int:
    from edgecnn.models import get_spec, list_models
    from edgecnn.models.registry import create_model
    from edgecnn.profile import profile_model
    from edgecnn.profile.summary import human

    rows = []
    for name in list_models(args.family):
        spec = get_spec(name)
        model = create_model(name, device="meta")
        profile = profile_model(model, model.card.resolution)
        rows.append({
            "name": name, "family": spec.family, "params": profile.params, "macs": profile.macs,
            "resolution": model.card.resolution, "num_classes": spec.num_classes,
            "torchvision_compatible": spec.torchvision_name is not None,
            "description": spec.description,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'name':<22} {'family':<13} {'params':>9} {'MACs':>9} {'res':>4}  description"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<22} {r['family']:<13} {human(r['params']):>9} {human(r['macs']):>9} "
              f"{r['resolution']:>4}  {r['description']}")
    print(f"{len(rows)} architectures; MACs = conv + linear mult-adds of one image at 'res'.")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from edgecnn.models import create_model
    from edgecnn.profile import format_summary, profile_model

    model = create_model(args.name, device="meta", **_model_options(args))
    resolution = model.card.resolution if args.resolution is None else args.resolution
    profile = profile_model(model, resolution)
    title = f'Model: "{args.name}" at {resolution}x{resolution}'
    print(format_summary(profile, title=title))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from edgecnn.recipe import load_recipe
    from edgecnn.recipe.pipeline import BuildContext, plan, run_stages
    from edgecnn.recipe.preflight import preflight
    from edgecnn.recipe.stages import STAGES
    from edgecnn.report.tables import markdown_table
    from edgecnn.rundir import RunDirectory

    overrides = list(args.set)
    if args.calibration:  # a path, kept a string: YAML would read some paths as other types
        overrides.append(f"quantize.calibration.table={json.dumps(args.calibration)}")
    recipe = load_recipe(args.recipe, overrides)
    run_dir = Path(args.out or recipe.run_dir())
    preflight(recipe, run_dir)
    console = Console()
    ctx = BuildContext(recipe, run_dir, console)
    if args.dry_run:
        for stage, state in plan(STAGES, ctx):
            console.print(f"{stage.name:<10} {state}")
        console.print(f"recipe {args.recipe} is valid; run directory {run_dir} (nothing written)")
        return 0
    # a build that failed before its first stage finished leaves nothing behind, but an
    # interrupted first training keeps its checkpoints to resume from
    with RunDirectory(run_dir, keep="train/last.json"):
        run_stages(STAGES, ctx, force=args.force)
    print()
    print(markdown_table(ctx.done["report"]["rows"]))
    for note in ctx.done["report"].get("notes", []):
        print(f"- {note}")
    print(f"\nreport: {run_dir / 'report.md'} (and report.json, top1_vs_macs.png, "
          "top1_vs_latency.png)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from edgecnn.recipe.preflight import preflight
    from edgecnn.sweep.ray_runner import SweepInterrupted, append_record, run_sweep, start_ray
    from edgecnn.sweep.report import write_sweep_report
    from edgecnn.sweep.spec import load_sweep

    sweep = load_sweep(args.sweep, _assignments(args.set))
    for point in sweep.points:  # each point checked as `edgecnn build` checks its recipe
        try:
            preflight(point.recipe, point.run_dir)
        except EdgeCNNError as exc:
            raise EdgeCNNError(f"sweep {args.sweep} point {point.name}: {exc}") from exc
    console = Console()
    if args.dry_run:
        _print_sweep_plan(sweep, console)
        return 0
    ray = start_ray(args.address)
    try:
        result = run_sweep(sweep, ray, console,
                           on_record=lambda record: append_record(sweep.folder, record))
    except SweepInterrupted as stop:
        write_sweep_report(sweep, stop.statuses, interrupted=True)
        print(f"sweep interrupted; run it again to continue (finished stages are kept): "
              f"{sweep.folder / 'sweep.md'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        ray.shutdown()
    statuses = result.statuses
    files = write_sweep_report(sweep, statuses, comparison=result.comparison)
    failed = [s for s in statuses if s.state == "failed"]
    print(f"\nsweep {sweep.name}: {len(statuses) - len(failed)} of {len(statuses)} runs done"
          + (f"; failed: {', '.join(s.point.name for s in failed)}" if failed else ""))
    print(f"report: {files['md']} (and sweep.json, {len(files) - 2} plots)")
    return EXIT_REGRESSION if failed else 0


EXIT_INTERRUPTED = 130


def _assignments(assignments: list[str]) -> dict[str, Any]:
    """``--set a.b=value`` pairs as dotted field -> YAML value."""
    from edgecnn.recipe.loading import parse_assignment

    return dict(parse_assignment(text) for text in assignments)


def cmd_search(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from edgecnn.search.compound_spec import CompoundFile
    from edgecnn.search.files import load_search
    from edgecnn.search.report import write_search_report
    from edgecnn.search.study import Search, finished, open_study, preflight_search, run_search
    from edgecnn.sweep.ray_runner import SweepInterrupted, start_ray

    spec, recipe_folder = load_search(args.search)
    if isinstance(spec, CompoundFile):
        return _compound_search(args, spec, recipe_folder)
    search = Search.load(spec, Path(args.search), recipe_folder)
    counts = preflight_search(search)
    console = Console()
    if args.dry_run:
        console.print(f"search {args.search} is valid: cheapest candidate {counts.macs / 1e6:.2f}"
                      f" M MACs, {counts.params / 1e6:.3f} M params; up to {spec.budget.trials} "
                      f"trials in {search.folder} (nothing written)")
        return 0
    ray = start_ray(args.address)
    try:
        study = run_search(search, ray, console)
    except SweepInterrupted:
        study = open_study(search)
        write_search_report(search, study)
        print(f"search interrupted; run it again to continue from its {finished(study)} "
              f"stored trials: {search.folder / 'trials.md'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        ray.shutdown()
    files = write_search_report(search, study)
    print(f"\nsearch {spec.name}: {finished(study)} trials complete; report: {files['md']} "
          f"(and trials.json, {sum(k.startswith('best-') for k in files)} best-N.yaml recipes)")
    return 0


def _compound_search(args: argparse.Namespace, spec, recipe_folder) -> int:
    from pathlib import Path

    from rich.console import Console

    from edgecnn.search.compound import CompoundRunner, compound_search, preflight_compound
    from edgecnn.search.compound_report import write_compound_report
    from edgecnn.sweep.ray_runner import SweepInterrupted, start_ray

    search = compound_search(spec, Path(args.search), recipe_folder)
    points = preflight_compound(search)
    console = Console()
    if args.dry_run:
        listed = ", ".join(f"{p.name} {macs / 1e6:.2f} M" for p, macs in points)
        phis = ", ".join(str(phi) for phi in [1, *spec.compound.phis])
        console.print(f"search {args.search} is valid (compound scaling): {len(points)} points "
                      f"at phi 1 ({listed}), then the best scaled to phi {phis} against "
                      f"{', '.join(spec.compound.singles)} alone; in {search.folder} "
                      "(nothing written)")
        return 0
    ray = start_ray(args.address)
    try:
        result = CompoundRunner(search, ray, console).run()
    except SweepInterrupted:
        print("search interrupted; run it again: finished points are reused",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        ray.shutdown()
    files = write_compound_report(search.folder, result)
    found = result["found"]
    print(f"\nsearch {spec.name}: alpha {found['alpha']:g}, beta {found['beta']:g}, gamma "
          f"{found['gamma']:g} (the paper's 1.2, 1.1, 1.15); report: {files['md']}")
    return 0


def _print_sweep_plan(sweep, console) -> None:
    from edgecnn.recipe.pipeline import BuildContext, plan
    from edgecnn.recipe.stages import STAGES

    for point in sweep.points:
        states = plan(STAGES, BuildContext(point.recipe, point.run_dir, console))
        to_run = [stage.name for stage, state in states if state == "run"]
        overrides = ", ".join(f"{k}={v}" for k, v in point.overrides.items()) or "(base)"
        aliases = f" (also {', '.join(point.aliases)})" if point.aliases else ""
        console.print(f"{point.name}{aliases}: {overrides} -> "
                      + (f"runs {', '.join(to_run)}" if to_run else "finished"))
    console.print(f"sweep {sweep.source} is valid: {len(sweep.points)} runs in "
                  f"{sweep.folder} (nothing written)")


def cmd_validate(args: argparse.Namespace) -> int:
    from edgecnn.recipe import load_recipe
    from edgecnn.recipe.preflight import check_model, check_targets

    recipe = load_recipe(args.recipe, args.set)
    # what can be checked without the data: the architecture takes its options, targets agree
    check_model(recipe)
    check_targets(recipe)
    print(f"recipe {args.recipe} is valid: {recipe.name} ({recipe.model.label})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edgecnn.bench import measure_latency
    from edgecnn.targets.context import run_context
    from edgecnn.targets.registry import get_target, open_runner

    batches = _int_list(args.batch, "--batch")
    args.backend = backend_for(args.artifact, args.backend)
    results = {}
    with open_runner(args.backend, args.artifact, threads=args.threads) as runner:
        for batch in batches:
            stats = measure_latency(runner, batch, warmup=args.warmup,
                                    min_iterations=args.iterations, min_seconds=args.seconds)
            results[str(batch)] = stats.to_dict()
            print(f"batch {batch:>4}: p50 {stats.p50_ms:8.3f} ms  p90 {stats.p90_ms:8.3f}  "
                  f"p99 {stats.p99_ms:8.3f}  mean {stats.mean_ms:8.3f} +- {stats.std_ms:.3f}  "
                  f"{stats.throughput:8.1f} img/s  ({stats.iterations} runs)")
    context = run_context(args.threads)
    runtime = get_target(args.backend).packages[0]
    print(f"on {context['cpu']}, {context['logical_cores']} logical cores, threads "
          f"{args.threads or 'default'}, {args.backend} {context['libraries'].get(runtime, '')}")
    if args.json:
        from pathlib import Path

        from edgecnn.atomic import atomic_write_json

        atomic_write_json(Path(args.json), {"artifact": str(args.artifact),
                                            "backend": args.backend, "results": results,
                                            "context": context})
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or len(values) > 32 or any(not 1 <= v <= 65_536 for v in values):
        raise EdgeCNNError(f"{flag} takes up to 32 batch sizes 1..65536 separated by commas, "
                           f"got {text[:80]!r}")
    return values


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgecnn.report.build_report import write_report
    from edgecnn.report.regression import find_regressions
    from edgecnn.report.rows import read_rows
    from edgecnn.report.tables import markdown_table

    rows = [row for name in args.reports for row in read_rows(Path(name))]
    baseline = read_rows(Path(args.baseline)) if args.baseline else None
    if args.out:
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file of that name, or a file above it
            raise EdgeCNNError(f"--out {args.out} cannot be a folder for the report: "
                               f"{exc.strerror}") from exc
    print(markdown_table(rows))
    if args.out:
        files = write_report(rows, Path(args.out), title="edgecnn report")
        print(f"written: {', '.join(str(p) for p in files.values())}")
    if args.baseline:
        found = find_regressions(rows, baseline,
                                 max_accuracy_drop=args.max_accuracy_drop,
                                 max_latency_rise=args.max_latency_rise / 100)
        for line in found:
            print(f"REGRESSION {line}", file=sys.stderr)
        if found:
            return EXIT_REGRESSION
        print(f"no regression against {args.baseline}")
    return 0


# `edgecnn report --baseline` found a regression (2 stays the code of bad input).
EXIT_REGRESSION = 1


def cmd_container(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgecnn.deploy.container import write_context
    from edgecnn.recipe.loading import load_run_recipe

    out = Path(args.out) if args.out else Path(args.run_dir) / "container"
    context = write_context(Path(args.run_dir), out, load_run_recipe(Path(args.run_dir)),
                            jetpack=args.jetpack,
                            base_image=args.base_image, eval_images=args.eval_images,
                            force=args.force)
    print(f"build context: {out} ({len(context['files'])} files; models: "
          f"{', '.join(context['models'])}; {context['eval']['images']} evaluation images)")
    print(f"  {context['commands']['build']}")
    print(f"  mkdir -p results && {context['commands']['run']}")
    return 0


def cmd_device_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgecnn.deploy.device_run import device_run
    from edgecnn.report.tables import markdown_table

    batches = _int_list(args.batch, "--batch") if args.batch else None
    path = device_run(Path(args.context), Path(args.results),
                      backends=[b.strip() for b in args.backends.split(",") if b.strip()],
                      batch_sizes=batches, threads=args.threads, rounds=args.rounds,
                      iterations=args.iterations, seconds=args.seconds)
    document = json.loads(path.read_text())
    print(markdown_table(document["rows"]))
    print(f"results: {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgecnn.recipe import load_recipe
    from edgecnn.rundir import RunDirectory

    recipe = load_recipe(args.recipe, args.set)
    if recipe.train is None:
        raise EdgeCNNError(f"recipe {args.recipe} has no train section")
    run_dir = Path(args.out or recipe.run_dir())
    # a run that failed before its first checkpoint leaves nothing behind
    with RunDirectory(run_dir, keep="train/last.json"):
        from edgecnn.train.trainer import Trainer

        Trainer(recipe, run_dir).run(restart=args.force)
    print(f"trained weights: {run_dir / 'train' / 'best.safetensors'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from edgecnn.data import load_split
    from edgecnn.targets.registry import backend_of_file
    from edgecnn.train.evaluate import evaluate

    if backend_of_file(args.model) is not None:
        runner, name, resolution, mean, std = _artifact_runner(args)
    else:
        runner, name, resolution, mean, std = _model_runner(args)
    with runner:
        data = load_split(args.data, args.split, size=resolution, val_size=args.val_size)
        result = evaluate(runner, data, mean, std, args.batch_size)
    summary = {"model": name, "weights": args.weights, "backend": runner.backend,
               "data": data.description, "resolution": resolution,
               "batch_size": args.batch_size, **result.to_dict()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{name} ({runner.backend}) on {data.description} ({result.samples} images, "
          f"{resolution}x{resolution}, batch {args.batch_size})")
    print(f"top-1 {result.top1:.2f}%   top-5 {result.top5:.2f}%")
    if len(result.per_class) <= 20:
        for class_name, acc in result.per_class.items():
            print(f"  {class_name:<16} {acc:6.2f}%")
    return 0


def backend_for(artifact: str, requested: str | None) -> str:
    """--backend as given, else the backend that runs files of this kind."""
    from edgecnn.targets.registry import backend_of_file, suffix_backends

    if requested:
        return requested
    backend = backend_of_file(artifact)
    if backend is None:
        raise EdgeCNNError(f"cannot tell the backend of {artifact} from its suffix; give "
                           f"--backend (files: {', '.join(suffix_backends())})")
    return backend


def _backend_help() -> str:
    """The runtimes and the files each runs, from the target registry."""
    from edgecnn.targets.registry import TARGETS

    return ", ".join(f"{name} ({' '.join(t.suffixes)})" for name, t in TARGETS.items()
                     if t.suffixes)


def _artifact_runner(args: argparse.Namespace):
    """A backend runner on an exported file; normalisation and resolution from its metadata
    (the flags override them). Needs no torch."""
    from edgecnn.targets.registry import open_runner

    backend = backend_for(args.model, None if args.backend == "torch" else args.backend)
    runner = open_runner(backend, args.model, threads=args.threads)
    meta = runner.metadata
    try:
        resolution = args.resolution or int(meta["resolution"])
        mean = tuple(args.mean) if args.mean else tuple(json.loads(meta["mean"]))
        std = tuple(args.std) if args.std else tuple(json.loads(meta["std"]))
    except (KeyError, ValueError) as exc:
        runner.close()
        raise EdgeCNNError(f"{args.model} carries no edgecnn metadata ({exc}); give "
                           "--resolution, --mean and --std") from exc
    return runner, meta.get("arch", args.model), resolution, mean, std


def _model_runner(args: argparse.Namespace):
    from edgecnn.backends.torch_backend import TorchRunner
    from edgecnn.models import create_model

    if args.backend not in (None, "torch"):
        raise EdgeCNNError(f"--backend {args.backend} runs an exported file (e.g. model.onnx), "
                           f"not the architecture name {args.model!r}")
    model = create_model(args.model, pretrained=args.weights, **_model_options(args))
    resolution = args.resolution or model.card.resolution
    mean = tuple(args.mean) if args.mean else model.card.mean
    std = tuple(args.std) if args.std else model.card.std
    return TorchRunner(model, resolution=resolution), args.model, resolution, mean, std


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecnn",
        description="CNNs from architecture to a measured edge deployment.",
    )
    parser.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list every architecture with params, MACs, resolution")
    p.add_argument("--family", help="only this family (resnet, cifar_resnet, densenet, "
                                    "mobilenet, efficientnet)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="a Keras-style per-layer table of one architecture")
    p.add_argument("name", help="architecture name (see `edgecnn models`)")
    p.add_argument("--resolution", type=int, help="input size (default: the model's own)")
    p.add_argument("--num-classes", type=int, help="classifier outputs")
    p.add_argument("--cifar-stem", action="store_true", help="3x3 stride-1 stem for 32x32 input")
    p.add_argument("--separable", choices=["depthwise", "spatial"],
                   help="rewrite full k x k convolutions (but the stem) as separable ones")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a family option, e.g. width_mult=0.5 or phi=2 (repeatable)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("build", help="run a recipe: train, export, quantize, evaluate, "
                                     "benchmark, report (resumes after a kill)")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--set", action="append", default=[], metavar="A.B=VALUE",
                   help="override a recipe value, e.g. quantize.calibration.samples=1024")
    p.add_argument("--out", help="run directory (default: the recipe's output)")
    p.add_argument("--force", action="store_true", help="rebuild every stage")
    p.add_argument("--calibration", metavar="FILE",
                   help="a calibration table a build saved (quantize/NAME.calibration.json): "
                        "quantize with its ranges instead of calibrating")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and show which stages would run; write nothing")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sweep", help="many builds from a base recipe and a grid of overrides, "
                                     "on Ray, merged into one report with Pareto frontiers")
    p.add_argument("sweep", help="sweep YAML file (base recipe, grid and/or runs)")
    p.add_argument("--address", metavar="ADDR",
                   help="an existing Ray cluster (HEAD:6379, or ray://HEAD:10001); default: a "
                        "local Ray instance on this machine's CPUs")
    p.add_argument("--set", action="append", default=[], metavar="A.B=VALUE",
                   help="override a recipe value in every run")
    p.add_argument("--dry-run", action="store_true",
                   help="validate every run and show what it would build; write nothing")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("search", help="latency-aware architecture search (Optuna) over the "
                                      "searchable family, trials built and timed on Ray")
    p.add_argument("search", help="search YAML file (space, objective, constraints, budget)")
    p.add_argument("--address", metavar="ADDR",
                   help="an existing Ray cluster; default: a local Ray instance")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the search file and the cheapest candidate; write nothing")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("validate", help="check a recipe against the schema")
    p.add_argument("recipe")
    p.add_argument("--set", action="append", default=[], metavar="A.B=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("bench", help="latency and throughput of an artifact on a backend")
    p.add_argument("artifact", help="model file, e.g. runs/NAME/quantize/model.int8.onnx")
    p.add_argument("--backend", help=f"{_backend_help()}; default: the first that runs the "
                                     "file's suffix")
    p.add_argument("--batch", default="1,8", help="batch sizes, comma separated")
    p.add_argument("--threads", type=THREADS, help="intra-op threads (default: all cores)")
    p.add_argument("--warmup", type=COUNT, default=10)
    p.add_argument("--iterations", type=POSITIVE, default=100, help="minimum timed runs")
    p.add_argument("--seconds", type=_seconds, default=2.0, help="minimum timed seconds")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="merge report.json / device results.json files into "
                                      "one table and plots; flag regressions")
    p.add_argument("reports", nargs="+", help="report.json (build) or results.json (device-run)")
    p.add_argument("--out", help="folder for the merged report.md/json and plots")
    p.add_argument("--baseline", help="a results file to compare against: exit 1 on a regression")
    p.add_argument("--max-accuracy-drop", type=float, default=1.0,
                   help="top-1 points a row may lose against the baseline (default 1.0)")
    p.add_argument("--max-latency-rise", type=float, default=25.0,
                   help="percent p50 latency may rise against the baseline (default 25)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("container", help="a Jetson Docker build context for a run's artifacts")
    p.add_argument("run_dir", help="a run directory written by `edgecnn build`")
    p.add_argument("--out", help="context folder (default: RUN_DIR/container)")
    p.add_argument("--jetpack", default="6.1", help="JetPack release of the device (6.0, 6.1)")
    p.add_argument("--base-image", help="Docker base image (JetPack 7: required)")
    p.add_argument("--eval-images", type=POSITIVE, default=1000,
                   help="test images shipped for on-device accuracy (default 1000)")
    p.add_argument("--force", action="store_true", help="replace an existing context")
    p.set_defaults(func=cmd_container)

    p = sub.add_parser("device-run", help="on the device: build engines, evaluate, benchmark")
    p.add_argument("context", help="a context written by `edgecnn container`")
    p.add_argument("--results", default="results", help="folder for results.json and plots")
    p.add_argument("--backends", default="tensorrt,onnxruntime",
                   help="tensorrt and/or onnxruntime, comma separated")
    p.add_argument("--batch", help="batch sizes (default: the recipe's benchmark batches)")
    p.add_argument("--threads", type=THREADS, help="ONNX Runtime intra-op threads")
    p.add_argument("--rounds", type=_bounded_int(1, 100), default=2)
    p.add_argument("--iterations", type=POSITIVE, default=100, help="minimum timed runs")
    p.add_argument("--seconds", type=_seconds, default=2.0, help="minimum timed seconds")
    p.set_defaults(func=cmd_device_run)

    p = sub.add_parser("train", help="train a recipe's model (resumes after a kill)")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--set", action="append", default=[], metavar="A.B=VALUE",
                   help="override a recipe value, e.g. train.epochs=5 (repeatable)")
    p.add_argument("--out", help="run directory (default: the recipe's output)")
    p.add_argument("--force", action="store_true", help="start over instead of resuming")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5 and per-class accuracy of a model on a split")
    p.add_argument("model", help="architecture name, or an exported file (model.onnx), whose "
                                 "metadata gives resolution, mean and std")
    p.add_argument("--backend", help=f"for an exported file: {_backend_help()}")
    p.add_argument("--threads", type=THREADS, help="intra-op threads of the backend")
    p.add_argument("--weights", help="checkpoint (.pth, .th, .safetensors)")
    p.add_argument("--data", default="cifar10-jpeg", help="dataset name, folder or archive")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--val-size", type=COUNT, default=5000, help="images held out of train as val")
    p.add_argument("--batch-size", type=_bounded_int(1, 65_536), default=256)
    p.add_argument("--resolution", type=RESOLUTION, help="input size (default: the model's)")
    p.add_argument("--mean", type=float, nargs=3, help="normalisation mean (default: model's)")
    p.add_argument("--std", type=float, nargs=3, help="normalisation std (default: model's)")
    p.add_argument("--num-classes", type=POSITIVE, help="classifier outputs")
    p.add_argument("--cifar-stem", action="store_true", help="3x3 stride-1 stem")
    p.add_argument("--separable", choices=["depthwise", "spatial"], help=argparse.SUPPRESS)
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a family option, e.g. width_mult=0.5")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except EdgeCNNError as exc:
        print(f"edgecnn: error: {exc}", file=sys.stderr)
        if debug_errors():  # the cause behind the one line: the library's own exception
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())

"""The stages of ``edgecnn build``: model -> train -> prune -> export -> quantize -> compile ->
evaluate -> benchmark -> report.

Export comes before quantization because the quantizers of the ONNX-based targets (ONNX Runtime's
layout, TensorRT's explicit Q/DQ layout) work on the exported graph; TensorRT engines are built in
the compile stage (:mod:`edgecnn.recipe.tensorrt_target`). Each stage reads earlier
artifacts through the build context and returns a summary (see :mod:`edgecnn.recipe.pipeline`).
From export on, every stage handles each model variant (dense, pruned: :mod:`.variants`).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.artifacts import DENSE, PRUNED, ArtifactKey, file_stem, suffix
from edgecnn.atomic import atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.inputs import (
    check_images,
    evaluation_images,
    load_model,
    norm,
    rel,
    resolution,
)
from edgecnn.recipe.pipeline import BuildContext, Stage
from edgecnn.recipe.prune_stage import environment as prune_environment
from edgecnn.recipe.prune_stage import run_prune
from edgecnn.recipe.quantize_stage import run_quantize
from edgecnn.recipe.variants import variants
from edgecnn.settings import cache_dir
from edgecnn.targets.base import TargetStage
from edgecnn.targets.registry import TARGETS, get_target

# -- model ------------------------------------------------------------------------------------


def run_model(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.data.splits import split_index

    index, _ = split_index(ctx.recipe.data.dataset, "train" if ctx.recipe.train is not None
                           else ctx.recipe.data.eval_split)
    if ctx.recipe.model.onnx:
        from edgecnn.recipe.onnx_model import onnx_card

        card = onnx_card(ctx.recipe, index.classes)
    else:
        card = _torch_card(ctx, index.classes)
    atomic_write_json(folder / "card.json", card)
    ctx.console.print(f"  {card['name']}: {card['params']:,} params, {card['macs']:,} MACs at "
                      f"{card['resolution']}x{card['resolution']}, {card['num_classes']} classes")
    return {**card, "artifacts": {"card": rel(ctx, folder / "card.json")}}


def _torch_card(ctx: BuildContext, classes: list[str]) -> dict[str, Any]:
    """The card of a registered or entry-point model; params and MACs from the profiler."""
    from edgecnn.profile import profile_model
    from edgecnn.train.trainer import build_model

    model = build_model(ctx.recipe, len(classes))
    resolution = ctx.recipe.model.resolution or model.card.resolution
    profile = profile_model(model.to("meta"), resolution)
    card = {**model.card.to_dict(), "resolution": resolution, "params": profile.params,
            "macs": profile.macs, "classes": classes}
    m = ctx.recipe.model
    if m.entry:
        from edgecnn.models.entry import resolve_entry

        entry = resolve_entry(m.entry, m.search_path)
        card["entry"] = {"function": m.entry, "kwargs": m.kwargs,
                         "source": str(entry.source_file), "source_sha256": entry.source_sha256()}
        outputs = profile.layers[-1].output_shape if profile.layers else ()
        if len(outputs) == 2 and outputs[-1] != len(classes) and not m.num_classes:
            raise EdgeCNNError(
                f"model.entry {m.entry} returns {outputs[-1]} logits, but dataset "
                f"{ctx.recipe.data.dataset!r} has {len(classes)} classes; give the function a "
                "num_classes argument, set it in model.kwargs, or set model.num_classes")
    return card


def _model_inputs(ctx: BuildContext) -> list[Path]:
    from edgecnn.train.trainer import model_files

    return model_files(ctx.recipe)


# -- train ------------------------------------------------------------------------------------


def run_train(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    """Train, or reuse a training of the same recipe sections from the cache."""
    import json

    from edgecnn.train.trainer import Trainer, recipe_fingerprint

    key = recipe_fingerprint(ctx.recipe)
    cached = cache_dir() / "trained" / key
    if (cached / "best.safetensors").is_file() and (cached / "result.json").is_file():
        for name in ("best.safetensors", "result.json", "metrics.jsonl"):
            if (cached / name).is_file():
                shutil.copy2(cached / name, folder / name)
        ctx.console.print(f"  reusing the cached training {cached}")
        result = json.loads((folder / "result.json").read_text())
    else:
        from edgecnn.train.checkpoint import read_last

        # A partial training of other recipe sections in this folder is stale: start over.
        last = read_last(folder)
        restart = last is not None and last.get("fingerprint") != key
        result = Trainer(ctx.recipe, ctx.run_dir, ctx.console).run(restart=restart)
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix=f".{key}-"))
        for name in ("best.safetensors", "result.json", "metrics.jsonl"):
            shutil.copy2(folder / name, staging / name)
        try:
            staging.rename(cached)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another build cached it first
    return {"fingerprint": key, "test": result.get("test"), "epochs": result["epochs"],
            "train_seconds": result["train_seconds"], "best_epoch": result["best_epoch"],
            "artifacts": {"weights": rel(ctx, folder / "best.safetensors"),
                          "result": rel(ctx, folder / "result.json")}}


def _train_inputs(ctx: BuildContext) -> list[Path]:
    return [ctx.artifact("train", "weights")] if "train" in ctx.done else _model_inputs(ctx)


# -- export -----------------------------------------------------------------------------------


def run_export(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    """The FP32 ONNX of every variant, each checked against its torch model on test images
    (an ONNX model: the given graph in edgecnn's form, checked against the given file)."""
    x = check_images(ctx)
    if ctx.recipe.model.onnx:
        from edgecnn.recipe.onnx_model import import_checked

        return import_checked(ctx, folder, x)
    artifacts, checks, info = {}, {}, None
    for variant in variants(ctx.recipe):
        path = folder / f"{file_stem(variant)}.fp32.onnx"
        info, checks[variant] = _export_checked(ctx, load_model(ctx, variant), path, x)
        artifacts[f"fp32{suffix(variant)}"] = rel(ctx, path)
    # The FP32 ONNX runs in ONNX Runtime whatever the targets: the reference of every
    # accuracy. OpenVINO reads the same file.
    backends = [name for name, t in TARGETS.items() if t.runs_fp32_onnx
                and (t.always_built or name in ctx.recipe.export.targets)]
    runs = {str(ArtifactKey(b, "fp32", v)): f"fp32{suffix(v)}"
            for v in variants(ctx.recipe) for b in backends}
    worst = max(checks.values(), key=lambda c: c["max_abs_diff"])
    return {"opset": info.opset, "simplifier": info.simplifier,
            "max_abs_diff": worst["max_abs_diff"], "top1_agreement": worst["top1_agreement"],
            "check_samples": len(x), "checks": checks, "metadata": info.metadata,
            "artifacts": artifacts, "runs": runs}


def _export_checked(ctx: BuildContext, model, path: Path, x: np.ndarray):
    """Export ``model``; the graph must compute the torch function on the real images ``x``."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.backends.torch_backend import TorchRunner
    from edgecnn.export.onnx_export import export_onnx

    cfg = ctx.recipe.export.onnx
    info = export_onnx(model, path, resolution(ctx), opset=cfg.opset,
                       dynamic_batch=cfg.dynamic_batch, simplify=cfg.simplify)
    reference = TorchRunner(model).run(x)
    exported = OnnxRuntimeRunner(path).run(x)
    diff = float(np.abs(reference - exported).max())
    agree = float((reference.argmax(1) == exported.argmax(1)).mean() * 100)
    ctx.console.print(f"  {path.name}: opset {info.opset}, {info.simplifier or 'not simplified'}"
                      f" ({info.nodes_before} -> {info.nodes_after} nodes); torch vs ONNX on "
                      f"{len(x)} test images: max |diff| {diff:.2e}, top-1 agreement {agree:.1f}%")
    if not diff <= cfg.max_abs_diff:  # NaN compares false: a NaN difference must fail too
        raise EdgeCNNError(f"exported ONNX {path.name} differs from the torch model by "
                           f"{diff:.3e} (> export.onnx.max_abs_diff {cfg.max_abs_diff})")
    return info, {"max_abs_diff": diff, "top1_agreement": agree}


# -- compile ----------------------------------------------------------------------------------


def run_compile(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    """Ahead-of-time engines: TensorRT's (ONNX Runtime compiles at session creation)."""
    targets: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    runs: dict[str, str] = {}
    if "tensorrt" in ctx.recipe.export.targets:
        from edgecnn.recipe.tensorrt_target import compile_tensorrt

        result = compile_tensorrt(ctx, folder)
        for key, engine in result.pop("engines").items():
            name = key.replace("/", "_")
            artifacts[name], runs[key] = rel(ctx, engine), name
        result["onnx"] = {k: rel(ctx, f) for k, f in result.get("onnx", {}).items()}
        targets["tensorrt"] = result
    return {"targets": targets, "artifacts": artifacts, "runs": runs}


# -- evaluate ---------------------------------------------------------------------------------


def runnable_artifacts(ctx: BuildContext) -> dict[str, Path]:
    """Artifact key ('backend/precision[/variant]') -> file, for every model this build produced
    and can run: what the stages list under ``runs`` in their summaries."""
    return {key: ctx.artifact(stage, name) for stage, summary in ctx.done.items()
            for key, name in summary.get("runs", {}).items()}


def _open_runner(ctx: BuildContext, key: str, path: Path):
    target = get_target(ArtifactKey.parse(key).backend)
    if target.open_build_runner is not None:
        return target.open_build_runner(ctx, key, path)
    return target.open_runner(path, ctx.recipe.benchmark.threads)


def run_evaluate(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.train.evaluate import agreement, evaluate

    test = evaluation_images(ctx)
    mean, std = norm(ctx)
    results, predictions = {}, {}
    for key, path in runnable_artifacts(ctx).items():
        with _open_runner(ctx, key, path) as runner:
            result = evaluate(runner, test, mean, std, ctx.recipe.data.eval_batch_size)
        results[key] = result.to_dict()
        predictions[key] = result.predictions
        ctx.console.print(f"  {key}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}% on "
                          f"{test.description}")
    for key in results:
        reference = str(ArtifactKey.parse(key).reference())
        if key == reference:
            continue
        results[key]["agreement_with_fp32"] = agreement(predictions[key], predictions[reference])
        results[key]["top1_drop"] = results[reference]["top1"] - results[key]["top1"]
    _check_budgets(ctx, results)
    atomic_write_json(folder / "results.json", results)
    return {"split": test.description, "images": len(test), "results": results,
            "artifacts": {"results": rel(ctx, folder / "results.json")}}


def _check_budgets(ctx: BuildContext, results: dict[str, dict]) -> None:
    """INT8 against the FP32 of its variant (quantize.max_accuracy_drop); the pruned FP32
    model against the dense one (prune.max_accuracy_drop)."""
    budget = ctx.recipe.quantize.max_accuracy_drop
    for key, result in results.items():
        if ArtifactKey.parse(key).precision == "int8" and budget is not None and (
                result["top1_drop"] > budget):
            raise EdgeCNNError(f"{key} top-1 is {result['top1_drop']:.2f} points below FP32, "
                               f"more than quantize.max_accuracy_drop {budget}")
    prune = ctx.recipe.prune
    dense, pruned = (str(ArtifactKey("onnxruntime", "fp32", v)) for v in (DENSE, PRUNED))
    if prune and prune.max_accuracy_drop is not None and dense in results:
        drop = results[dense]["top1"] - results[pruned]["top1"]
        results[pruned]["top1_drop_vs_dense"] = drop
        if drop > prune.max_accuracy_drop:
            raise EdgeCNNError(f"the pruned model's top-1 is {drop:.2f} points below the dense "
                               f"model's, more than prune.max_accuracy_drop "
                               f"{prune.max_accuracy_drop}")


# -- benchmark --------------------------------------------------------------------------------


def _benchmark_runners(ctx: BuildContext, held: ExitStack) -> dict[str, Any]:
    """A runner on every runnable artifact of the benchmark's backends (and eager torch),
    entered into ``held``, which frees them."""
    from edgecnn.backends.torch_backend import TorchRunner

    cfg = ctx.recipe.benchmark
    runners: dict[str, Any] = {key: held.enter_context(_open_runner(ctx, key, path))
                               for key, path in runnable_artifacts(ctx).items()
                               if ArtifactKey.parse(key).backend in cfg.backends}
    if "torch" in cfg.backends:
        import torch

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # eager PyTorch on the GPU where there is one: the baseline an engine is compared with
        device = "cuda" if torch.cuda.is_available() else "cpu"
        for variant in variants(ctx.recipe):
            runners[str(ArtifactKey("torch", "fp32", variant))] = held.enter_context(
                TorchRunner(load_model(ctx, variant), device=device))
    return runners


def run_benchmark(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.bench.rounds import measure_in_rounds
    from edgecnn.targets.context import run_context

    cfg = ctx.recipe.benchmark
    with ExitStack() as held:  # every runner freed once timed and inspected
        runners = _benchmark_runners(ctx, held)
        results = measure_in_rounds(runners, cfg.batch_sizes, rounds=cfg.rounds,
                                    warmup=cfg.warmup, iterations=cfg.iterations,
                                    seconds=cfg.seconds)
        coverage = _int8_coverage(runners)
    for key, per_batch in results.items():
        line = ", ".join(f"batch {b}: p50 {s['p50_ms']:.3f} ms ({s['throughput']:.0f} img/s)"
                         for b, s in per_batch.items())
        ctx.console.print(f"  {key}: {line}")
    for key, record in coverage.items():
        ctx.console.print(f"  {key}: {record['description']}")
    context = run_context(cfg.threads)
    atomic_write_json(folder / "results.json", {"results": results, "context": context,
                                                "int8_coverage": coverage})
    return {"results": results, "context": context, "int8_coverage": coverage,
            "artifacts": {"results": rel(ctx, folder / "results.json")}}


def _int8_coverage(runners: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per INT8 artifact, what its runtime leaves outside its int8 kernels
    (:mod:`edgecnn.bench.int8_coverage`), asked of the runner that was timed; a target that
    declares no ``int8_coverage`` is left out."""
    found = {}
    for key, runner in runners.items():
        artifact = ArtifactKey.parse(key)
        if artifact.precision == "int8":
            inspect = get_target(artifact.backend).int8_coverage
            coverage = inspect(runner) if inspect is not None else None
            if coverage is not None:
                found[key] = coverage.to_dict()
    return found


# -- report -----------------------------------------------------------------------------------


def run_report(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from rich.markup import escape

    from edgecnn.report.build_report import (
        build_notes,
        build_rows,
        coverage_notes,
        write_report,
    )
    from edgecnn.report.recommend import recommend

    rows = build_rows(ctx, runnable_artifacts(ctx))
    recommended, speed_notes = recommend(rows)
    notes = build_notes(ctx) + speed_notes + coverage_notes(ctx, recommended)
    files = write_report(rows, ctx.run_dir, title=ctx.recipe.name, notes=notes,
                         extra={"recommended": recommended})
    for note in notes:
        ctx.console.print(f"  [yellow]{escape(note)}[/yellow]")
    return {"rows": rows, "notes": notes, "recommended": recommended,
            "artifacts": {k: rel(ctx, p) for k, p in files.items()}}


def _stage_outputs(ctx: BuildContext, *stages: str) -> list[Path]:
    """Every file the named (finished) stages wrote."""
    return [ctx.run_dir / path for stage in stages if stage in ctx.done
            for path in ctx.done[stage]["artifacts"].values()]


def _quantize_inputs(ctx: BuildContext) -> list[Path]:
    """The exported models, the weights QAT starts from, and a given calibration table."""
    from edgecnn.settings import resolve_path

    files = _stage_outputs(ctx, "export")
    if ctx.recipe.quantize.method == "qat":
        files += _train_inputs(ctx) + _stage_outputs(ctx, "prune")
    calibration = ctx.recipe.quantize.calibration
    if calibration.table:
        files.append(Path(resolve_path(calibration.table)))
    if calibration.set:  # the definition's content decides the images
        from edgecnn.quantize.calibration_set import definition_path

        files.append(definition_path(calibration.set))
    return files


def _quantize_environment(ctx: BuildContext) -> dict[str, Any]:
    """reduce_range: null follows this CPU (VNNI or not): a run moved to another CPU requantizes."""
    if ctx.recipe.quantize.reduce_range is not None:
        return {}
    from edgecnn.quantize.cpu_features import choose_reduce_range

    return {"reduce_range": choose_reduce_range().reduce_range}


def _compile_environment(ctx: BuildContext) -> dict[str, Any]:
    from edgecnn.recipe.tensorrt_target import environment

    return environment(ctx)


def _evaluated_inputs(ctx: BuildContext) -> list[Path]:
    return list(runnable_artifacts(ctx).values())


def _target_stage(target: str, stage: TargetStage) -> Stage:
    """A target's own stage (:class:`edgecnn.targets.base.TargetStage`), run when the recipe
    exports to that target."""
    inputs = ((lambda ctx: _train_inputs(ctx) + _stage_outputs(ctx, "prune"))
              if stage.from_weights else (lambda ctx: _stage_outputs(ctx, "export")))
    return Stage(stage.name, stage.reads, stage.run, inputs=inputs,
                 enabled=lambda r: target in r.export.targets)


# What the ONNX export, its quantization and engines read of the export section (not
# export.tflite, which only the tflite stage reads; it reads these too: the numeric check
# takes export.onnx.check_samples images).
ONNX_EXPORT_FIELDS = ("export.targets", "export.onnx")

STAGES = [
    Stage("model", ("model", "data"), run_model, inputs=_model_inputs),
    Stage("train", ("model", "data", "train"), run_train, inputs=_model_inputs,
          enabled=lambda r: r.train is not None, keep_partial=True),
    Stage("prune", ("model", "data", "prune"), run_prune, inputs=_train_inputs,
          enabled=lambda r: r.prune is not None, keep_partial=True,
          environment=prune_environment),
    # Fields, not whole sections, where a stage reads little of one: `--set benchmark.rounds=2`
    # or a new benchmark.device re-runs only the benchmark and report, and an export.tflite
    # change only the tflite stage and what reads its files.
    Stage("export", ("model", "data", "prune", *ONNX_EXPORT_FIELDS), run_export,
          inputs=lambda ctx: _train_inputs(ctx) + _stage_outputs(ctx, "prune")),
    Stage("quantize", ("model", "data", "train", "prune", "quantize", *ONNX_EXPORT_FIELDS,
                       "export.tensorrt", "benchmark.threads"),
          run_quantize, inputs=_quantize_inputs, enabled=lambda r: r.quantize.method != "none",
          environment=_quantize_environment),
    *(_target_stage(t.name, t.stage) for t in TARGETS.values() if t.stage is not None),
    Stage("compile", ("prune", *ONNX_EXPORT_FIELDS, "export.tensorrt", "benchmark.batch_sizes"),
          run_compile, inputs=lambda ctx: _stage_outputs(ctx, "export", "quantize"),
          environment=_compile_environment),
    Stage("evaluate", ("data", "prune", "quantize", "benchmark.threads"), run_evaluate,
          inputs=_evaluated_inputs),
    Stage("benchmark", ("benchmark",), run_benchmark, inputs=_evaluated_inputs),
    Stage("report", ("name", "export"), run_report,
          inputs=lambda ctx: [ctx.artifact("evaluate", "results"),
                              ctx.artifact("benchmark", "results")]),
]

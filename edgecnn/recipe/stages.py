"""The stages of ``edgecnn build``: model -> train -> export -> quantize -> compile -> evaluate ->
benchmark -> report.

Export comes before quantization because the quantizers of the ONNX-based targets (ONNX Runtime's
layout, TensorRT's explicit Q/DQ layout) work on the exported graph; TensorRT engines are built in
the compile stage (:mod:`edgecnn.recipe.tensorrt_target`). Each stage reads earlier
artifacts through the build context and returns a summary (see :mod:`edgecnn.recipe.pipeline`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.atomic import atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.pipeline import BuildContext, Stage
from edgecnn.settings import cache_dir

FP32_ONNX = "model.fp32.onnx"
INT8_ONNX = "model.int8.onnx"
INT8_TENSORRT_ONNX = "model.int8.tensorrt.onnx"  # Q/DQ laid out for TensorRT


def _rel(ctx: BuildContext, path: Path) -> str:
    return str(path.relative_to(ctx.run_dir))


def _resolution(ctx: BuildContext) -> int:
    return ctx.done["model"]["resolution"]


def _load_trained_model(ctx: BuildContext):
    """The recipe's model with the weights the build produced (or started from)."""
    from safetensors.torch import load_file

    from edgecnn.train.trainer import build_model

    model = build_model(ctx.recipe, ctx.done["model"]["num_classes"])
    if "train" in ctx.done:
        model.load_state_dict(load_file(str(ctx.artifact("train", "weights"))), strict=True)
    return model.eval()


def _split(ctx: BuildContext, split: str):
    from edgecnn.data import load_split

    d = ctx.recipe.data
    return load_split(d.dataset, split, size=_resolution(ctx), val_size=d.val_size,
                      seed=d.split_seed)


def _norm(ctx: BuildContext) -> tuple[tuple, tuple]:
    card = ctx.done["model"]
    return tuple(ctx.recipe.data.mean or card["mean"]), tuple(ctx.recipe.data.std or card["std"])


# -- model ------------------------------------------------------------------------------------


def run_model(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.data.splits import split_index
    from edgecnn.profile import profile_model
    from edgecnn.train.trainer import build_model

    index, _ = split_index(ctx.recipe.data.dataset, "train" if ctx.recipe.train is not None
                           else ctx.recipe.data.eval_split)
    model = build_model(ctx.recipe, len(index.classes))
    resolution = ctx.recipe.model.resolution or model.card.resolution
    meta = model.to("meta")
    profile = profile_model(meta, resolution)
    card = {**model.card.to_dict(), "resolution": resolution, "params": profile.params,
            "macs": profile.macs, "classes": index.classes}
    atomic_write_json(folder / "card.json", card)
    ctx.console.print(f"  {card['name']}: {profile.params:,} params, {profile.macs:,} MACs at "
                      f"{resolution}x{resolution}, {card['num_classes']} classes")
    return {**card, "artifacts": {"card": _rel(ctx, folder / "card.json")}}


def _pretrained_input(ctx: BuildContext) -> list[Path]:
    from edgecnn.train.trainer import resolve_path

    p = ctx.recipe.model.pretrained
    return [Path(resolve_path(p))] if p else []


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
            "artifacts": {"weights": _rel(ctx, folder / "best.safetensors"),
                          "result": _rel(ctx, folder / "result.json")}}


def _train_inputs(ctx: BuildContext) -> list[Path]:
    return [ctx.artifact("train", "weights")] if "train" in ctx.done else _pretrained_input(ctx)


# -- export -----------------------------------------------------------------------------------


def run_export(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.backends.torch_backend import TorchRunner
    from edgecnn.data.loaders import BatchLoader
    from edgecnn.export.onnx_export import export_onnx

    cfg = ctx.recipe.export.onnx
    model = _load_trained_model(ctx)
    path = folder / FP32_ONNX
    info = export_onnx(model, path, _resolution(ctx), opset=cfg.opset,
                       dynamic_batch=cfg.dynamic_batch, simplify=cfg.simplify)
    # Numeric check on real test images: the exported graph must compute the torch function.
    test = _split(ctx, ctx.recipe.data.eval_split)
    sample = test.subset(np.arange(min(cfg.check_samples, len(test))), "check samples")
    mean, std = _norm(ctx)
    x = next(iter(BatchLoader(sample, len(sample), mean, std)))[0].numpy()
    reference = TorchRunner(model).run(x)
    exported = OnnxRuntimeRunner(path).run(x)
    diff = float(np.abs(reference - exported).max())
    agree = float((reference.argmax(1) == exported.argmax(1)).mean() * 100)
    ctx.console.print(f"  {FP32_ONNX}: opset {info.opset}, {info.simplifier or 'not simplified'}"
                      f" ({info.nodes_before} -> {info.nodes_after} nodes); torch vs ONNX on "
                      f"{len(x)} test images: max |diff| {diff:.2e}, top-1 agreement {agree:.1f}%")
    if diff > cfg.max_abs_diff:
        raise EdgeCNNError(f"exported ONNX differs from the torch model by {diff:.3e} "
                           f"(> export.onnx.max_abs_diff {cfg.max_abs_diff})")
    return {"opset": info.opset, "simplifier": info.simplifier, "max_abs_diff": diff,
            "top1_agreement": agree, "check_samples": len(x), "metadata": info.metadata,
            "artifacts": {"fp32": _rel(ctx, path)}}


# -- quantize ---------------------------------------------------------------------------------


def run_quantize(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.data import calibration_indices
    from edgecnn.data.loaders import BatchLoader
    from edgecnn.quantize.onnxruntime_static import quantize_static_onnx

    cfg = ctx.recipe.quantize
    train = _split(ctx, "train")
    picks = calibration_indices(len(train), cfg.calibration.samples, cfg.calibration.seed)
    mean, std = _norm(ctx)
    calib = np.concatenate([x.numpy() for x, _ in BatchLoader(
        train.subset(picks, "calibration"), 256, mean, std)])
    info = quantize_static_onnx(ctx.artifact("export", "fp32"), folder / INT8_ONNX, calib,
                                method=cfg.calibration.method, per_channel=cfg.per_channel,
                                reduce_range=cfg.reduce_range)
    ctx.console.print(f"  {INT8_ONNX}: {info.quantizer}, {cfg.calibration.method} calibration "
                      f"on {len(picks)} train images")
    artifacts = {"int8": _rel(ctx, folder / INT8_ONNX)}
    export = ctx.recipe.export
    if "tensorrt" in export.targets and "int8" in export.tensorrt.precisions:
        trt = quantize_static_onnx(ctx.artifact("export", "fp32"), folder / INT8_TENSORRT_ONNX,
                                   calib, method=cfg.calibration.method, layout="tensorrt")
        artifacts["int8_tensorrt"] = _rel(ctx, folder / INT8_TENSORRT_ONNX)
        ctx.console.print(f"  {INT8_TENSORRT_ONNX}: {trt.quantizer}")
    return {"quantizer": info.quantizer, "method": info.method, "samples": info.samples,
            "per_channel": info.per_channel, "reduce_range": info.reduce_range,
            "calibration_split": train.description,
            "calibration_indices_sha256": hashlib.sha256(picks.tobytes()).hexdigest(),
            "artifacts": artifacts}


# -- compile ----------------------------------------------------------------------------------


def run_compile(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    """Ahead-of-time engines: TensorRT's (ONNX Runtime compiles at session creation)."""
    targets: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    if "tensorrt" in ctx.recipe.export.targets:
        from edgecnn.recipe.tensorrt_target import compile_tensorrt

        result = compile_tensorrt(ctx, folder)
        for precision, engine in result.pop("engines").items():
            artifacts[f"tensorrt_{precision}"] = _rel(ctx, engine)
        result["onnx"] = {p: _rel(ctx, f) for p, f in result.get("onnx", {}).items()}
        targets["tensorrt"] = result
    return {"targets": targets, "artifacts": artifacts}


# -- evaluate ---------------------------------------------------------------------------------


def _artifacts(ctx: BuildContext) -> dict[str, Path]:
    """'backend/precision' -> file, for every artifact this build produced and can run."""
    found = {"onnxruntime/fp32": ctx.artifact("export", "fp32")}
    if "quantize" in ctx.done:
        found["onnxruntime/int8"] = ctx.artifact("quantize", "int8")
    for key in ctx.done.get("compile", {}).get("artifacts", {}):
        if key.startswith("tensorrt_"):
            found[f"tensorrt/{key.removeprefix('tensorrt_')}"] = ctx.artifact("compile", key)
    return found


def _open_runner(ctx: BuildContext, key: str, path: Path):
    backend = key.split("/")[0]
    if backend == "tensorrt":
        from edgecnn.backends.tensorrt.runner import TensorRTRunner
        from edgecnn.recipe.pipeline import sha256_of

        precision = key.split("/")[1]
        source = ctx.run_dir / ctx.done["compile"]["targets"]["tensorrt"]["onnx"][precision]
        return TensorRTRunner(path, onnx_sha256=sha256_of(source),
                              cuda_graph=ctx.recipe.export.tensorrt.cuda_graph)
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, threads=ctx.recipe.benchmark.threads)


def run_evaluate(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.train.evaluate import agreement, evaluate

    test = _split(ctx, ctx.recipe.data.eval_split)
    mean, std = _norm(ctx)
    results, predictions = {}, {}
    for key, path in _artifacts(ctx).items():
        result = evaluate(_open_runner(ctx, key, path), test, mean, std,
                          ctx.recipe.data.eval_batch_size)
        results[key] = result.to_dict()
        predictions[key] = result.predictions
        ctx.console.print(f"  {key}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}% on "
                          f"{test.description}")
    reference = "onnxruntime/fp32"
    for key in results:
        if key == reference:
            continue
        results[key]["agreement_with_fp32"] = agreement(predictions[key], predictions[reference])
        drop = results[reference]["top1"] - results[key]["top1"]
        results[key]["top1_drop"] = drop
        budget = ctx.recipe.quantize.max_accuracy_drop
        if key.endswith("/int8") and budget is not None and drop > budget:
            raise EdgeCNNError(f"{key} top-1 is {drop:.2f} points below FP32, more than "
                               f"quantize.max_accuracy_drop {budget}")
    atomic_write_json(folder / "results.json", results)
    return {"split": test.description, "results": results,
            "artifacts": {"results": _rel(ctx, folder / "results.json")}}


# -- benchmark --------------------------------------------------------------------------------


def run_benchmark(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.backends.torch_backend import TorchRunner
    from edgecnn.bench import run_context
    from edgecnn.bench.rounds import measure_in_rounds

    cfg = ctx.recipe.benchmark
    runners: dict[str, Any] = {key: _open_runner(ctx, key, path)
                               for key, path in _artifacts(ctx).items()
                               if key.split("/")[0] in cfg.backends}
    if "torch" in cfg.backends:
        import torch

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # eager PyTorch on the GPU where there is one: the baseline an engine is compared with
        device = "cuda" if torch.cuda.is_available() else "cpu"
        runners["torch/fp32"] = TorchRunner(_load_trained_model(ctx), device=device)
    results = measure_in_rounds(runners, cfg.batch_sizes, rounds=cfg.rounds, warmup=cfg.warmup,
                                iterations=cfg.iterations, seconds=cfg.seconds)
    for key, per_batch in results.items():
        line = ", ".join(f"batch {b}: p50 {s['p50_ms']:.3f} ms ({s['throughput']:.0f} img/s)"
                         for b, s in per_batch.items())
        ctx.console.print(f"  {key}: {line}")
    context = run_context(cfg.threads)
    atomic_write_json(folder / "results.json", {"results": results, "context": context})
    return {"results": results, "context": context,
            "artifacts": {"results": _rel(ctx, folder / "results.json")}}


# -- report -----------------------------------------------------------------------------------


def run_report(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.report.build_report import build_notes, build_rows, write_report

    rows, notes = build_rows(ctx, _artifacts(ctx)), build_notes(ctx)
    files = write_report(rows, ctx.run_dir, title=ctx.recipe.name, notes=notes)
    for note in notes:
        ctx.console.print(f"  [yellow]{note}[/yellow]")
    return {"rows": rows, "notes": notes,
            "artifacts": {k: _rel(ctx, p) for k, p in files.items()}}


def _export_input(ctx: BuildContext) -> list[Path]:
    return [ctx.artifact("export", "fp32")]


def _quantized_inputs(ctx: BuildContext) -> list[Path]:
    files = [ctx.artifact("export", "fp32")]
    if "quantize" in ctx.done:
        files += [ctx.run_dir / rel for rel in ctx.done["quantize"]["artifacts"].values()]
    return files


def _compile_environment(ctx: BuildContext) -> dict[str, Any]:
    from edgecnn.recipe.tensorrt_target import environment

    return environment(ctx)


def _evaluated_inputs(ctx: BuildContext) -> list[Path]:
    return list(_artifacts(ctx).values())


STAGES = [
    Stage("model", ("model", "data"), run_model, inputs=_pretrained_input),
    Stage("train", ("model", "data", "train"), run_train, inputs=_pretrained_input,
          enabled=lambda r: r.train is not None, keep_partial=True),
    Stage("export", ("model", "data", "export"), run_export, inputs=_train_inputs),
    Stage("quantize", ("data", "quantize", "export"), run_quantize, inputs=_export_input,
          enabled=lambda r: r.quantize.method == "ptq"),
    Stage("compile", ("export", "benchmark"), run_compile, inputs=_quantized_inputs,
          environment=_compile_environment),
    Stage("evaluate", ("data", "quantize", "benchmark"), run_evaluate, inputs=_evaluated_inputs),
    Stage("benchmark", ("benchmark",), run_benchmark, inputs=_evaluated_inputs),
    Stage("report", ("name", "export"), run_report,
          inputs=lambda ctx: [ctx.artifact("evaluate", "results"),
                              ctx.artifact("benchmark", "results")]),
]

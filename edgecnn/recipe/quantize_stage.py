"""The ``quantize`` stage: INT8 for each ONNX-based target, laid out for the runtime that runs it.

For every model variant (dense, pruned) and every quantized target of the recipe:

- ``onnxruntime``: ONNX Runtime's Q/DQ layout (``quantize/model.int8.onnx``);
- ``tensorrt`` (when ``int8`` is among its precisions): NVIDIA TensorRT Model Optimizer's ONNX
  PTQ (``model.int8.tensorrt.onnx``, :mod:`edgecnn.quantize.modelopt_tensorrt`), which the
  compile stage builds an engine from; its activation scales are the calibration table's
  wherever the table holds the tensor (the summary counts them: ``tensorrt_activation_scales``);
- ``openvino``: NNCF's quantization of the OpenVINO model (``model.int8.xml`` + ``.bin``).

All calibrate on the same images (:func:`edgecnn.recipe.inputs.calibration_images`: train
images, a calibration set, or images of the evaluation split that the evaluation then leaves out).
The ONNX targets share one calibration table per variant, saved under the recipe's name
(``quantize/<name>.calibration.json``) and reusable with ``edgecnn build --calibration FILE``
(the same scales again, with no ONNX Runtime calibration run; ModelOpt still calibrates the
images for the tensorrt target, whose scales the table then replaces).

``quantize.max_accuracy_drop`` turns on the accuracy-aware mode: when full INT8 loses more top-1
than that on the selection images (the val split, or train images outside the calibration set
when there is none, or the calibration images on a dataset with only the evaluation split --
never an evaluated image), the most sensitive layers go back to float
one at a time (:mod:`edgecnn.quantize.accuracy_aware`; NNCF's accuracy control for openvino),
and the summary lists them. ``quantize.method: qat`` first fine-tunes the model with ONNX
Runtime's fake quantization (:mod:`edgecnn.quantize.qat`) and quantizes that model instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.artifacts import ArtifactKey, file_stem, suffix
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.inputs import (
    CalibrationImages,
    calibration_images,
    load_model,
    norm,
    rel,
    resolution,
    selection_images,
    split,
)
from edgecnn.recipe.variants import variants

if TYPE_CHECKING:
    from edgecnn.data.splits import ImageSet
    from edgecnn.quantize.calibration_table import CalibrationTable
    from edgecnn.recipe.pipeline import BuildContext
    from edgecnn.recipe.schema import Recipe


def quantized_targets(recipe: Recipe) -> list[str]:
    """The export targets that get an INT8 artifact from this stage, in a fixed order."""
    targets = recipe.export.targets
    wanted = {"onnxruntime": "onnxruntime" in targets,
              "tensorrt": "tensorrt" in targets and "int8" in recipe.export.tensorrt.precisions,
              "openvino": "openvino" in targets}
    return [t for t, on in wanted.items() if on]


def table_name(ctx: BuildContext, variant: str) -> str:
    """The calibration table's file name: the recipe's name (and the variant, if pruned)."""
    return f"{ctx.recipe.name}{suffix(variant).replace('_', '.')}.calibration.json"


def run_quantize(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    cfg = ctx.recipe.quantize
    if "tensorrt" in quantized_targets(ctx.recipe):  # before any calibration or file
        from edgecnn.quantize.modelopt_tensorrt import require_modelopt

        require_modelopt()
    calibration = calibration_images(ctx)
    manifest = calibration.manifest
    given = _given_table(ctx)
    if given is not None:  # (the schema refuses a table with qat, whose model is new)
        _check_table_matches(ctx, given)
    selection = (selection_images(ctx, calibration) if cfg.max_accuracy_drop is not None
                 else None)
    artifacts: dict[str, str] = {}
    runs: dict[str, str] = {}
    results: dict[str, Any] = {}
    for variant in variants(ctx.recipe):
        sfx = suffix(variant)
        source = ctx.artifact("export", f"fp32{sfx}")
        record: dict[str, Any] = {}
        if cfg.method == "qat":
            source, record["qat"] = _qat_model(ctx, variant, calibration, folder)
            artifacts[f"qat_fp32{sfx}"] = rel(ctx, source)
        table, record["table"] = _table(ctx, source, calibration, manifest, given)
        table_path = table.save(folder / table_name(ctx, variant))
        artifacts[f"calibration{sfx}"] = rel(ctx, table_path)
        for target in quantized_targets(ctx.recipe):
            info, extra = _quantize_target(ctx, target, source, folder, variant, calibration,
                                           table, manifest, selection)
            name = "int8" if target == "onnxruntime" else f"int8_{target}"
            artifacts[f"{name}{sfx}"] = rel(ctx, info.path)
            if target == "openvino":  # the IR's weights travel with it
                artifacts[f"{name}_weights{sfx}"] = rel(ctx, info.path.with_suffix(".bin"))
            if target != "tensorrt":  # a TensorRT-layout ONNX runs as an engine (compile)
                runs[str(ArtifactKey(target, "int8", variant))] = f"{name}{sfx}"
            record[target] = {**info.to_dict(), "path": rel(ctx, info.path), **extra}
            ctx.console.print(f"  {info.path.name}: {info.quantizer}"
                              + _fallback_line(extra))
        results[variant] = record
    first = next(iter(results.values()))
    # the ONNX ranges' data: the given table's own, when one was applied
    data = given.calibration if given is not None else manifest
    return {"method": cfg.method,
            "calibration_method": given.method if given is not None else cfg.calibration.method,
            "samples": data.get("samples", len(calibration.indices)),
            "calibration_split": data.get("split", calibration.description),
            "calibration_manifest_sha256": data.get("sha256"),
            "calibration_indices_sha256": data.get("indices_sha256"),
            "calibration_table": str(cfg.calibration.table) if given is not None else None,
            "reduce_range": first.get("onnxruntime", {}).get("reduce_range"),
            # per variant: activation scales set from the table / left to ModelOpt's calibration
            "tensorrt_activation_scales": {v: r["tensorrt"]["activation_scales"]
                                           for v, r in results.items() if "tensorrt" in r},
            "selection": selection.description if selection is not None else None,
            "variants": results, "artifacts": artifacts, "runs": runs}


def _given_table(ctx: BuildContext) -> CalibrationTable | None:
    from edgecnn.quantize.calibration_table import load_calibration_table
    from edgecnn.settings import resolve_path

    path = ctx.recipe.quantize.calibration.table
    return load_calibration_table(resolve_path(path)) if path else None


def _check_table_matches(ctx: BuildContext, given: CalibrationTable) -> None:
    """Refuse, before any calibration or file, a table measured on none of this build's models."""
    from edgecnn.hashing import sha256_file

    models = {sha256_file(ctx.artifact("export", f"fp32{suffix(v)}")) for v in variants(ctx.recipe)}
    if given.model_sha256 not in models:
        raise EdgeCNNError(
            f"calibration table {ctx.recipe.quantize.calibration.table} was measured on another "
            f"model (FP32 ONNX sha256 {given.model_sha256[:12]}...), not on any model of this "
            "build; use the table a build of the same recipe and weights saved, or drop "
            "--calibration")


def _table(ctx: BuildContext, source: Path, calibration: CalibrationImages,
           manifest: dict[str, Any], given: CalibrationTable | None
           ) -> tuple[CalibrationTable, dict[str, Any]]:
    """The given table when it was measured on this model, else a fresh calibration."""
    from edgecnn.hashing import sha256_file
    from edgecnn.quantize.onnxruntime_static import calibrate_onnx

    cfg = ctx.recipe.quantize.calibration
    if given is not None and given.model_sha256 == sha256_file(source):
        return given, {"source": str(cfg.table), "sha256": given.sha256}
    table = calibrate_onnx(source, calibration.images, method=cfg.method, manifest=manifest,
                           percentile=cfg.percentile)
    return table, {"source": "calibrated", "sha256": table.sha256}


def _quantize_target(ctx: BuildContext, target: str, source: Path, folder: Path, variant: str,
                     calibration: CalibrationImages, table: CalibrationTable,
                     manifest: dict[str, Any], selection: ImageSet | None):
    """One INT8 artifact; accuracy-aware when the recipe has a budget. -> (info, extra facts)"""
    from edgecnn.quantize.targets import artifact_name, quantize_for_target

    cfg = ctx.recipe.quantize
    out = folder / artifact_name(target, file_stem(variant))
    options = {"method": cfg.calibration.method, "reduce_range": cfg.reduce_range}
    if selection is None:
        info = quantize_for_target(target, source, out, calibration.images,
                                   per_channel=cfg.per_channel,
                                   table=None if target == "openvino" else table,
                                   manifest=manifest, percentile=cfg.calibration.percentile,
                                   **options)
        return info, {}
    mean, std = norm(ctx)
    if target == "openvino":
        from edgecnn.data.eval_batches import eval_batches
        from edgecnn.quantize.openvino_nncf import quantize_openvino_with_accuracy_control

        result = quantize_openvino_with_accuracy_control(
            source, out, calibration.images, lambda: eval_batches(selection, 64, mean, std),
            max_accuracy_drop=cfg.max_accuracy_drop, method=cfg.calibration.method,
            percentile=cfg.calibration.percentile,
            overflow_fix=cfg.reduce_range)  # NNCF's name for 7-bit weights
        aware = {"max_accuracy_drop": cfg.max_accuracy_drop, "fp32_top1": result.fp32_top1,
                 "top1": result.int8_top1, "fallback_layers": result.fallback_layers,
                 "by": "nncf.quantize_with_accuracy_control"}
        if result.fallback_layers:
            aware["p50_ms"] = _fallback_latency(ctx, target, source, result.info.path,
                                                calibration, None, manifest)
        return result.info, {"accuracy_aware": aware}
    from edgecnn.quantize.accuracy_aware import quantize_with_accuracy_budget

    result = quantize_with_accuracy_budget(
        source, out, calibration.images, _top1_on(ctx, selection),
        max_accuracy_drop=cfg.max_accuracy_drop, table=table, per_channel=cfg.per_channel,
        layout=target, progress=lambda line: ctx.console.print(f"    {line}"), **options)
    aware = result.to_dict()
    if result.fallback_layers and target != "tensorrt":  # TensorRT's layout is timed on a GPU
        aware["p50_ms"] = _fallback_latency(ctx, target, source, result.info.path, calibration,
                                            table, manifest)
    return result.info, {"accuracy_aware": aware}


def _fallback_latency(ctx: BuildContext, target: str, source: Path, fallback: Path,
                      calibration: CalibrationImages, table: CalibrationTable | None,
                      manifest: dict[str, Any]) -> dict[str, float]:
    """What returning layers to float cost: p50 at batch 1 of FP32, full INT8 and the fallback
    model, side by side on the target's runtime (the full INT8 model is made for this only)."""
    import tempfile

    from edgecnn.quantize.targets import artifact_name, quantize_for_target
    from edgecnn.targets.quick_timing import p50_side_by_side

    cfg = ctx.recipe.quantize
    with tempfile.TemporaryDirectory(dir=fallback.parent, prefix=".full-int8-") as work:
        full = Path(work) / artifact_name(target, "full")
        quantize_for_target(target, source, full, calibration.images, method=cfg.calibration.method,
                            per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
                            table=table, manifest=manifest, percentile=cfg.calibration.percentile)
        p50 = p50_side_by_side({"fp32": source, "int8_full": full, "int8_fallback": fallback},
                               target, threads=ctx.recipe.benchmark.threads)
    ctx.console.print(f"    fallback cost: p50 FP32 {p50['fp32']:.3f} ms, full INT8 "
                      f"{p50['int8_full']:.3f} ms, with float layers {p50['int8_fallback']:.3f} ms")
    return p50


def _top1_on(ctx: BuildContext, images: ImageSet):
    """path -> top-1 (%) of that ONNX model in ONNX Runtime on ``images``."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.train.evaluate import evaluate

    mean, std = norm(ctx)

    def top1(path: Path) -> float:
        runner = OnnxRuntimeRunner(path, threads=ctx.recipe.benchmark.threads)
        return evaluate(runner, images, mean, std, ctx.recipe.data.eval_batch_size).top1

    return top1


def _fallback_line(extra: dict[str, Any]) -> str:
    aware = extra.get("accuracy_aware")
    if not aware:
        return ""
    layers = aware.get("fallback_layers") or []
    return (f"; selection top-1 FP32 {aware['fp32_top1']:.2f}%, INT8 {aware['top1']:.2f}%"
            + (f", {len(layers)} layer(s) in float: {', '.join(layers[:6])}"
               + (" ..." if len(layers) > 6 else "") if layers else ", no layer in float"))


def _qat_model(ctx: BuildContext, variant: str, calibration: CalibrationImages,
               folder: Path) -> tuple[Path, dict[str, Any]]:
    """Fine-tune the variant with fake quantization; its FP32 ONNX is what gets quantized."""
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.quantize.qat import qat_finetune
    from edgecnn.train.trainer import pick_device

    cfg, recipe = ctx.recipe.quantize, ctx.recipe
    mean, std = norm(ctx)
    train = split(ctx, "train")
    model, result = qat_finetune(
        load_model(ctx, variant), train, calibration=calibration.images, mean=mean, std=std,
        epochs=cfg.qat.epochs, lr=cfg.qat.lr, batch_size=cfg.qat.batch_size,
        per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
        augment=recipe.data.augment,
        label_smoothing=recipe.train.label_smoothing if recipe.train else 0.0,
        calibration_method=cfg.calibration.method,
        device=str(pick_device(recipe.train.device if recipe.train else "auto")),
        console=ctx.console)
    onnx = recipe.export.onnx
    path = folder / f"{file_stem(variant)}.qat.fp32.onnx"
    export_onnx(model.cpu().eval(), path, resolution(ctx), opset=onnx.opset,
                dynamic_batch=onnx.dynamic_batch, simplify=onnx.simplify)
    return path, result.to_dict()

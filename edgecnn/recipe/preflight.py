"""Checks of everything a recipe names outside itself, before a build creates anything.

A missing dataset or weights file, a split that does not exist, more calibration samples than
the train split holds, or an output folder that cannot be written each stop the build here, with
one message, so no run directory is left behind.
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.data.splits import split_index
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import Recipe
from edgecnn.rundir import check_run_dir
from edgecnn.settings import cache_dir


def preflight(recipe: Recipe, run_dir: Path) -> None:
    from edgecnn.models.checkpoints import read_state_dict
    from edgecnn.train.trainer import resolve_path

    cache_dir()  # the build caches trainings and decoded images there: a file is refused
    check_model(recipe)
    if recipe.model.pretrained:
        read_state_dict(resolve_path(recipe.model.pretrained))  # exists, and is a checkpoint
    d = recipe.data
    _, root = split_index(d.dataset, d.eval_split)
    if d.eval_split == "val" and d.val_size == 0 and not (root / "val").is_dir():
        raise EdgeCNNError(f"data.eval_split is val, but dataset {d.dataset!r} has no val folder "
                           "and data.val_size is 0, so val would be the train images; set "
                           "data.val_size or evaluate on test")
    calibrates = needs_calibration(recipe)
    if recipe.train is not None or calibrates:
        train, _ = split_index(d.dataset, "train")
        available = len(train) - d.val_size
        if available < 1:
            raise EdgeCNNError(f"data.val_size {d.val_size} leaves no training images "
                               f"(the train folder holds {len(train)})")
        samples = recipe.quantize.calibration.samples
        if calibrates and not recipe.quantize.calibration.set and samples > available:
            raise EdgeCNNError(
                f"quantize.calibration.samples is {samples}, but the train split holds "
                f"{available} images ({len(train)} minus data.val_size {d.val_size}); "
                f"use at most {available}")
        check_batch_sizes(recipe, available)
    if recipe.quantize.calibration.set:
        from edgecnn.quantize.calibration_set import load_calibration_set

        definition = load_calibration_set(recipe.quantize.calibration.set)
        if definition.dataset != d.dataset:
            raise EdgeCNNError(
                f"quantize.calibration.set {recipe.quantize.calibration.set} draws from dataset "
                f"{definition.dataset!r}, but data.dataset is {d.dataset!r}; calibrate on the "
                "data the model is evaluated on (another set, or samples/seed instead of set)")
    if recipe.quantize.calibration.table:
        from edgecnn.quantize.calibration_table import load_calibration_table

        load_calibration_table(resolve_path(recipe.quantize.calibration.table))
    check_targets(recipe)
    check_run_dir(run_dir)


def check_model(recipe: Recipe) -> None:
    """The architecture takes the recipe's options (built on the meta device: no memory)."""
    from edgecnn.models import create_model

    m = recipe.model
    try:
        create_model(m.arch, device="meta", **m.options, in_chans=m.in_chans,
                     cifar_stem=m.cifar_stem, separable=m.separable, resolution=m.resolution)
    except EdgeCNNError as exc:
        raise EdgeCNNError(f"model: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError, RuntimeError,
            OverflowError) as exc:
        raise EdgeCNNError(f"model.options {m.options} do not build {m.arch}: "
                           f"{type(exc).__name__}: {exc}") from None


def check_batch_sizes(recipe: Recipe, available: int) -> None:
    """Trainings drop the last incomplete batch: a batch larger than the split trains nothing."""
    batches = {"train.batch_size": recipe.train.batch_size if recipe.train else None,
               "prune.finetune.batch_size": (recipe.prune.finetune.batch_size
                                             if recipe.prune and recipe.prune.finetune else None),
               "quantize.qat.batch_size": (recipe.quantize.qat.batch_size
                                           if recipe.quantize.method == "qat" else None)}
    for field, size in batches.items():
        if size is not None and size > available:
            raise EdgeCNNError(f"{field} is {size}, larger than the {available} training images "
                               f"(the train split minus data.val_size); use at most {available}")


def needs_calibration(recipe: Recipe) -> bool:
    """Whether any quantizer of the build draws calibration images from the train split."""
    tflite_int8 = "tflite" in recipe.export.targets and "int8" in recipe.export.tflite.precisions
    return recipe.quantize.method != "none" or tflite_int8


def check_targets(recipe: Recipe) -> None:
    """Export targets and benchmark backends that contradict each other or the quantize section."""
    export, bench = recipe.export, recipe.benchmark
    for backend in ("tensorrt", "tflite", "openvino"):
        if backend in bench.backends and backend not in export.targets:
            raise EdgeCNNError(f"benchmark.backends lists {backend} but export.targets does "
                               f"not; add {backend} to export.targets")
    if ("tensorrt" in export.targets and "int8" in export.tensorrt.precisions
            and recipe.quantize.method != "ptq"):
        raise EdgeCNNError("export.tensorrt.precisions has int8, which is built from the Q/DQ "
                           "ONNX of quantize.method: ptq; set it or drop int8")
    if "tensorrt" in export.targets and "int8" in export.tensorrt.precisions:
        # the Q/DQ ONNX is ModelOpt's: refuse before training, not at the quantize stage
        from edgecnn.quantize.modelopt_tensorrt import require_modelopt

        require_modelopt()

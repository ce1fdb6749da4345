"""Checks of everything a recipe names outside itself, before a build creates anything.

A missing dataset or weights file, a split that does not exist, more calibration samples than
the train split holds, or an output folder that cannot be written each stop the build here, with
one message, so no run directory is left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecnn.data.splits import split_index
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import Recipe


def check_writable(run_dir: Path) -> None:
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise EdgeCNNError(f"output directory {run_dir} cannot be created: {existing} is not a "
                           "writable folder")


def preflight(recipe: Recipe, run_dir: Path) -> None:
    from edgecnn.models.checkpoints import read_state_dict
    from edgecnn.train.trainer import resolve_path

    if recipe.model.pretrained:
        read_state_dict(resolve_path(recipe.model.pretrained))  # exists, and is a checkpoint
    d = recipe.data
    split_index(d.dataset, d.eval_split)
    calibrates = needs_calibration(recipe)
    if recipe.train is not None or calibrates:
        train, _ = split_index(d.dataset, "train")
        available = len(train) - d.val_size
        if available < 1:
            raise EdgeCNNError(f"data.val_size {d.val_size} leaves no training images "
                               f"(the train folder holds {len(train)})")
        samples = recipe.quantize.calibration.samples
        if calibrates and samples > available:
            raise EdgeCNNError(
                f"quantize.calibration.samples is {samples}, but the train split holds "
                f"{available} images ({len(train)} minus data.val_size {d.val_size}); "
                f"use at most {available}")
    if recipe.quantize.calibration.set:
        from edgecnn.quantize.calibration_set import load_calibration_set

        load_calibration_set(recipe.quantize.calibration.set)
    if recipe.quantize.calibration.table:
        from edgecnn.quantize.calibration_table import load_calibration_table

        load_calibration_table(resolve_path(recipe.quantize.calibration.table))
    check_targets(recipe)
    check_writable(run_dir)


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

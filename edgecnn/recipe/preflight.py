"""Checks of everything a recipe names outside itself, before a build creates anything.

A missing dataset or weights file, a split that does not exist (training on a dataset without
train), more calibration samples than their split holds, a model that does not build (an entry
point that does not import, an ONNX file with two inputs), or an output folder that cannot be
written each stop the build here, with one message, so no run directory is left behind.
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.data.splits import has_split, split_index, split_size
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import Recipe
from edgecnn.rundir import check_run_dir
from edgecnn.settings import cache_dir, resolve_path
from edgecnn.targets.registry import TARGETS


def preflight(recipe: Recipe, run_dir: Path) -> None:
    from edgecnn.models.checkpoints import read_state_dict

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
    trains = [field for field, on in (
        ("train", recipe.train is not None), ("prune", recipe.prune is not None),
        ("quantize.method qat", recipe.quantize.method == "qat")) if on]
    if trains:
        if not has_split(d.dataset, "train"):
            raise EdgeCNNError(f"{trains[0]} needs a train split, and dataset {d.dataset!r} has "
                               f"none (only {', '.join(available_splits(d.dataset))}); drop "
                               f"{trains[0]} to deploy the model as it is")
        train, _ = split_index(d.dataset, "train")
        available = len(train) - d.val_size
        if available < 1:
            raise EdgeCNNError(f"data.val_size {d.val_size} leaves no training images "
                               f"(the train folder holds {len(train)})")
        check_batch_sizes(recipe, available)
    if needs_calibration(recipe):
        check_calibration(recipe)
    if recipe.quantize.calibration.table:
        from edgecnn.quantize.calibration_table import load_calibration_table

        load_calibration_table(resolve_path(recipe.quantize.calibration.table))
    check_targets(recipe)
    check_run_dir(run_dir)


def check_calibration(recipe: Recipe) -> None:
    """The calibration images exist, and leave images to evaluate when they come from the
    evaluation split (which then evaluates on the rest)."""
    from edgecnn.recipe.inputs import calibration_split

    d, cfg = recipe.data, recipe.quantize.calibration
    if cfg.set:
        from edgecnn.quantize.calibration_set import load_calibration_set

        definition = load_calibration_set(cfg.set)
        if definition.dataset != d.dataset:
            raise EdgeCNNError(
                f"quantize.calibration.set {cfg.set} draws from dataset "
                f"{definition.dataset!r}, but data.dataset is {d.dataset!r}; calibrate on the "
                "data the model is evaluated on (another set, or samples/seed instead of set)")
        source, samples = definition.split, definition.samples
    else:
        source, samples = calibration_split(recipe), cfg.samples
        if not has_split(d.dataset, source):
            raise EdgeCNNError(f"quantize.calibration.split {source!r}: dataset {d.dataset!r} "
                               f"has no such split; valid: "
                               f"{', '.join(available_splits(d.dataset))}")
    size = split_size(d.dataset, source, d.val_size)
    if samples > size:
        raise EdgeCNNError(f"quantize.calibration.samples is {samples}, but the {source} "
                           f"split holds {size} images; use at most {size}")
    if source == d.eval_split and samples >= split_size(d.dataset, d.eval_split, d.val_size):
        raise EdgeCNNError(f"calibrating on {samples} images of the evaluation split "
                           f"{d.eval_split!r} leaves none to evaluate on (calibration images "
                           "are left out of the evaluation); calibrate on fewer")


def available_splits(dataset: str) -> list[str]:
    return [s for s in ("train", "val", "test") if has_split(dataset, s)]


def check_model(recipe: Recipe) -> None:
    """The model builds with the recipe's options (a registered one on the meta device: no
    memory); an entry point imports and returns a module; an ONNX file has one image input."""
    m = recipe.model
    if m.onnx:
        from edgecnn.recipe.onnx_model import check_onnx_model

        check_onnx_model(recipe)
        return
    if m.entry:
        from edgecnn.train.trainer import build_model

        build_model(recipe, m.num_classes or 1000, device="meta")
        return
    from edgecnn.models import create_model
    from edgecnn.models.registry import ModelOptionsError

    try:
        create_model(m.arch, device="meta", **m.options, in_chans=m.in_chans,
                     cifar_stem=m.cifar_stem, separable=m.separable, resolution=m.resolution)
    except ModelOptionsError as exc:
        cause = exc.__cause__
        raise EdgeCNNError(f"model.options {m.options} do not build {m.arch}: "
                           f"{type(cause).__name__}: {cause}") from exc
    except EdgeCNNError as exc:
        raise EdgeCNNError(f"model: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError, RuntimeError,
            OverflowError) as exc:
        raise EdgeCNNError(f"model.options {m.options} do not build {m.arch}: "
                           f"{type(exc).__name__}: {exc}") from exc


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
    """Whether any quantizer of the build draws calibration images."""
    return recipe.quantize.method != "none" or any(
        TARGETS[name].calibrates(recipe) for name in recipe.export.targets)


def check_targets(recipe: Recipe) -> None:
    """Export targets and benchmark backends that contradict each other or the quantize section
    (each target's own checks: :attr:`edgecnn.targets.base.Target.check_recipe`)."""
    export, bench = recipe.export, recipe.benchmark
    for name, target in TARGETS.items():
        if (target.exported and not target.always_built and name in bench.backends
                and name not in export.targets):
            raise EdgeCNNError(f"benchmark.backends lists {name} but export.targets does "
                               f"not; add {name} to export.targets")
    for name in export.targets:
        TARGETS[name].check_recipe(recipe)

"""What the build's stages read from the recipe and from earlier stages: the model of a variant
with its weights, the data splits, the input normalisation, the calibration and check images,
and paths relative to the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.artifacts import DENSE, PRUNED

if TYPE_CHECKING:
    from torch import nn

    from edgecnn.data.splits import ImageSet
    from edgecnn.recipe.pipeline import BuildContext
    from edgecnn.recipe.schema import Recipe


def rel(ctx: BuildContext, path: Path) -> str:
    return str(path.relative_to(ctx.run_dir))


def resolution(ctx: BuildContext) -> int:
    return ctx.done["model"]["resolution"]


def load_model(ctx: BuildContext, variant: str = DENSE) -> nn.Module:
    """The recipe's model with the weights the build produced (or started from), in eval mode:
    the dense model as trained, or the pruned one as the prune stage left it."""
    from safetensors.torch import load_file

    from edgecnn.train.trainer import build_model

    model = build_model(ctx.recipe, ctx.done["model"]["num_classes"])
    if variant == PRUNED:
        from edgecnn.prune.persistence import load_pruned

        return load_pruned(model, ctx.artifact("prune", "weights")).eval()
    if "train" in ctx.done:
        model.load_state_dict(load_file(str(ctx.artifact("train", "weights"))), strict=True)
    return model.eval()


def split(ctx: BuildContext, name: str) -> ImageSet:
    from edgecnn.data import load_split

    d = ctx.recipe.data
    return load_split(d.dataset, name, size=resolution(ctx), val_size=d.val_size,
                      seed=d.split_seed)


def norm(ctx: BuildContext) -> tuple[tuple, tuple]:
    card = ctx.done["model"]
    return tuple(ctx.recipe.data.mean or card["mean"]), tuple(ctx.recipe.data.std or card["std"])


@dataclass
class CalibrationImages:
    """The normalised NCHW float32 images every quantizer of the build calibrates on."""

    images: np.ndarray
    indices: np.ndarray  # into the split they come from
    description: str  # of that split
    manifest: dict[str, Any]  # what calibration tables record (edgecnn.quantize)
    source: ImageSet  # the same images as decoded, which say which files they are


def calibration_split(recipe: Recipe) -> str | None:
    """The split ``samples``/``seed`` draw from (None when a calibration set names its own):
    ``quantize.calibration.split``, else train, else -- a dataset with no train split, such as
    an ImageNet val folder -- the evaluation split, whose calibration images are then left out
    of the evaluation (:func:`evaluation_images`)."""
    from edgecnn.data.splits import has_split

    cfg = recipe.quantize.calibration
    if cfg.set:
        return None
    if cfg.split:
        return cfg.split
    return "train" if has_split(recipe.data.dataset, "train") else recipe.data.eval_split


def calibration_images(ctx: BuildContext) -> CalibrationImages:
    """``quantize.calibration.samples`` images drawn deterministically
    (:func:`edgecnn.data.calibration_indices`) from :func:`calibration_split`, or the named
    calibration set of ``calibration/`` (``quantize.calibration.set``), so every target
    calibrates on the same images."""
    from edgecnn.data import calibration_indices
    from edgecnn.data.eval_batches import eval_batches
    from edgecnn.quantize.calibration_table import calibration_manifest, indices_sha256

    cfg = ctx.recipe.quantize.calibration
    mean, std = norm(ctx)
    if cfg.set:
        from edgecnn.quantize.calibration_set import calibration_data, load_calibration_set

        data = calibration_data(load_calibration_set(cfg.set), mean=mean, std=std,
                                resolution=resolution(ctx))
        return CalibrationImages(data.array, data.indices, data.manifest["split"],
                                 data.manifest, data.images)
    source = split(ctx, calibration_split(ctx.recipe))
    picks = calibration_indices(len(source), cfg.samples, cfg.seed)
    chosen = source.subset(picks, "calibration")
    images = np.concatenate([x for x, _ in eval_batches(chosen, 256, mean, std)])
    manifest = calibration_manifest(
        images, dataset=ctx.recipe.data.dataset, split=source.description, samples=len(picks),
        seed=cfg.seed, indices_sha256=indices_sha256(picks),
        mean=list(mean), std=list(std), resolution=resolution(ctx))
    return CalibrationImages(images, picks, source.description, manifest, chosen)


def evaluation_images(ctx: BuildContext) -> ImageSet:
    """The evaluation split, without the images any quantizer of the build calibrated on: a
    model is never scored on the images its ranges were chosen from. (Those images come from
    this split only when the recipe asks so, or when the dataset has no train split.)"""
    from edgecnn.recipe.preflight import needs_calibration

    test = split(ctx, ctx.recipe.data.eval_split)
    if not needs_calibration(ctx.recipe):
        return test
    used = test.overlap(calibration_images(ctx).source)
    if not used.size:
        return test
    keep = np.setdiff1d(np.arange(len(test)), used)
    return test.subset(keep, f"{test.description} minus the {used.size} calibration images "
                             f"({len(keep)} images)")


def check_images(ctx: BuildContext) -> np.ndarray:
    """The first ``export.onnx.check_samples`` images of the evaluation split, normalised: what
    every export is compared with its torch model on."""
    from edgecnn.data.eval_batches import eval_batches

    test = split(ctx, ctx.recipe.data.eval_split)
    sample = test.subset(np.arange(min(ctx.recipe.export.onnx.check_samples, len(test))),
                         "check samples")
    mean, std = norm(ctx)
    return next(iter(eval_batches(sample, len(sample), mean, std)))[0]


SELECTION_IMAGES = 2000  # train images that choose among quantized models when there is no val


def selection_images(ctx: BuildContext, calibration: CalibrationImages) -> ImageSet:
    """Images that choose between quantized models (the accuracy-aware fallback), never the
    evaluated ones, which must stay an honest measurement of the choice: the val split (when
    it is not the evaluation split), else train images outside the calibration images, else --
    a dataset with only the evaluation split -- the calibration images themselves, which the
    evaluation leaves out."""
    from edgecnn.data.splits import has_split

    d = ctx.recipe.data
    has_train = has_split(d.dataset, "train")
    if d.eval_split != "val" and (_val_folder(ctx) or (has_train and d.val_size)):
        return split(ctx, "val")
    if not has_train:
        source = calibration.source
        return source.subset(np.arange(len(source)),
                             f"the {len(source)} calibration images (left out of the evaluation)")
    cfg = ctx.recipe.quantize.calibration
    train = split(ctx, "train")
    # a calibration set drawn from another split cannot overlap this one
    used = train.overlap(calibration.source)
    rest = np.setdiff1d(np.arange(len(train)), used)
    picks = np.sort(np.random.default_rng(cfg.seed + 1).choice(
        rest, size=min(SELECTION_IMAGES, len(rest)), replace=False))
    return train.subset(picks, f"{len(picks)} train images outside the calibration set")


def _val_folder(ctx: BuildContext) -> bool:
    from edgecnn.data.sources import dataset_root

    return (dataset_root(ctx.recipe.data.dataset) / "val").is_dir()

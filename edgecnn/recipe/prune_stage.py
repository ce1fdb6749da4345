"""The ``prune`` stage: the trained model pruned in steps, each followed by fine-tuning.

Writes ``prune/pruned.safetensors`` (weights plus the pruned layer widths, see
:mod:`edgecnn.prune.persistence`), ``prune/result.json`` and one ``step-N/`` training folder per
fine-tuned step. Pruning is deterministic for the same weights, so a killed build re-prunes the
finished steps, reloads their fine-tuned weights and resumes the step it was in.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.atomic import atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.inputs import load_model, norm, rel, resolution, split

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext

WEIGHTS = "pruned.safetensors"
TAYLOR_IMAGES = 64  # a labelled batch of train images for the Taylor importance


def _taylor_batch(ctx: BuildContext):
    from edgecnn.data import calibration_indices
    from edgecnn.data.loaders import BatchLoader

    train = split(ctx, "train")
    picks = calibration_indices(len(train), min(TAYLOR_IMAGES, len(train)), seed=0)
    mean, std = norm(ctx)
    return next(iter(BatchLoader(train.subset(picks, "taylor batch"), len(picks), mean, std)))


def _step_fingerprint(ctx: BuildContext, step: int) -> str:
    """What a step's fine-tuning depends on: the prune section (less the fields that only judge
    or select the result, so changing them resumes the finished training instead of redoing
    it), the step, the model and data sections, and the dense weights' content."""
    from edgecnn.hashing import sha256_file
    from edgecnn.settings import resolve_path

    prune = ctx.recipe.prune.model_dump(mode="json", exclude={"max_accuracy_drop", "keep_dense"})
    if "train" in ctx.done:
        source = sha256_file(ctx.artifact("train", "weights"))
    else:  # no training: the pretrained checkpoint, by content (preflight checked it exists)
        pretrained = ctx.recipe.model.pretrained
        source = sha256_file(resolve_path(pretrained)) if pretrained else None
    text = json.dumps({"prune": prune, "step": step,
                       "model": ctx.recipe.model.model_dump(mode="json"),
                       "data": ctx.recipe.data.model_dump(mode="json"), "weights": source},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finetune(ctx: BuildContext, model, step: int, folder: Path) -> dict[str, Any]:
    from edgecnn.prune.masks import reapply_masks
    from edgecnn.train.checkpoint import read_last
    from edgecnn.train.trainer import Trainer

    step_dir = folder / f"step-{step}"
    key = _step_fingerprint(ctx, step)
    last = read_last(step_dir)
    restart = last is not None and last.get("fingerprint") != key
    cfg = ctx.recipe.prune
    distill = None
    if cfg.distill is not None:
        from edgecnn.train.distill import Distillation

        distill = Distillation(load_model(ctx), cfg.distill.weight, cfg.distill.temperature)
    ctx.console.print(f"  fine-tuning step {step} for {cfg.finetune.epochs} epochs"
                      + (", the dense model as teacher" if distill else ""))
    trainer = Trainer(ctx.recipe, ctx.run_dir, ctx.console, cfg=cfg.finetune, folder=step_dir,
                      distill=distill)
    result = trainer.run(restart=restart, model=model, fingerprint=key,
                         after_step=lambda: reapply_masks(model))
    return {"epochs": result["epochs"], "seconds": result["train_seconds"],
            "best_epoch": result["best_epoch"], "test": result.get("test")}


def environment(ctx: BuildContext) -> dict[str, Any]:
    """What the pruned widths depend on beyond the recipe: ``round_to: auto`` reads the CPU."""
    from edgecnn.prune.structured import channel_multiple

    if ctx.recipe.prune is None or ctx.recipe.prune.method != "channels":
        return {}
    return {"round_to": channel_multiple(ctx.recipe.prune.round_to)}


def run_prune(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.prune.iterative import apply_step, step_targets
    from edgecnn.prune.persistence import save_pruned
    from edgecnn.prune.structured import channel_multiple, count

    cfg = ctx.recipe.prune
    res = resolution(ctx)
    model = load_model(ctx)
    params_before, macs_before = count(model, res)
    targets = step_targets(cfg.method, cfg.steps, macs_fraction=cfg.macs_fraction,
                           ratio=cfg.ratio, amount=cfg.amount)
    taylor = _taylor_batch(ctx) if cfg.importance == "taylor" else None
    steps, started = [], time.time()
    for step, target in enumerate(targets, start=1):
        done = apply_step(model, target, res, dense_macs=macs_before, importance=cfg.importance,
                          global_pruning=cfg.global_pruning,
                          round_to=channel_multiple(cfg.round_to), keep_layers=cfg.keep_layers,
                          taylor_batch=taylor, keep_masks=cfg.finetune is not None)
        params, macs = count(model, res)
        ctx.console.print(f"  step {step}/{len(targets)}: {cfg.method}, {params:,} params, "
                          f"{macs:,} MACs ({macs / macs_before:.2f} of dense)")
        record = {"step": step, "target": target.__dict__, "params": params, "macs": macs,
                  **done}
        if cfg.finetune is not None:
            record["finetune"] = _finetune(ctx, model, step, folder)
            model.cpu()  # the trainer may have moved it to a GPU; pruning traces it on the CPU
        steps.append(record)
    model.eval()
    params_after, macs_after = count(model, res)
    if cfg.method == "channels" and macs_after >= macs_before:
        raise EdgeCNNError("prune removed nothing: every prunable layer is at its minimum "
                           "width; lower prune.round_to or raise the target")
    save_pruned(model, folder / WEIGHTS, {"arch": ctx.recipe.model.label})
    finetuned = [s["finetune"] for s in steps if "finetune" in s]
    summary = {
        "method": cfg.method, "params_before": params_before, "macs_before": macs_before,
        "params": params_after, "macs": macs_after, "macs_fraction": macs_after / macs_before,
        "steps": steps, "finetune_epochs": sum(f["epochs"] for f in finetuned),
        "finetune_seconds": sum(f["seconds"] for f in finetuned),
        "seconds": time.time() - started,
        "test_after_finetune": finetuned[-1]["test"] if finetuned else None,
    }
    atomic_write_json(folder / "result.json", summary)
    return {**summary, "artifacts": {"weights": rel(ctx, folder / WEIGHTS),
                                     "result": rel(ctx, folder / "result.json")}}

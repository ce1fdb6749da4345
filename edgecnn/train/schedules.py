"""Learning-rate schedules from a recipe, built from torch's own schedulers.

``cosine`` and ``onecycle`` step every batch; ``plateau`` divides the rate by 10 when the
validation accuracy has not improved for ``plateau_patience`` epochs (the classic ResNet practice)
and steps once per epoch. ``warmup_epochs`` ramps the rate up linearly first (for onecycle it
sets the rising phase). All state is plain data, saved as JSON with each checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

if TYPE_CHECKING:  # annotations only: train sits below the recipe layer
    from edgecnn.recipe.schema import TrainSection

WARMUP_START_FACTOR = 0.1


class Schedule:
    """A per-batch scheduler and, for ``plateau``, a per-epoch one on validation accuracy."""

    def __init__(self, optimizer: Optimizer, cfg: TrainSection, steps_per_epoch: int) -> None:
        total = cfg.epochs * steps_per_epoch
        warm = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
        self.per_batch: sched.LRScheduler | None = None
        self.plateau: sched.ReduceLROnPlateau | None = None
        self.warmup_steps = warm
        self.steps = 0
        if cfg.schedule == "onecycle":
            self.per_batch = sched.OneCycleLR(
                optimizer, max_lr=cfg.lr, total_steps=total,
                pct_start=warm / total if warm else 0.3, cycle_momentum=False,
            )
        elif cfg.schedule == "cosine":
            cosine = sched.CosineAnnealingLR(optimizer, T_max=total - warm, eta_min=cfg.min_lr)
            self.per_batch = cosine if not warm else sched.SequentialLR(
                optimizer,
                [sched.LinearLR(optimizer, WARMUP_START_FACTOR, 1.0, total_iters=warm), cosine],
                milestones=[warm],
            )
        else:
            if warm:
                self.per_batch = sched.LinearLR(optimizer, WARMUP_START_FACTOR, 1.0,
                                                total_iters=warm)
            self.plateau = sched.ReduceLROnPlateau(optimizer, mode="max", factor=0.1,
                                                   patience=cfg.plateau_patience,
                                                   min_lr=cfg.min_lr)

    def after_batch(self) -> None:
        self.steps += 1
        if self.per_batch is not None and (self.plateau is None or self.steps <= self.warmup_steps):
            self.per_batch.step()

    def after_epoch(self, val_top1: float) -> None:
        if self.plateau is not None and self.steps >= self.warmup_steps:
            self.plateau.step(val_top1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "per_batch": self.per_batch.state_dict() if self.per_batch else None,
            "plateau": self.plateau.state_dict() if self.plateau else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        if self.per_batch is not None:
            self.per_batch.load_state_dict(state["per_batch"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


def current_lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainSection) -> torch.optim.SGD:
    """SGD; with ``decay_norm_and_bias: false`` the 1-D parameters (BatchNorm scales and shifts,
    biases) form a second group without weight decay. Decay on them only shrinks what the next
    layer rescales anyway, and a small model short of capacity loses fit to it."""
    groups: list[dict] = [{"params": params}]
    if not cfg.decay_norm_and_bias:
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)

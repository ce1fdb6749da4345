"""Pruning in steps: each step removes part of the way to the target, then fine-tuning heals.

Pruning a network to half its MACs in one cut loses more accuracy than reaching the same size in
several smaller cuts with training between them (the "iterative pruning" of Han et al. 2015 and
of torch-pruning's examples). The targets are spaced geometrically, so every step removes the
same fraction of what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class PruneTarget:
    """What one step asks for."""

    method: str  # channels | unstructured | two_four
    macs_fraction: float | None = None  # channels: at most this fraction of the dense MACs
    # channels: this fraction of each layer's channels *as they are before the step* removed
    # (torch-pruning's ratio is relative to the model it is given)
    ratio: float | None = None
    amount: float | None = None  # unstructured: this fraction of all weights zero after it


def step_targets(method: str, steps: int, *, macs_fraction: float | None = None,
                 ratio: float | None = None, amount: float | None = None) -> list[PruneTarget]:
    """The target of each of ``steps`` steps: MACs and zeroed weights as cumulative fractions of
    the dense model, channel ratios as the per-step fraction that compounds to the recipe's."""
    if steps < 1:
        raise EdgeCNNError(f"prune.steps must be >= 1, got {steps}")
    if method == "two_four":
        if steps != 1:
            raise EdgeCNNError("prune.method two_four is one step (2 of every 4 weights); set "
                               "prune.steps: 1")
        return [PruneTarget("two_four")]
    kept = 1.0 - (ratio if method == "channels" and ratio is not None else amount or 0.0)
    targets = []
    for step in range(1, steps + 1):
        share = step / steps
        if method == "channels" and macs_fraction is not None:
            targets.append(PruneTarget(method, macs_fraction=macs_fraction ** share))
        elif method == "channels":
            targets.append(PruneTarget(method, ratio=1.0 - kept ** (1 / steps)))
        else:
            targets.append(PruneTarget(method, amount=1.0 - kept ** share))
    return targets


def apply_step(model: nn.Module, target: PruneTarget, resolution: int, *, dense_macs: int,
               importance: str = "l1", global_pruning: bool = False,
               round_to: int | None = None, keep_layers: Sequence[str] = (),
               taylor_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
               keep_masks: bool = False) -> dict[str, Any]:
    """Prune ``model`` in place to ``target``; returns what the step did."""
    from edgecnn.prune.structured import count, prune_channels

    if target.method == "channels":
        if target.macs_fraction is not None:
            # prune_channels measures its target against the model as it is now
            macs_now = count(model, resolution)[1]
            relative = target.macs_fraction * dense_macs / macs_now
            if relative >= 1:
                return {"method": "channels", "skipped": "already below this step's target"}
            result = prune_channels(model, resolution, macs_fraction=relative,
                                    importance=importance, global_pruning=global_pruning,
                                    round_to=round_to, keep_layers=keep_layers,
                                    taylor_batch=taylor_batch)
        else:
            result = prune_channels(model, resolution, ratio=target.ratio, importance=importance,
                                    global_pruning=global_pruning, round_to=round_to,
                                    keep_layers=keep_layers, taylor_batch=taylor_batch)
        return {"method": "channels", **result.to_dict()}
    if target.method == "unstructured":
        from edgecnn.prune.unstructured import SPEEDUP_NOTE, prune_magnitude

        report = prune_magnitude(model, target.amount, keep_masks=keep_masks)
        return {"method": "unstructured", "sparsity": report.sparsity, "note": SPEEDUP_NOTE}
    if target.method == "two_four":
        from edgecnn.prune.semistructured import apply_two_four

        result = apply_two_four(model)
        return {"method": "two_four", "pruned_layers": len(result.pruned),
                "dense_layers": result.skipped}
    raise EdgeCNNError(f"prune.method {target.method!r} is not channels, unstructured or "
                       "two_four")

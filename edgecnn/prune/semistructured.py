"""2:4 semi-structured sparsity: in every group of 4 consecutive input weights, keep 2.

The pattern TensorRT's sparse tensor cores accelerate (Ampere and Orin, with the engine's
sparse-weights flag): for a convolution the groups run along the input channels at each output
channel and kernel position, for a linear layer along the input features. Layers whose input
width is not a multiple of 4, and depthwise/grouped convolutions, cannot hold the pattern and are
left dense (listed in the result). The masks are kept as buffers and re-applied after every
optimizer step during fine-tuning, so the zeros stay zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from edgecnn.prune.masks import attach_mask

GROUP, KEEP = 4, 2


@dataclass
class SparsityResult:
    pruned: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # layer -> why it stays dense


def _inputs_last(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) -> (out, kh, kw, in); (out, in) unchanged: groups along the last dim."""
    return weight.permute(0, 2, 3, 1) if weight.ndim == 4 else weight


def _inputs_back(weight: torch.Tensor, ndim: int) -> torch.Tensor:
    return weight.permute(0, 3, 1, 2) if ndim == 4 else weight


def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """1/0 mask keeping the 2 largest |w| of every 4 consecutive input weights."""
    w = _inputs_last(weight.detach())
    groups = w.abs().reshape(-1, GROUP)
    keep = groups.topk(KEEP, dim=1).indices
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0)
    return _inputs_back(mask.reshape(w.shape), weight.ndim).contiguous()


def eligible(module: nn.Module) -> str | None:
    """None when ``module`` can hold 2:4 sparsity, else why not."""
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            return "grouped or depthwise convolution"
        width = module.in_channels
    elif isinstance(module, nn.Linear):
        width = module.in_features
    else:
        return "not a convolution or linear layer"
    return None if width % GROUP == 0 else f"{width} inputs, not a multiple of {GROUP}"


def apply_two_four(model: nn.Module, skip: tuple[str, ...] = ()) -> SparsityResult:
    """Zero 2 of every 4 input weights of each eligible layer (except names in ``skip``), and
    keep the mask for :func:`~edgecnn.prune.masks.reapply_masks`."""
    result = SparsityResult()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        why = "skipped by request" if name in skip else eligible(module)
        if why:
            result.skipped[name] = why
            continue
        mask = two_four_mask(module.weight)
        with torch.no_grad():
            module.weight.mul_(mask)
        attach_mask(module, mask)
        result.pruned.append(name)
    return result


def is_two_four(weight: torch.Tensor) -> bool:
    """Exactly 2 non-zeros in every group of 4 consecutive input weights."""
    groups = _inputs_last(weight.detach()).reshape(-1, GROUP)
    return bool(((groups != 0).sum(dim=1) == KEEP).all())

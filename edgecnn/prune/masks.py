"""Zeros that stay zeros while a sparse model is fine-tuned.

Both sparse kinds (unstructured and 2:4) keep the weights' shapes, so an optimizer step would
bring pruned weights back. Each pruned layer carries its 0/1 mask as a non-persistent
``sparsity_mask`` buffer (not saved in checkpoints), re-applied after every optimizer step.
"""

from __future__ import annotations

import torch
from torch import nn

MASK = "sparsity_mask"


def attach_mask(module: nn.Module, mask: torch.Tensor) -> None:
    module.register_buffer(MASK, mask, persistent=False)


def keep_current_zeros(layers: list[nn.Module]) -> None:
    """Attach to each layer a mask of its weight's non-zeros."""
    for module in layers:
        attach_mask(module, (module.weight.detach() != 0).to(module.weight.dtype))


@torch.no_grad()
def reapply_masks(model: nn.Module) -> None:
    """After an optimizer step: the masked weights back to zero."""
    for module in model.modules():
        mask = getattr(module, MASK, None)
        if mask is not None:
            module.weight.mul_(mask)

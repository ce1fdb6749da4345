"""Unstructured magnitude pruning: the smallest weights set to zero, the shapes unchanged.

It makes a dense CNN no faster -- every zero is still multiplied -- and only shrinks the model
once the file is compressed; reports label it so. torch's own pruning utilities do the work
(global L1 over the convolution and linear weights), and the masks are folded in at once, so the
model is an ordinary one afterwards.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from torch.nn.utils import prune

from edgecnn.errors import EdgeCNNError
from edgecnn.prune.masks import keep_current_zeros

SPEEDUP_NOTE = "unstructured sparsity: no dense speed-up, smaller only when compressed"


@dataclass
class SparsityReport:
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights


def prunable_weights(model: nn.Module, skip_classifier: bool = True) -> list[tuple[nn.Module, str]]:
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    if skip_classifier and layers and isinstance(layers[-1], nn.Linear):
        layers = layers[:-1]  # the classifier is small and sensitive: left whole
    return [(m, "weight") for m in layers]


def prune_magnitude(model: nn.Module, amount: float, keep_masks: bool = False) -> SparsityReport:
    """Zero the ``amount`` fraction of smallest-|w| weights over all layers together;
    ``keep_masks`` attaches the masks for fine-tuning (:mod:`edgecnn.prune.masks`)."""
    if not 0 < amount < 1:
        raise EdgeCNNError(f"prune.amount must be in (0, 1), got {amount}")
    targets = prunable_weights(model)
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in targets:
        prune.remove(module, name)  # fold the mask: plain weights with zeros
    if keep_masks:
        keep_current_zeros([module for module, _ in targets])
    return sparsity_of(model)


def sparsity_of(model: nn.Module) -> SparsityReport:
    weights = zeros = 0
    for module, _ in prunable_weights(model):
        weights += module.weight.numel()
        zeros += int((module.weight == 0).sum())
    return SparsityReport(weights, zeros)


def compressed_bytes(path: Path) -> int:
    """Size of ``path`` gzip-compressed: what unstructured sparsity actually saves."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=6))

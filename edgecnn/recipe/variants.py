"""The models one build carries through its stages: the dense model, the pruned one, or both
(their artifact names: :mod:`edgecnn.artifacts`)."""

from __future__ import annotations

from edgecnn.artifacts import DENSE, PRUNED
from edgecnn.recipe.schema import Recipe


def variants(recipe: Recipe) -> list[str]:
    if recipe.prune is None:
        return [DENSE]
    return [DENSE, PRUNED] if recipe.prune.keep_dense else [PRUNED]

"""The names of a build's artifacts: by backend, precision and model variant.

A build exports, quantizes, evaluates and benchmarks every variant of its model: the dense model,
and the pruned one when the recipe prunes (with ``prune.keep_dense`` the dense model stays beside
it, so the report compares the two measured in the same run). An artifact is named by backend,
precision and variant: ``onnxruntime/int8`` (dense) or ``onnxruntime/int8/pruned``. Which
variants a recipe builds is the recipe layer's (:func:`edgecnn.recipe.variants.variants`); the
names are read by every layer that consumes a run directory (report, deploy), so they live here.
"""

from __future__ import annotations

from typing import NamedTuple

DENSE, PRUNED = "dense", "pruned"


class ArtifactKey(NamedTuple):
    backend: str
    precision: str
    variant: str = DENSE

    def __str__(self) -> str:
        base = f"{self.backend}/{self.precision}"
        return base if self.variant == DENSE else f"{base}/{self.variant}"

    @classmethod
    def parse(cls, text: str) -> ArtifactKey:
        parts = text.split("/")
        return cls(*parts)  # backend/precision or backend/precision/variant

    def reference(self) -> ArtifactKey:
        """The artifact accuracy is compared with: the FP32 ONNX of the same variant."""
        return ArtifactKey("onnxruntime", "fp32", self.variant)


def suffix(variant: str) -> str:
    """Appended to a stage's artifact names ('fp32' -> 'fp32_pruned')."""
    return "" if variant == DENSE else f"_{variant}"


def split_name(name: str) -> tuple[str, str]:
    """A stage's artifact name -> (name without the variant, variant): 'int8_pruned' ->
    ('int8', 'pruned'), 'int8' -> ('int8', 'dense')."""
    base, _, last = name.rpartition("_")
    return (base, last) if base and last in (PRUNED,) else (name, DENSE)


def file_stem(variant: str) -> str:
    """Stem of a variant's files: model.fp32.onnx, model.pruned.fp32.onnx."""
    return "model" if variant == DENSE else f"model.{variant}"

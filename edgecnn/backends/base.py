"""The surface every runtime offers: what input it takes, and logits for a batch.

Runners exchange numpy arrays so that evaluation and benchmarking code is the same for torch,
ONNX Runtime, LiteRT and TensorRT, and so a device without torch can still evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class InputSpec:
    """Input of a runner: shape with ``None`` for a dynamic dimension, dtype, and layout."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str = "NCHW"

    def check(self, batch: np.ndarray, artifact: str) -> None:
        """A wrong shape gets one error naming the artifact, not a runtime's stack trace."""
        if batch.ndim != len(self.shape) or any(
                e is not None and e != s for e, s in zip(self.shape, batch.shape, strict=True)):
            raise EdgeCNNError(f"{artifact} takes input {self.shape}, got {batch.shape}")


def run_failure(artifact: str, backend: str, exc: Exception) -> EdgeCNNError:
    """A runtime that loaded a file but cannot compute it (a corrupt or inconsistent graph:
    shapes that disagree, a weight of the wrong size) says so in one line naming the file."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EdgeCNNError(f"{backend} cannot run {artifact}: {first[:300]}")


@runtime_checkable
class Runner(Protocol):
    backend: str

    def input_spec(self) -> InputSpec: ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a float32 batch laid out as ``input_spec().layout``."""
        ...

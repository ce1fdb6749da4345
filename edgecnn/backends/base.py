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


@runtime_checkable
class Runner(Protocol):
    backend: str

    def input_spec(self) -> InputSpec: ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a float32 batch laid out as ``input_spec().layout``."""
        ...

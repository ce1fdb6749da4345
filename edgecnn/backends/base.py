"""The surface every runtime offers: what input it takes, and logits for a batch.

Runners exchange numpy arrays so that evaluation and benchmarking code is the same for torch,
ONNX Runtime, LiteRT and TensorRT, and so a device without torch can still evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """Input of a runner: shape with ``None`` for a dynamic dimension, dtype, and layout."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str = "NCHW"


@runtime_checkable
class Runner(Protocol):
    backend: str

    def input_spec(self) -> InputSpec: ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a float32 batch laid out as ``input_spec().layout``."""
        ...

"""The surface every runtime offers: what input it takes, and logits for a batch.

Runners exchange numpy arrays so that evaluation and benchmarking code is the same for torch,
ONNX Runtime, LiteRT and TensorRT, and so a device without torch can still evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class EventIntervals:
    """What a GPU runner's ``time_batch`` records per timed inference, from CUDA events (ms):
    host-to-device copy, compute, device-to-host copy; and the wall-clock seconds of the whole
    timed run. :func:`edgecnn.bench.gpu_timing.summarize_gpu_timings` makes the figures."""

    batch_size: int
    h2d_ms: list[float]
    compute_ms: list[float]
    d2h_ms: list[float]
    wall_seconds: float
    cuda_graph: bool = False


class Runner:
    """The surface every runner offers, and the lifecycle they share, as Polygraphy's runners
    have one: ``with open_runner(...) as runner:`` frees what it holds (session, interpreter,
    device buffers) on leaving the block, ``close()`` does so at once (a second call does
    nothing), and a closed runner refuses to run in one clear line. A runner implements
    ``input_spec`` and ``run``, sets ``metadata`` (what its artifact carries: arch, mean/std,
    ...; {} if nothing) and names what it holds in ``_release``."""

    backend = ""
    metadata: dict[str, str]
    _closed = False

    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a float32 batch laid out as ``input_spec().layout``."""
        raise NotImplementedError

    def time_batch(self, batch_size: int, iterations: int = 200,
                   warmup: int = 20) -> EventIntervals | None:
        """Device-side timings of ``iterations`` inferences (CUDA events), or None where the
        runtime has none (every CPU runtime): then the wall-clock time around ``run`` is the
        measurement."""
        return None

    def _release(self) -> None:
        """Drop the runtime's objects (the interpreter, session or buffers)."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _check_open(self, artifact: str) -> None:
        if self._closed:
            raise EdgeCNNError(f"the {self.backend} runner of {artifact} is closed")

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

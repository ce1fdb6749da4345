"""PyTorch eager: the baseline ``edgecnn bench`` and the benchmark stage time beside the
exported artifacts. Not an export target: it runs the model built in memory."""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import EdgeCNNError
from edgecnn.targets.base import Target


def open_runner(path: str | Path, threads: int | None):
    raise EdgeCNNError(f"the torch backend runs models in memory, not the file {path}; open "
                       "it with TorchRunner(model)")


TARGET = Target(
    name="torch", title="PyTorch eager, CPU or CUDA (a model built by edgecnn, in memory)",
    suffixes=(), packages=("torch",), modules=("torch",), extra="build",
    open_runner=open_runner, exported=False, cpu=False)

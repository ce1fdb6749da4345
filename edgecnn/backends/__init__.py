"""Runtimes behind one small surface (:class:`~edgecnn.backends.base.Runner`).

Each backend module imports its framework lazily, so ``import edgecnn.backends`` needs none.
"""

from edgecnn.backends.base import InputSpec, Runner

__all__ = ["InputSpec", "Runner"]

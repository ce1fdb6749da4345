"""edgecnn: CNNs from architecture to a measured edge deployment.

``import edgecnn`` needs only the core dependencies (numpy, pyyaml, pydantic, rich), so a device
that only benchmarks never imports torch; model building is reached lazily through
``edgecnn.create_model`` and needs the ``build`` extra.
"""

from __future__ import annotations

from typing import Any

from edgecnn.errors import EdgeCNNError

__version__ = "0.1.0"
__all__ = ["EdgeCNNError", "__version__", "create_model", "list_models"]

_LAZY = {"create_model": "edgecnn.models", "list_models": "edgecnn.models"}


def __getattr__(name: str) -> Any:
    # PEP 562: import the torch-backed model registry only when it is asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")

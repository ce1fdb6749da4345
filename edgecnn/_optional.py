"""Imports of optional frameworks, with an error that says which extra to install.

The core package (numpy, pyyaml, pydantic, rich) must import and run `edgecnn --help` on a device
that only benchmarks, so torch and every runtime are imported here, lazily, at the point of use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgecnn.errors import EdgeCNNError

# Which pip extra brings each optional module.
EXTRA_FOR_MODULE = {
    "torch": "build",
    "onnx": "build",
    "safetensors": "build",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an EdgeCNNError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRA_FOR_MODULE.get(module.split(".")[0], "build")
        raise EdgeCNNError(
            f"{purpose} needs the Python package '{module}', which is not installed "
            f"({exc}); install it with: pip install 'edgecnn[{extra}]'"
        ) from None

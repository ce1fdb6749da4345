"""Imports of optional frameworks, with an error that says which extra to install.

The core package (numpy, pyyaml, pydantic, rich) must import and run `edgecnn --help` on a device
that only benchmarks, so torch and every runtime are imported here, lazily, at the point of use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgecnn.errors import EdgeCNNError

# Which pip extra brings each optional module (a target's modules: also in its declaration,
# edgecnn/targets/; tests/targets/test_registry.py checks that the two agree).
EXTRA_FOR_MODULE = {
    "torch": "build",
    "onnx": "build",
    "safetensors": "build",
    "onnxruntime": "runtime",
    "polygraphy": "tensorrt",
    "cuda": "tensorrt",
    "litert_torch": "tflite",
    "litert_quantizer": "tflite",
    "ai_edge_litert": "tflite",
    "openvino": "openvino",
    "nncf": "openvino",
    "ray": "sweep",
    "optuna": "search",
}
# Packages no extra can provide, with how to get them instead.
INSTALL_HINTS = {
    "tensorrt": "TensorRT comes with JetPack on a Jetson (python3-libnvinfer); on a workstation "
                "with an NVIDIA GPU: pip install tensorrt",
}


def require(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise an EdgeCNNError naming the extra that provides it (``extra``,
    e.g. a target module's own, else the table above)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = extra or EXTRA_FOR_MODULE.get(top, "build")
        hint = INSTALL_HINTS.get(top) or f"install it with: pip install 'edgecnn[{extra}]'"
        raise EdgeCNNError(
            f"{purpose} needs the Python package '{module}', which is not installed "
            f"({exc}); {hint}"
        ) from exc


def installed_version(dist: str, default: str = "unknown") -> str:
    """The installed version of a distribution (pip name), or ``default`` if it has none."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return default

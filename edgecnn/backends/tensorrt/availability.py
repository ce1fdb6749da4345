"""Whether TensorRT engines can be built and run here: its Python packages and a CUDA GPU."""

from __future__ import annotations

import importlib.util

# Python packages the target needs, with what provides them.
NEEDED = {"tensorrt": "TensorRT (JetPack, or pip install tensorrt)",
          "polygraphy": "pip install 'edgecnn[tensorrt]'",
          "cuda.bindings": "cuda-python: pip install 'edgecnn[tensorrt]'"}


def unavailable_reason() -> str | None:
    """Why TensorRT engines cannot be built here, or None when they can."""
    missing = []
    for module, source in NEEDED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package (cuda) is absent
            found = False
        if not found:
            missing.append(f"{module} ({source})")
    if missing:
        return f"not importable here: {', '.join(missing)}"
    from edgecnn.backends.tensorrt.device import cuda_device

    if cuda_device()[0] is None:
        return "no CUDA GPU is visible"
    return None

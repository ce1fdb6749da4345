"""What a number was measured on: CPU, cores and threads, OS, library versions, GPU and driver."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

# The libraries every build's figures may depend on; each runtime's own packages are added by
# the target registry (edgecnn.targets.context), which sits above this layer.
CORE_LIBRARIES = ("edgecnn", "numpy", "onnx", "onnxslim", "torch", "torch-pruning")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction-set extensions that decide which kernels run: INT8 speed and accuracy on x86
# depend on VNNI (without it ONNX Runtime's U8S8 kernels can saturate), bf16 training on
# avx512_bf16/AMX. Machines that share a CPU model name can differ here.
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
                "amx_bf16", "asimd", "asimddp", "i8mm", "sve")


def cpu_vector_extensions() -> list[str]:
    try:
        text = open("/proc/cpuinfo").read()  # noqa: SIM115
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in VECTOR_FLAGS if flag in present]
    return []


def gpus() -> list[dict[str, str]] | None:
    """Name and driver of each NVIDIA GPU, from nvidia-smi; None where there is none."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [dict(zip(("name", "driver"), (p.strip() for p in line.split(",")), strict=False))
            for line in out.strip().splitlines()]


def versions(libraries: tuple[str, ...] = CORE_LIBRARIES) -> dict[str, str]:
    """Installed version of each of ``libraries`` (pip names); absent ones are left out."""
    found = {}
    for name in libraries:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_context(threads: int | None = None,
                libraries: tuple[str, ...] = CORE_LIBRARIES) -> dict[str, Any]:
    return {
        "cpu": cpu_model(), "cpu_extensions": cpu_vector_extensions(),
        "machine": platform.machine(), "logical_cores": os.cpu_count(),
        "threads": threads, "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "libraries": versions(libraries), "gpus": gpus(),
    }

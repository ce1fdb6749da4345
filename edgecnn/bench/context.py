"""What a number was measured on: CPU, cores and threads, OS, library versions, GPU and driver."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

LIBRARIES = ("edgecnn", "numpy", "onnx", "onnxruntime", "onnxslim", "torch", "tensorrt",
             "ai-edge-litert")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_context(threads: int | None = None) -> dict[str, Any]:
    return {
        "cpu": cpu_model(), "machine": platform.machine(), "logical_cores": os.cpu_count(),
        "threads": threads, "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "libraries": versions(), "gpus": gpus(),
    }

"""The facts of this device an engine depends on: GPU, compute capability, TensorRT, L4T.

Each reader returns None where the fact cannot be read (no GPU, no TensorRT, not a Jetson), so
the same code describes a workstation, a Jetson and this CPU-only machine.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")

# L4T (the Jetson Linux release in /etc/nv_tegra_release) -> JetPack, for the releases edgecnn
# documents; from NVIDIA's JetPack archive.
L4T_TO_JETPACK = {"36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1/6.2", "38.2": "7.0"}


@dataclass(frozen=True)
class DeviceFacts:
    gpu_name: str | None
    compute_capability: str | None  # "8.7" (Orin), "9.0" (H100)
    tensorrt_version: str | None
    l4t_release: str | None         # "36.4.0" on JetPack 6.1; None off Jetson

    @property
    def jetpack(self) -> str | None:
        if self.l4t_release is None:
            return None
        return L4T_TO_JETPACK.get(".".join(self.l4t_release.split(".")[:2]))

    def to_dict(self) -> dict:
        return {**asdict(self), "jetpack": self.jetpack}


def parse_l4t_release(text: str) -> str | None:
    """'# R36 (release), REVISION: 4.0, GCID: ...' -> '36.4.0'."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def l4t_release(path: Path = NV_TEGRA_RELEASE) -> str | None:
    try:
        return parse_l4t_release(path.read_text())
    except OSError:
        return None


def tensorrt_version() -> str | None:
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return trt.__version__


def cuda_device(index: int = 0) -> tuple[str | None, str | None]:
    """(name, compute capability) of CUDA device ``index`` through cuda-python; Nones without."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return None, None
    try:
        err, props = cudart.cudaGetDeviceProperties(index)
    except RuntimeError:  # cuda-python present but no driver library (libcuda) to load
        return None, None
    if int(err) != 0:
        return None, None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


def device_facts(index: int = 0) -> DeviceFacts:
    name, capability = cuda_device(index)
    return DeviceFacts(name, capability, tensorrt_version(), l4t_release())

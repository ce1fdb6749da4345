"""What a Jetson user needs to trust a number: board, L4T/JetPack, TensorRT, power mode, clocks,
temperatures. Every field is read best-effort; one that cannot be read is None, and
``unavailable`` says why (not a Jetson, a tool missing, no permission), so a result from a CPU
and one from an Orin share one shape.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgecnn.backends.tensorrt.device import device_facts

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
THERMAL = Path("/sys/class/thermal")
# The GPU's devfreq node on Orin (ga10b) and Xavier (gv11b); jetson_clocks sets min = max.
GPU_DEVFREQ_GLOBS = ("/sys/devices/platform/*gpu*/devfreq/*", "/sys/devices/gpu.0/devfreq/*",
                     "/sys/class/devfreq/*.gpu")


def board_model(path: Path = DEVICE_TREE_MODEL) -> tuple[str | None, str | None]:
    try:
        return path.read_text().rstrip("\x00\n ").strip(), None
    except OSError:
        return None, f"no {path}: not a Jetson (or /proc is not mounted)"


def parse_nvpmodel(text: str) -> str | None:
    """'NV Power Mode: MAXN\\n0' -> 'MAXN (0)'."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
            mode_id = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].isdigit() else None
            return f"{name} ({mode_id})" if mode_id else name
    return None


def power_mode() -> tuple[str | None, str | None]:
    if shutil.which("nvpmodel") is None:
        return None, "nvpmodel not found (not a Jetson, or not in the container's PATH)"
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"nvpmodel -q failed: {exc}"
    mode = parse_nvpmodel(out.stdout)
    return (mode, None) if mode else (None, f"nvpmodel -q printed no mode: {out.stderr.strip()}")


def clocks_locked(globs: tuple[str, ...] = GPU_DEVFREQ_GLOBS) -> tuple[bool | None, str | None]:
    """True when the GPU's minimum frequency equals its maximum (what jetson_clocks sets)."""
    for pattern in globs:
        for node in sorted(Path("/").glob(pattern.lstrip("/"))):
            try:
                low = int((node / "min_freq").read_text())
                high = int((node / "max_freq").read_text())
            except (OSError, ValueError):
                continue
            return low == high, None
    return None, "no GPU devfreq node (not a Jetson): cannot tell whether jetson_clocks ran"


def temperatures(root: Path = THERMAL) -> tuple[dict[str, float] | None, str | None]:
    found = {}
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            found[(zone / "type").read_text().strip()] = int((zone / "temp").read_text()) / 1000
        except (OSError, ValueError):
            continue
    return (found, None) if found else (None, f"no readable thermal zones under {root}")


def device_context() -> dict[str, Any]:
    """The device fields of a results file; ``unavailable`` maps each None field to why."""
    facts = device_facts()
    values: dict[str, Any] = {}
    unavailable: dict[str, str] = {}

    def put(name: str, value: Any, reason: str | None) -> None:
        values[name] = value
        if value is None:
            unavailable[name] = reason or "not readable here"

    put("jetson_model", *board_model())
    put("l4t_release", facts.l4t_release, "no /etc/nv_tegra_release: not a Jetson")
    put("jetpack", facts.jetpack, "no L4T release to map" if facts.l4t_release is None
        else f"L4T {facts.l4t_release} is not in edgecnn's JetPack table")
    put("tensorrt_version", facts.tensorrt_version, "TensorRT is not importable")
    put("gpu_name", facts.gpu_name, "no CUDA GPU visible (or cuda-python missing)")
    put("compute_capability", facts.compute_capability, "no CUDA GPU visible")
    put("power_mode", *power_mode())
    put("clocks_locked", *clocks_locked())
    put("temperatures_c", *temperatures())
    values["unavailable"] = unavailable
    return values

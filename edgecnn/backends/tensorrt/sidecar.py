"""An engine's sidecar: what it was built for, checked before the engine is loaded.

A TensorRT engine runs only with the TensorRT version that built it and on the GPU model it was
built for (its kernels were chosen for that GPU); an engine built from another ONNX is simply
another model. The sidecar (``model.plan.json`` beside ``model.plan``) records all of it, and
loading an engine whose sidecar does not match this device refuses with a message that says to
rebuild -- which ``edgecnn build`` does on its own.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgecnn.backends.tensorrt.device import DeviceFacts
from edgecnn.errors import EdgeCNNError


class EngineMismatch(EdgeCNNError):
    """The engine was built for another device, TensorRT version or ONNX: rebuild it."""


@dataclass(frozen=True)
class Sidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    l4t_release: str | None
    jetpack: str | None
    precision: str
    profile: dict            # {"min": .., "opt": .., "max": ..}
    onnx_sha256: str
    settings: dict           # the BuilderSettings the engine was built with
    built: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def make_sidecar(device: DeviceFacts, settings, onnx_sha256: str) -> Sidecar:
    if device.tensorrt_version is None or device.gpu_name is None:
        raise EdgeCNNError("building a TensorRT engine needs TensorRT and a CUDA GPU")
    return Sidecar(
        tensorrt_version=device.tensorrt_version, gpu_name=device.gpu_name,
        compute_capability=device.compute_capability or "unknown",
        l4t_release=device.l4t_release, jetpack=device.jetpack,
        precision=settings.precision, profile=asdict(settings.profile),
        onnx_sha256=onnx_sha256, settings=settings.to_dict(),
        built=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))


def write_sidecar(engine: Path, sidecar: Sidecar) -> Path:
    from edgecnn.atomic import atomic_write_json

    path = sidecar_path(engine)
    atomic_write_json(path, sidecar.to_dict())
    return path


def read_sidecar(engine: Path) -> Sidecar:
    path = sidecar_path(engine)
    try:
        return Sidecar(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise EngineMismatch(f"{engine} has no sidecar {path.name}: it was not built by edgecnn "
                             "or the sidecar was lost; rebuild the engine") from None
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        # a folder or an unreadable file where the sidecar should be is as bad as a torn one
        raise EngineMismatch(f"sidecar {path} is unreadable ({type(exc).__name__}: {exc}); "
                             "rebuild the engine") from exc


def mismatches(sidecar: Sidecar, device: DeviceFacts, onnx_sha256: str | None = None) -> list[str]:
    """What differs between the engine's build and this device (empty: the engine may run)."""
    found = []
    if sidecar.tensorrt_version != device.tensorrt_version:
        found.append(f"TensorRT {sidecar.tensorrt_version} built it, this device has "
                     f"{device.tensorrt_version or 'no TensorRT'}")
    if (sidecar.gpu_name, sidecar.compute_capability) != (device.gpu_name,
                                                          device.compute_capability):
        found.append(f"built for {sidecar.gpu_name} (compute {sidecar.compute_capability}), "
                     f"this device is {device.gpu_name or 'without a GPU'} "
                     f"(compute {device.compute_capability})")
    if sidecar.l4t_release != device.l4t_release:
        found.append(f"built on L4T {sidecar.l4t_release}, this device runs L4T "
                     f"{device.l4t_release}")
    if onnx_sha256 is not None and sidecar.onnx_sha256 != onnx_sha256:
        found.append(f"built from ONNX sha256 {sidecar.onnx_sha256[:12]}..., the ONNX is now "
                     f"{onnx_sha256[:12]}...")
    return found


def check_engine(engine: Path, device: DeviceFacts, onnx_sha256: str | None = None) -> Sidecar:
    """The engine's sidecar if the engine may run here; else EngineMismatch saying to rebuild."""
    sidecar = read_sidecar(engine)
    found = mismatches(sidecar, device, onnx_sha256)
    if found:
        raise EngineMismatch(f"engine {engine} cannot run here: {'; '.join(found)}. TensorRT "
                             "engines are not portable: rebuild it on this device (edgecnn build "
                             "does so when the recipe is run here)")
    return sidecar

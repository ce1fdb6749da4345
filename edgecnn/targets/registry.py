"""Every target, by name: the one list the rest of edgecnn reads its runtimes from.

The recipe's choices (``export.targets``, ``benchmark.backends``), its ``export.<target>``
sections, the build stages of targets that have one, ``edgecnn bench``/``eval``'s file
suffixes, the packages whose versions a measurement records and the extras a missing runtime
names are all derived from here. A new runtime: its module and one line below.
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import EdgeCNNError
from edgecnn.targets import executorch, onnxruntime, openvino, tensorrt, tflite, torch_eager
from edgecnn.targets.base import Target

TARGETS: dict[str, Target] = {t.name: t for t in (
    onnxruntime.TARGET,
    torch_eager.TARGET,
    tensorrt.TARGET,
    tflite.TARGET,
    openvino.TARGET,
    executorch.TARGET,
)}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise EdgeCNNError(f"unknown backend {name!r}; valid: {', '.join(TARGETS)}")
    return TARGETS[name]


def backend_names() -> tuple[str, ...]:
    """``benchmark.backends`` choices: every runtime, torch included."""
    return tuple(TARGETS)


def export_target_names() -> tuple[str, ...]:
    """``export.targets`` choices: the runtimes a build makes files for."""
    return tuple(name for name, t in TARGETS.items() if t.exported)


def cpu_runtime_names() -> tuple[str, ...]:
    """The exported runtimes that run on the host CPU."""
    return tuple(name for name, t in TARGETS.items() if t.exported and t.cpu)


def suffix_backends() -> dict[str, str]:
    """File suffix -> the backend that runs such a file unless told otherwise (the first
    target registered with that suffix)."""
    found: dict[str, str] = {}
    for name, t in TARGETS.items():
        for suffix in t.suffixes:
            found.setdefault(suffix, name)
    return found


def backend_of_file(path: str | Path) -> str | None:
    return suffix_backends().get(Path(path).suffix)


def target_packages() -> tuple[str, ...]:
    """Every target's pip distributions (what a measurement's context records)."""
    return tuple(dict.fromkeys(p for t in TARGETS.values() for p in t.packages))


def open_runner(backend: str, artifact: str | Path, threads: int | None = None):
    """A runner of ``backend`` on an artifact file (close it, or use it in ``with``)."""
    return get_target(backend).open_runner(artifact, threads)

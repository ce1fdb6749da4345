"""What a deployment target is: the one declaration each target module makes.

A target is a runtime edgecnn builds artifacts for and runs them on (ONNX Runtime, OpenVINO,
LiteRT, TensorRT), or, for ``torch``, the eager baseline that runs a model in memory. Everything
the rest of the package needs to know about one -- its recipe choices, file suffixes, the
packages and extra it needs, whether it can run here, its recipe section, the build stage that
makes its files and how to open a runner on one -- is read from its :class:`Target`
(:mod:`edgecnn.targets.registry`), so a new runtime is one new module.

A target's own build stage (LiteRT converts from the torch model, so it has one) receives the
build through :class:`BuildInputs`: what the recipe layer gives a stage, declared here so that
the targets need not import the recipe layer above them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console
    from torch import nn

    from edgecnn.backends.base import Runner
    from edgecnn.bench.int8_coverage import Int8Coverage
    from edgecnn.sections import Section


class BuildInputs(Protocol):
    """The build as a target's stage sees it (``edgecnn.recipe.pipeline.BuildContext``)."""

    recipe: Any
    run_dir: Path
    console: Console
    done: dict[str, dict[str, Any]]

    def variants(self) -> list[str]: ...

    def load_model(self, variant: str) -> nn.Module: ...

    def check_images(self) -> np.ndarray: ...

    def calibration_array(self) -> np.ndarray: ...

    def resolution(self) -> int: ...

    def rel(self, path: Path) -> str: ...

    def artifact(self, stage: str, key: str) -> Path: ...


@dataclass(frozen=True)
class TargetStage:
    """A build stage of the target's own, run after quantization.

    ``reads``: the recipe sections and fields its output depends on (a change to any other field
    leaves it cached); ``from_weights``: it reads the trained (and pruned) weights, as a
    conversion from the torch model does. ``run`` writes into the stage folder and returns the
    stage summary: ``artifacts`` (key -> path in the run) and ``runs`` (artifact key
    'backend/precision[/variant]' -> the artifact the runner loads).
    """

    name: str
    reads: tuple[str, ...]
    run: Callable[[BuildInputs, Path], dict[str, Any]]
    from_weights: bool = True


def _no_reason() -> str | None:
    return None


def _no_check(recipe: Any) -> None:
    return None


def _no_calibration(recipe: Any) -> bool:
    return False


@dataclass(frozen=True)
class Target:
    """One runtime, declared in one place.

    ``name``: the recipe's choice (``export.targets``, ``benchmark.backends``) and the backend of
    its artifact keys. ``suffixes``: the files it runs (``edgecnn bench``/``eval`` pick it by
    suffix; a suffix two targets read belongs to the first registered). ``packages``: the pip
    distributions its figures depend on (their versions go into every measurement's context),
    the runtime first; ``modules``: what must import to build and run it; ``extra``: the pip
    extra that brings them. ``exported``: an ``export.targets`` choice (torch is not);
    ``always_built``: its FP32 artifact exists whatever the targets (the ONNX every accuracy
    is measured against); ``runs_fp32_onnx``: the export's FP32 ONNX is its FP32 artifact
    (no file of its own). ``cpu``: it runs on the host CPU (a candidate of "the fastest
    artifact on this CPU"). ``section``: its ``export.<name>`` recipe section; ``stage``: its
    own build stage; ``open_runner(path, threads)``: a runner on one of its files;
    ``open_build_runner(build, key, path)``: one on an artifact of a build, where the build
    holds more than the file (default: ``open_runner`` with ``benchmark.threads``);
    ``check_recipe``: contradictions of the recipe it refuses before anything runs;
    ``calibrates(recipe)``: whether it draws calibration images itself;
    ``unavailable_reason()``: why it cannot build or run here (None: it can);
    ``int8_coverage(runner)``: what an open runner of an INT8 artifact leaves outside the
    runtime's int8 kernels (the report's "why INT8 is not faster").
    """

    name: str
    title: str
    suffixes: tuple[str, ...]
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    extra: str
    open_runner: Callable[[str | Path, int | None], Runner]
    exported: bool = True
    always_built: bool = False
    runs_fp32_onnx: bool = False
    cpu: bool = True
    section: type[Section] | None = None
    stage: TargetStage | None = None
    open_build_runner: Callable[[BuildInputs, str, Path], Runner] | None = None
    check_recipe: Callable[[Any], None] = _no_check
    calibrates: Callable[[Any], bool] = _no_calibration
    unavailable_reason: Callable[[], str | None] = _no_reason
    int8_coverage: Callable[[Runner], Int8Coverage | None] | None = None

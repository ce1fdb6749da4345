"""Search files: the space of the searchable inverted-residual family, what is measured, the
constraints and the budget, checked before anything runs.

    name: nas
    base: ../recipes/mobilenet_int8.yaml     # data, training, quantization of every trial
    reference: ../recipes/mobilenet_int8.yaml  # timed side by side with every batch of trials
    set: {train.epochs: 2}                   # the proxy training (best-N.yaml keep the base's)
    space:
      cifar_stem: true
      resolution: [32]
      stem: [16]
      head: [640, 1280]
      stages:                                # per stage: a list of choices, or one value
        - {width: [8, 16], depth: 1, stride: 1, expansion: 1}
        - {width: [16, 24], depth: [1, 2, 3], stride: 2, kernel: [3, 5], expansion: [3, 6],
           se: [false, true], activation: [relu6, hswish]}
    objective: {backend: onnxruntime, precision: int8, batch: 1, threads: 2}
    constraints: {latency_ratio: 1.0, max_macs: 20.0e6, max_int8_drop: 1.0}
    budget: {trials: 40, hours: 2}
    confirm: {repeats: 2, margin: 0.15}      # near the budget: timed twice more, median ratio
    parallel: 2                              # trials built at once (Ray tasks)
    sampler: nsga2                           # or tpe (multi-objective, with constraints)
    finalists: 1                             # best candidates retrained on the base's schedule
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import check_template
from edgecnn.safe_yaml import echo
from edgecnn.sweep.spec import CompareSection
from edgecnn.targets.registry import TARGETS, cpu_runtime_names

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
MAX_STAGES = 12


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def as_choices(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


class StageSpace(Strict):
    """One stage's choices; a single value is a fixed choice."""

    width: int | list[int]
    depth: int | list[int] = 1
    stride: int | list[int] = 1
    kernel: int | list[int] = 3
    expansion: int | list[int] = 6
    se: bool | list[bool] = False
    activation: str | list[str] = "relu6"

    def choices(self) -> dict[str, list[Any]]:
        return {name: as_choices(getattr(self, name)) for name in type(self).model_fields}


class Space(Strict):
    cifar_stem: bool = False
    resolution: int | list[int]
    stem: int | list[int] = 16
    head: int | list[int] = 1280
    dropout: float = Field(0.0, ge=0, lt=1)
    stages: list[StageSpace] = Field(min_length=1, max_length=MAX_STAGES)


class Objective(Strict):
    backend: Literal[cpu_runtime_names()]  # type: ignore[valid-type]
    precision: Literal["int8", "fp32"] = "int8"
    batch: int = Field(1, ge=1, le=4096)
    threads: int = Field(2, ge=1, le=1024)


class Constraints(Strict):
    latency_ms: float | None = Field(None, gt=0, le=1e6, description="p50 budget")
    latency_ratio: float | None = Field(None, gt=0, le=1e3,
                                        description="p50 budget as a multiple of the reference's")
    max_macs: float | None = Field(None, gt=0)
    max_params: float | None = Field(None, gt=0)
    max_int8_drop: float | None = Field(None, ge=0, le=100,
                                        description="points of top-1 INT8 may lose to FP32")


class Confirm(Strict):
    """Timing again what sits near the latency budget: at batch 1 the side-by-side ratio of one
    pair of 7-12 M-MAC networks moved from 0.84x to 1.42x between batches here, so one timing
    can admit a slower candidate (or turn away a faster one)."""

    repeats: int = Field(2, ge=0, le=20, description="side-by-side timings beside the reference "
                                                     "after the first, for a candidate near "
                                                     "the budget; 0: judge on the first")
    margin: float = Field(0.15, ge=0, le=10,
                          description="near: at most this fraction over the budget in the "
                                      "first timing")


class Budget(Strict):
    trials: int = Field(20, ge=1, le=10_000)
    hours: float | None = Field(None, gt=0, le=1000)


class SearchFile(Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    base: str = Field(min_length=1, max_length=4096, description="recipe file of every trial")
    reference: str | None = Field(None, max_length=4096,
                                  description="recipe file timed beside every batch of trials")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="dotted recipe field -> value for every trial (the "
                                            "proxy training, e.g. train.epochs); the best-N "
                                            "recipes keep the base's own values")
    space: Space
    objective: Objective
    constraints: Constraints = Field(default_factory=Constraints)
    budget: Budget = Field(default_factory=Budget)
    train_reference: bool = Field(True, description="also train the reference with its own "
                                                    "schedule, for its top-1 beside the trials")
    finalists: int = Field(1, ge=0, le=10,
                           description="the best candidates of the front trained again with "
                                       "the base recipe's own schedule once the budget is "
                                       "spent, timed side by side with the reference")
    compare: CompareSection = Field(
        default_factory=CompareSection,
        description="the side-by-side timing of each batch (its batch_sizes: the objective's)")
    confirm: Confirm = Field(
        default_factory=Confirm,
        description="candidates near the latency budget (and the finalists) timed again beside "
                    "the reference; the constraint is judged on the median ratio")
    parallel: int = Field(1, ge=1, le=256)
    build_cpus: int = Field(1, ge=1, le=1024)
    sampler: Literal["nsga2", "tpe"] = "nsga2"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    output: str = Field("runs/searches/{name}", min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _consistent(self) -> SearchFile:
        check_template(self.output, {"name"}, "output")
        if self.constraints.latency_ratio is not None and self.reference is None:
            raise ValueError("constraints.latency_ratio needs a reference recipe to measure")
        if self.constraints.max_int8_drop is not None and self.objective.precision != "int8":
            raise ValueError("constraints.max_int8_drop needs objective.precision int8")
        return self


def parse_search(data: dict[str, Any], path: Path) -> tuple[SearchFile, Path]:
    """The validated search file and its folder (where base and reference are read from)."""
    try:
        spec = SearchFile.model_validate(data)
    except ValidationError as exc:
        raise EdgeCNNError(format_validation_error(exc, path)) from exc
    _check_choices(spec.space, path)
    check_backend_installed(spec, path)
    for field_name in ("base", "reference"):
        check_recipe_path(path, field_name, getattr(spec, field_name))
    return spec, path.resolve().parent


def check_recipe_path(path: Path, field_name: str, value: str | None) -> None:
    """A recipe named by a search file exists, relative to the search file."""
    if value is not None and not (path.parent / value).is_file():
        raise EdgeCNNError(f"search file {path}: {field_name} {echo(value)} is not a recipe "
                           f"file ({path.parent / value} does not exist); give a path "
                           "relative to the search file")


def check_backend_installed(spec: SearchFile, path: Path) -> None:
    """The objective's backend must be installed: said before anything is built."""
    target = TARGETS[spec.objective.backend]
    for module in target.modules:
        if find_spec(module) is None:
            raise EdgeCNNError(
                f"search file {path}: objective.backend {target.name} needs the Python package "
                f"'{module}', which is not installed; pip install 'edgecnn[{target.extra}]'")


def _check_choices(space: Space, path: Path) -> None:
    """Every choice of every stage must build: checked with the family's own parser, one
    choice at a time, so the message names the stage, the choice and what is valid."""
    from edgecnn.models.searchable import Stage

    for index, stage in enumerate(space.stages):
        choices = stage.choices()
        for name, values in choices.items():
            if not values:
                raise EdgeCNNError(f"search file {path}: space.stages[{index}].{name} has no "
                                   "choices; give at least one")
        for name, values in choices.items():
            for value in values:
                probe = {n: v[0] for n, v in choices.items()} | {name: value}
                try:
                    Stage.parse(index, probe)
                except ValueError as exc:
                    raise EdgeCNNError(f"search file {path}: space.{exc}") from exc
    for name in ("resolution", "stem", "head"):
        values = as_choices(getattr(space, name))
        low = 0 if name == "head" else 8 if name == "resolution" else 1
        if not values or any(isinstance(v, bool) or not low <= v <= 4096 for v in values):
            raise EdgeCNNError(f"search file {path}: space.{name} must be one or more "
                               f"integers {low}..4096, got {values}")


def format_validation_error(exc: ValidationError, path: Path) -> str:
    lines = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "the file"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {message}")
    return f"search file {path}: " + "; ".join(lines)

"""Sweep files: a base recipe, and a grid of dotted recipe fields and/or a list of named runs,
expanded into points, each a validated recipe with its own run directory in the sweep's folder.

    name: zoo
    base: ../recipes/resnet20_cifar10.yaml   # a recipe file (beside this one) or a mapping
    set: {benchmark.rounds: 4}               # applied to every point
    grid:                                    # the cartesian product of these values
      model.arch: [resnet20, resnet56]
    runs:                                    # named points; with a grid, each is crossed with it
      - {name: fp32, set: {quantize.method: none}}
    build_cpus: 1                            # CPUs (and threads) of each point's training

Every point is checked by the recipe schema here, before anything runs, so a grid field that is
not a recipe field or a value the schema refuses stops the sweep with its point's name. Two
points that come out as the same recipe are one run (the first name; the others are aliases).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.loading import read_yaml, set_field, validate_recipe
from edgecnn.recipe.schema import Recipe, check_template
from edgecnn.safe_yaml import echo, read_yaml_file

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
MAX_POINTS = 1000
# Fields the sweep sets itself on every point: the run's name and its folder in the sweep's.
SWEEP_OWNED = ("name", "output")
RUNS_FOLDER = "runs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublishedFigure(_Strict):
    """A paper's figure for the run's model, shown beside the sweep's own (e.g. a full-schedule
    CIFAR-10 top-1 against a budget schedule's)."""

    top1: float = Field(ge=0, le=100, allow_inf_nan=False)
    source: str = Field(min_length=1, max_length=200, description="where it was published")


class NamedRun(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=96)
    set: dict[str, Any] = Field(default_factory=dict,
                                description="dotted recipe field -> value for this run")
    published: PublishedFigure | None = None


class CompareSection(_Strict):
    """The last step of a sweep: every CPU artifact of its runs timed again side by side in one
    process (:mod:`edgecnn.sweep.side_by_side`); its p50s rank the latency frontiers."""

    enabled: bool = True
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1, max_length=8)
    rounds: int = Field(3, ge=1, le=100, description="alternating rounds over the artifacts")
    warmup: int = Field(10, ge=0, le=100_000)
    iterations: int = Field(50, ge=1, le=1_000_000, description="minimum timed runs per round")
    seconds: float = Field(0.5, ge=0, le=3600, description="minimum timed seconds per round")

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(not 1 <= b <= 4096 for b in value):
            raise ValueError(f"batch sizes must be 1..4096, got {value}")
        return value


class SweepFile(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=128, description="the sweep's name")
    base: str | dict[str, Any] = Field(
        description="the base recipe: a file (relative to the sweep file) or a recipe mapping")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="dotted recipe field -> value for every point")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted recipe field -> the values it takes")
    runs: list[NamedRun] = Field(default_factory=list, max_length=MAX_POINTS)
    output: str = Field("runs/sweeps/{name}", min_length=1, max_length=4096,
                        description="the sweep's folder; {name} is the sweep's name")
    build_cpus: int = Field(1, ge=1, le=1024,
                            description="CPUs Ray gives each point's training, pruning, "
                                        "quantization and export (and the threads they use)")
    compare: CompareSection = Field(default_factory=CompareSection)

    @field_validator("output")
    @classmethod
    def _output_template(cls, value: str) -> str:
        return check_template(value, {"name"}, "output")

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for field, values in grid.items():
            if not values:
                raise ValueError(f"{field} has no values; give it at least one or drop it")
        return grid

    @model_validator(mode="after")
    def _points(self) -> SweepFile:
        if not self.grid and not self.runs:
            raise ValueError("the sweep has no points: give a grid of recipe fields and/or a "
                             "list of runs")
        names = [r.name for r in self.runs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"runs: the name {repeated[0]!r} is used twice; each run needs "
                             "its own name")
        for where, fields in (("set", self.set), ("grid", self.grid),
                              *((f"runs.{r.name}.set", r.set) for r in self.runs)):
            owned = [f for f in fields if f in SWEEP_OWNED]
            if owned:
                raise ValueError(f"{where}: {owned[0]} is the sweep's to set (each point is "
                                 "named after its values and built in the sweep's folder)")
        count = max(len(self.runs), 1) * _product_size(self.grid)
        if count > MAX_POINTS:
            raise ValueError(f"the sweep has {count} points, more than {MAX_POINTS}")
        return self


def _product_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: its name, its own fields (of its named run and grid point; the
    sweep's common ones are :attr:`Sweep.common`), its validated recipe."""

    name: str
    overrides: dict[str, Any]
    recipe: Recipe
    run_dir: Path
    aliases: tuple[str, ...] = ()
    published: PublishedFigure | None = None  # of the named run it comes from


@dataclass(frozen=True)
class Sweep:
    name: str
    source: Path
    folder: Path
    points: list[SweepPoint]
    build_cpus: int
    common: dict[str, Any]  # fields set on every point (the file's set, then --set)
    compare: CompareSection


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read and expand a sweep file; ``overrides`` (``--set``) apply to every point last."""
    path = Path(path)
    data = read_yaml_file(path, "sweep file")
    if not isinstance(data, dict):
        raise EdgeCNNError(f"sweep file {path}: expected a mapping (name, base, grid, runs), "
                           f"got {type(data).__name__}")
    try:
        spec = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise EdgeCNNError(_format_error(exc, path)) from exc
    base, base_folder = _base_recipe(spec, path)
    folder = Path(spec.output.format(name=spec.name))
    points: list[SweepPoint] = []
    by_content: dict[str, int] = {}
    common = {**spec.set, **(overrides or {})}
    for name, fields, published in _expand(spec):
        raw = copy.deepcopy(base)
        source = f"{path} point {name}"
        # the sweep's set, then the point's own fields, then --set: the last word is the user's
        # copies: a later dotted field (train.precision) must not edit a mapping (train) that
        # the sweep's set shares with every other point
        for key, value in {**spec.set, **fields, **(overrides or {})}.items():
            set_field(raw, key, copy.deepcopy(value), source)
        run_dir = (folder / RUNS_FOLDER / name).absolute()
        raw["name"], raw["output"] = name, str(run_dir)
        recipe = validate_recipe(raw, source, base_folder)
        content = _content_key(recipe)
        if content in by_content:  # the same recipe under another name: one run
            first = points[by_content[content]]
            points[by_content[content]] = SweepPoint(first.name, first.overrides, first.recipe,
                                                     first.run_dir, (*first.aliases, name),
                                                     first.published or published)
            continue
        if any(p.name == name for p in points):
            raise EdgeCNNError(f"sweep file {path}: two different points are both named "
                               f"{name!r}; name them in runs")
        by_content[content] = len(points)
        points.append(SweepPoint(name, fields, recipe, run_dir, published=published))
    return Sweep(spec.name, path, folder, points, spec.build_cpus, common, spec.compare)


def _base_recipe(spec: SweepFile, path: Path) -> tuple[dict[str, Any], Path]:
    """The base recipe's raw mapping and the folder its relative names are read from."""
    if isinstance(spec.base, dict):
        return copy.deepcopy(spec.base), path.resolve().parent
    recipe_path = path.parent / spec.base
    if not recipe_path.is_file():
        raise EdgeCNNError(f"sweep file {path}: base {echo(spec.base)} is not a recipe file "
                           f"({recipe_path} does not exist); give a path relative to the "
                           "sweep file, or the recipe itself as a mapping")
    return read_yaml(recipe_path), recipe_path.resolve().parent


def _expand(spec: SweepFile) -> list[tuple[str, dict[str, Any], PublishedFigure | None]]:
    """(point name, dotted fields, published figure) of every point: each named run crossed
    with every grid point; a grid point is named after its values."""
    fields = list(spec.grid)
    grid = [dict(zip(fields, values, strict=True))
            for values in itertools.product(*(spec.grid[f] for f in fields))] or [{}]
    runs = spec.runs or [NamedRun(name="x")]
    points = []
    for run, values in itertools.product(runs, grid):
        label = "_".join(f"{f.split('.')[-1]}-{_slug(v)}" for f, v in values.items())
        name = "-".join(part for part in (run.name if spec.runs else "", label) if part)
        points.append((name[:128], {**run.set, **values}, run.published))
    return points


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9_.]+", "", text.replace("-", "m"))[:40] or "x"


def _content_key(recipe: Recipe) -> str:
    data = recipe.model_dump(mode="json")
    for field in SWEEP_OWNED:
        data.pop(field)
    return json.dumps(data, sort_keys=True)


def _format_error(exc: ValidationError, path: Path) -> str:
    lines = []
    for err in exc.errors()[:4]:
        field = ".".join(str(p) for p in err["loc"]) or "(sweep)"
        if err["type"] == "extra_forbidden":
            model = {"runs": NamedRun, "compare": CompareSection}.get(err["loc"][0], SweepFile)
            if err["loc"][0] == "runs" and "published" in err["loc"][2:3]:
                model = PublishedFigure
            lines.append(f"{field}: unknown key; valid keys here: "
                         f"{', '.join(model.model_fields)}")
        elif err["type"] == "missing":
            lines.append(f"{field}: required but missing")
        else:
            lines.append(f"{field}: {err['msg'].removeprefix('Value error, ')}")
    return f"sweep file {path}: " + "; ".join(lines)

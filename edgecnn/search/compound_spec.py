"""Compound-scaling search files: EfficientNet's grid search over (alpha, beta, gamma), checked
before anything runs.

    name: compound
    base: ../recipes/efficientnet_cifar.yaml   # the baseline: its model, data and training
    set: {train.epochs: 1}                     # the proxy training of every point
    compound:
      resolution: 32                           # the baseline's input size
      alpha: [1.0, 1.1, 1.2, 1.3]              # depth multipliers tried at phi = 1
      beta: [1.0, 1.05, 1.1, 1.15, 1.2]        # width multipliers
      gamma: [1.0, 1.1, 1.15, 1.2]             # resolution multipliers
      target: 2.0                              # phi-1 points: MACs / baseline's within
      tolerance: 0.15                          #   tolerance of target (counted, not nominal)
      phis: [2, 3]                             # scaled from the best (alpha, beta, gamma)
      singles: [depth, width, resolution]      # each alone, at the compound model's MACs
    objective: {backend: onnxruntime, precision: int8, batch: 1, threads: 2}

A search file is of this kind when it has a ``compound`` section (and no ``space``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import check_template
from edgecnn.search.spec import (
    NAME_PATTERN,
    Objective,
    Strict,
    check_backend_installed,
    check_recipe_path,
    format_validation_error,
)
from edgecnn.sweep.spec import CompareSection

DIMENSIONS = ("depth", "width", "resolution")
# EfficientNet's own coefficients (Tan & Le 2019, section 3.3), shown beside the ones found.
PAPER = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
MAX_GRID = 200


def _multipliers(low: float = 1.0) -> Any:
    return Field(min_length=1, max_length=50, description=f"multipliers >= {low}")


class Scaling(Strict):
    resolution: int = Field(ge=8, le=4096, description="the baseline's input size")
    alpha: list[float] = _multipliers()
    beta: list[float] = _multipliers()
    gamma: list[float] = _multipliers()
    target: float = Field(2.0, gt=1, le=16,
                          description="the mult-adds of a phi-1 point / the baseline's")
    tolerance: float = Field(0.15, ge=0, le=8, description="accepted |MACs ratio - target|")
    phis: list[int] = Field(default_factory=lambda: [2, 3], max_length=6,
                            description="scaled from the grid's best; [] stops at phi 1")
    singles: list[Literal["depth", "width", "resolution"]] = Field(
        default_factory=lambda: list(DIMENSIONS), max_length=3)

    @model_validator(mode="after")
    def _consistent(self) -> Scaling:
        for name in ("alpha", "beta", "gamma"):
            values = getattr(self, name)
            if any(not 1.0 <= v <= 4.0 for v in values):
                raise ValueError(f"compound.{name}: multipliers 1.0..4.0, got {values}")
        if any(not 2 <= phi <= 8 for phi in self.phis) or len(set(self.phis)) != len(self.phis):
            raise ValueError(f"compound.phis: distinct integers 2..8 (phi 1 is the grid), got "
                             f"{self.phis}")
        if not grid(self):
            raise ValueError("compound: alpha, beta and gamma give no point but the baseline; "
                             "give multipliers above 1.0")
        if len(grid(self)) > MAX_GRID:
            raise ValueError(f"compound: {len(grid(self))} (alpha, beta, gamma) combinations, "
                             f"more than {MAX_GRID}")
        return self


def flops_factor(alpha: float, beta: float, gamma: float) -> float:
    """The paper's growth of mult-adds: linear in depth, quadratic in width and resolution."""
    return alpha * beta**2 * gamma**2


def grid(scaling: Scaling) -> list[tuple[float, float, float]]:
    """Every (alpha, beta, gamma) but the baseline's, in file order. Which of them spend the
    target's mult-adds is decided on the counted MACs of the built network, not on
    alpha * beta^2 * gamma^2: on small inputs, rounding (whole pixels, maps rounded up at each
    stride, channels in multiples of 8, repeats rounded up) makes them differ by up to 1.5x."""
    return [(a, b, g) for a in scaling.alpha for b in scaling.beta for g in scaling.gamma
            if (a, b, g) != (1.0, 1.0, 1.0)]


class CompoundFile(Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    base: str = Field(min_length=1, max_length=4096,
                      description="the baseline recipe: a model with width_mult and depth_mult "
                                  "options (the efficientnet family)")
    set: dict[str, Any] = Field(default_factory=dict, description="the proxy training")
    compound: Scaling
    objective: Objective
    compare: CompareSection = Field(default_factory=CompareSection)
    parallel: int = Field(1, ge=1, le=256)
    build_cpus: int = Field(1, ge=1, le=1024)
    output: str = Field("runs/searches/{name}", min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _output(self) -> CompoundFile:
        check_template(self.output, {"name"}, "output")
        # the scaling writes the model of every point; a model field in set would undo it
        clashes = [key for key in self.set if key == "model" or key.startswith("model.")]
        if clashes:
            raise ValueError(f"set: {', '.join(clashes)} would override the scaled model; put "
                             "the baseline's model in the base recipe")
        return self


def is_compound(data: Any) -> bool:
    return isinstance(data, dict) and "compound" in data


def parse_compound(data: dict[str, Any], path: Path) -> tuple[CompoundFile, Path]:
    """The validated compound search file and its folder (where base is read from)."""
    if "space" in data:
        raise EdgeCNNError(f"search file {path}: give either space (an architecture search) or "
                           "compound (compound scaling), not both")
    try:
        spec = CompoundFile.model_validate(data)
    except ValidationError as exc:
        raise EdgeCNNError(format_validation_error(exc, path)) from exc
    check_backend_installed(spec, path)
    check_recipe_path(path, "base", spec.base)
    return spec, path.resolve().parent

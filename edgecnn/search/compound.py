"""Compound scaling reproduced (EfficientNet, Tan & Le 2019, section 3.3): a grid search over
(alpha, beta, gamma) at phi = 1 whose counted mult-adds are ~ target x the baseline's (the
paper's alpha * beta^2 * gamma^2 ~ 2, measured rather than nominal), then the best triple
scaled to phi = 2, 3, ... against scaling one dimension alone (depth, width or resolution) to
the same mult-adds.

Every point is a recipe: the base recipe's model with ``depth_mult``, ``width_mult`` and
``model.resolution`` set, trained with the search's proxy ``set``, quantized for the
objective's backend, evaluated and timed side by side with the other points of its phase
(``grid`` and ``scaled``, each a sweep on Ray). The chosen triple is the one with the best FP32
top-1, as in the paper (latency is reported beside it, not used to choose). Equal mult-adds
are matched by bisection on the single dimension's multiplier, with the model's own rounding
(ceil of repeats, channels to multiples of 8, whole pixels), so they are equal only to the
step that rounding allows: the table gives each point's MACs as a ratio to the compound one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rich.console import Console

from edgecnn.atomic import atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.loading import read_yaml
from edgecnn.search.compound_spec import PAPER, CompoundFile, flops_factor, grid
from edgecnn.search.space import candidate_recipe
from edgecnn.search.study import Search, SearchRunner, objective_row, p50_of
from edgecnn.sweep.spec import RUNS_FOLDER, SweepPoint

GRID, SCALED = "grid", "scaled"
RESULT_FILE = "compound.json"


@dataclass(frozen=True)
class Scaled:
    """One point: multipliers of the baseline's depth, width and resolution."""

    name: str
    kind: str  # baseline, grid, compound, depth, width or resolution
    phi: int
    depth: float
    width: float
    resolution: int


class Baseline:
    """The base recipe's model, and the mult-adds of any scaling of it (meta device)."""

    def __init__(self, model: dict[str, Any], resolution: int) -> None:
        options = model.get("options") or {}
        self.model, self.resolution = model, resolution
        self.depth_mult = float(options.get("depth_mult", 1.0))
        self.width_mult = float(options.get("width_mult", 1.0))
        self._macs = lru_cache(maxsize=4096)(self._count)

    def unscaled(self) -> Scaled:
        return Scaled("baseline", "baseline", 0, 1.0, 1.0, self.resolution)

    def section(self, point: Scaled) -> dict[str, Any]:
        model = copy.deepcopy(self.model)
        model.pop("pretrained", None)  # a scaled network has no weights of its own
        options = model.setdefault("options", {})
        options["depth_mult"] = round(self.depth_mult * point.depth, 4)
        options["width_mult"] = round(self.width_mult * point.width, 4)
        options.pop("phi", None)
        model["resolution"] = point.resolution
        return model

    def macs(self, point: Scaled) -> int:
        return self._macs(point.depth, point.width, point.resolution)

    def _count(self, depth: float, width: float, resolution: int) -> int:
        from edgecnn.models import create_model
        from edgecnn.profile import profile_model

        section = self.section(Scaled("probe", "probe", 0, depth, width, resolution))
        try:
            built = create_model(section["arch"], device="meta", num_classes=10,
                                 cifar_stem=section.get("cifar_stem", False),
                                 **section["options"])
        except (TypeError, EdgeCNNError) as exc:
            raise EdgeCNNError(f"compound scaling needs a base model with width_mult and "
                               f"depth_mult options (the efficientnet family): {exc}") from exc
        return profile_model(built, resolution).macs


def grid_points(spec: CompoundFile, baseline: Baseline) -> list[Scaled]:
    """The baseline and every (alpha, beta, gamma) whose counted mult-adds are within
    tolerance of target x the baseline's."""
    r0, scaling = spec.compound.resolution, spec.compound
    base = baseline.unscaled()
    points, ratios = [base], {}
    for a, b, g in grid(scaling):
        point = Scaled(f"phi1-a{a:g}-b{b:g}-g{g:g}", GRID, 1, a, b, round(r0 * g))
        ratios[point.name] = baseline.macs(point) / baseline.macs(base)
        if abs(ratios[point.name] - scaling.target) <= scaling.tolerance + 1e-9:
            points.append(point)
    if len(points) == 1:
        nearest = sorted(ratios.items(), key=lambda kv: abs(kv[1] - scaling.target))[:3]
        raise EdgeCNNError(
            f"search {spec.name}: no (alpha, beta, gamma) of the grid has mult-adds within "
            f"{scaling.tolerance} of {scaling.target}x the baseline's; nearest: "
            + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in nearest)
            + "; widen compound.tolerance or change the multipliers")
    return points


def match(baseline: Baseline, dimension: str, target: int, phi: int) -> Scaled:
    """The single-dimension scaling whose mult-adds are nearest ``target``: bisection for the
    smallest multiplier at or over it, then that one or the step below, whichever is nearer."""
    r0 = baseline.resolution

    def point(x: float) -> Scaled:
        if dimension == "resolution":
            return Scaled(f"phi{phi}-resolution", dimension, phi, 1.0, 1.0, int(x))
        return Scaled(f"phi{phi}-{dimension}", dimension, phi,
                      x if dimension == "depth" else 1.0, x if dimension == "width" else 1.0, r0)

    if dimension == "resolution":
        low, high = r0, r0
        while baseline.macs(point(high)) < target:
            high *= 2
        while high - low > 1:  # integers: the smallest resolution at or over the target
            middle = (low + high) // 2
            low, high = (middle, high) if baseline.macs(point(middle)) < target else (low, middle)
        candidates = [point(low), point(high)]
    else:
        low, high = 1.0, 2.0
        while baseline.macs(point(high)) < target:
            high *= 2
        while high - low > 5e-4:  # to the recipe's three decimals
            middle = (low + high) / 2
            low, high = (middle, high) if baseline.macs(point(middle)) < target else (low, middle)
        # three decimals in the recipe: rounded away from the step between them
        candidates = [point(math.floor(low * 1000) / 1000), point(math.ceil(high * 1000) / 1000)]
    return min(candidates, key=lambda p: abs(baseline.macs(p) - target))


def scaled_points(spec: CompoundFile, baseline: Baseline, best: Scaled) -> list[Scaled]:
    """Per phi (1, where the grid's best stands, then the file's phis): the compound model and
    each single dimension at its mult-adds."""
    points = []
    for phi in [1, *spec.compound.phis]:
        compound = Scaled(f"phi{phi}-compound", "compound", phi, round(best.depth**phi, 4),
                          round(best.width**phi, 4),
                          round(spec.compound.resolution * (best.resolution
                                                            / spec.compound.resolution)**phi))
        points.append(compound)
        target = baseline.macs(compound)
        points += [match(baseline, dimension, target, phi) for dimension in spec.compound.singles]
    return points


class CompoundRunner:
    """One compound-scaling ``edgecnn search`` on a started Ray: the grid, then the scaling."""

    def __init__(self, search: Search, ray, console: Console) -> None:
        self.search, self.spec, self.console = search, search.spec, console
        self.runner = SearchRunner(search, ray, console)
        self.baseline = baseline_of(search)
        self.baseline_macs = self.baseline.macs(self.baseline.unscaled())
        self.timing: dict[str, dict[str, Any]] = {}  # per phase: timed side by side or not

    @staticmethod
    def point_of(search: Search, baseline: Baseline, phase: str, point: Scaled) -> SweepPoint:
        run_dir = search.folder / phase / RUNS_FOLDER / point.name
        recipe = candidate_recipe(search.base, search.spec, baseline.section(point), point.name,
                                  run_dir, search.recipe_folder, trained=True)
        return SweepPoint(point.name, {}, recipe, run_dir)

    def measure(self, phase: str, points: list[Scaled]) -> list[dict[str, Any]]:
        done = self.runner.run_phase(
            phase, [self.point_of(self.search, self.baseline, phase, p) for p in points])
        self.timing[phase] = {"side_by_side": done["side_by_side"],
                              "compare_error": done["compare_error"]}
        rows = []
        for point in points:
            measured = done["rows"].get(point.name, [])
            final, fp32 = objective_row(measured, self.spec), objective_row(measured, self.spec,
                                                                             "fp32")
            rows.append({**asdict(point), "macs": self.baseline.macs(point),
                         "macs_ratio": self.baseline.macs(point) / self.baseline_macs,
                         "flops_factor": flops_factor(point.depth, point.width,
                                                      point.resolution / self.baseline.resolution),
                         "top1": final.get("top1") if final else None,
                         "top1_fp32": fp32.get("top1") if fp32 else None,
                         "p50_ms": p50_of(measured, self.spec),
                         "error": done["errors"].get(point.name)})
        return rows

    def run(self) -> dict[str, Any]:
        grid_rows = self.measure(GRID, grid_points(self.spec, self.baseline))
        trained = [r for r in grid_rows if r["kind"] == GRID and r["top1_fp32"] is not None]
        if not trained:
            errors = "; ".join(f"{r['name']}: {r['error']}" for r in grid_rows if r["error"])
            raise EdgeCNNError(f"search {self.spec.name}: no grid point finished ({errors})")
        best_row = max(trained, key=lambda r: r["top1_fp32"])
        best = Scaled(best_row["name"], GRID, 1, best_row["depth"], best_row["width"],
                      best_row["resolution"])
        self.console.print(f"compound: best at phi 1: alpha {best.depth:g}, beta {best.width:g}, "
                           f"gamma {best.resolution / self.spec.compound.resolution:.3g} "
                           f"(FP32 top-1 {best_row['top1_fp32']:.2f}%)")
        scaled_rows = self.measure(SCALED, scaled_points(self.spec, self.baseline, best))
        result = {"name": self.spec.name, "objective": self.spec.objective.model_dump(),
                  "baseline": {"model": self.baseline.model,
                               "resolution": self.spec.compound.resolution},
                  "target": self.spec.compound.target, "paper": PAPER,
                  "found": {"alpha": best.depth, "beta": best.width,
                            "gamma": round(best.resolution / self.spec.compound.resolution, 4)},
                  "grid": grid_rows, "scaled": scaled_rows, "timing": self.timing}
        atomic_write_json(self.search.folder / RESULT_FILE, result)
        return result


def compound_search(spec: CompoundFile, source: Path, recipe_folder: Path) -> Search:
    folder = Path(spec.output.format(name=spec.name)).absolute()
    return Search(spec, source, folder, recipe_folder, read_yaml(recipe_folder / spec.base),
                  None)


def baseline_of(search: Search) -> Baseline:
    model = search.base.get("model")
    if not isinstance(model, dict) or "arch" not in model:
        raise EdgeCNNError(f"search {search.source}: the base recipe {search.spec.base} has no "
                           "model section (arch, options) to scale")
    return Baseline(model, search.spec.compound.resolution)


def preflight_compound(search: Search) -> list[tuple[Scaled, int]]:
    """What a dry run says, before anything is built: every grid point is a valid recipe, the
    baseline passes `edgecnn build`'s checks, and the mult-adds of each point."""
    from edgecnn.recipe.preflight import preflight

    baseline = baseline_of(search)
    points = grid_points(search.spec, baseline)
    # building each point's recipe validates it; the baseline's also passes the build's checks
    recipes = [CompoundRunner.point_of(search, baseline, GRID, p) for p in points]
    try:
        preflight(recipes[0].recipe, recipes[0].run_dir)
    except EdgeCNNError as exc:
        raise EdgeCNNError(f"search {search.source} (baseline): {exc}") from exc
    return [(p, baseline.macs(p)) for p in points]

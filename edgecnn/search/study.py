"""The search loop: Optuna proposes architectures, the sweep engine builds and times them on
Ray, Optuna learns from the figures.

Latency is cheap and accuracy is not, so every batch of ``parallel`` trials goes in two
phases. Latency: each candidate is built untrained (random weights: the same graph, the same
kernels), quantized and timed on the objective's backend, side by side with the reference
recipe in one process (the sweep's comparison), so a budget given as a ratio to the reference
holds on a noisy machine; a candidate near the budget is timed again beside the reference
(``confirm``) and judged on the median of its ratios to it. Accuracy: only the candidates that
meet the latency, MACs and parameter constraints are trained with the base recipe's schedule,
quantized again (real weights, real ranges) and evaluated; the others are told to Optuna as
infeasible, untrained.

When the budget is spent, the final phase trains the best ``finalists`` of the front again
with the base recipe's own schedule (no proxy ``set``) and the reference with its own, and
times them side by side: the comparison a user decides on (``final.json``).

The study lives in ``study.db`` (SQLite) in the search folder: a killed search run again
loads it, marks the trials that were running as failed and proposes their parameters again
(their finished stages are reused: a candidate's run folder is named after what it is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from rich.console import Console

from edgecnn._optional import require
from edgecnn.atomic import atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.loading import read_yaml
from edgecnn.search.front import best_on_front, feasible_trained, front_of, trial_rows
from edgecnn.search.space import candidate_key, candidate_recipe, cheapest, suggest
from edgecnn.search.spec import SearchFile
from edgecnn.sweep.ray_runner import append_record, run_sweep
from edgecnn.sweep.report import collect_rows
from edgecnn.sweep.spec import RUNS_FOLDER, Sweep, SweepPoint

LATENCY, ACCURACY, FINAL = "latency", "accuracy", "final"
FINAL_FILE = "final.json"
REFERENCE = "reference"
STUDY_FILE = "study.db"
SPENT = "seconds_spent"  # the study's user attribute: search time over every run


@dataclass
class Search:
    spec: SearchFile
    source: Path
    folder: Path  # the search's output folder
    recipe_folder: Path  # where base and reference are read from
    base: dict[str, Any]
    reference: dict[str, Any] | None

    @classmethod
    def load(cls, spec: SearchFile, source: Path, recipe_folder: Path) -> Search:
        reference = read_yaml(recipe_folder / spec.reference) if spec.reference else None
        return cls(spec, source, Path(spec.output.format(name=spec.name)).absolute(),
                   recipe_folder, read_yaml(recipe_folder / spec.base), reference)

    def point(self, phase: str, name: str, model: dict[str, Any] | None) -> SweepPoint:
        run_dir = self.folder / phase / RUNS_FOLDER / name
        base = self.reference if model is None else self.base
        # the final phase trains with the base's own schedule, the others with the proxy set
        recipe = candidate_recipe(base, self.spec, model, name, run_dir, self.recipe_folder,
                                  trained=phase in (ACCURACY, FINAL), proxy=phase != FINAL)
        return SweepPoint(name, {}, recipe, run_dir)


def p50_of(rows: list[dict[str, Any]], spec: SearchFile) -> float | None:
    """The objective artifact's p50 at the objective's batch: side by side where timed so."""
    row = objective_row(rows, spec)
    if row is None:
        return None
    batch = str(spec.objective.batch)
    stats = (row.get("side_by_side") or {}).get(batch) or (row.get("latency") or {}).get(batch)
    return stats["p50_ms"] if stats else None


def objective_row(rows: list[dict[str, Any]], spec: SearchFile,
                  precision: str | None = None) -> dict[str, Any] | None:
    precision = precision or spec.objective.precision
    return next((r for r in rows if r["backend"] == spec.objective.backend
                 and r["precision"] == precision), None)


def side_by_side_series(timings: list[dict[str, Any]], name: str,
                        spec: SearchFile) -> list[tuple[float | None, float | None]]:
    """(the point's p50, the reference's p50) in each of several side-by-side timings of the
    same points (``run_phase`` results): what a judgement on repeated timings reads."""
    return [(p50_of(t["rows"].get(name, []), spec), p50_of(t["rows"].get(REFERENCE, []), spec))
            for t in timings]


class SearchRunner:
    """One ``edgecnn search`` invocation on a started Ray (``ray``)."""

    def __init__(self, search: Search, ray, console: Console) -> None:
        self.search, self.spec, self.ray, self.console = search, search.spec, ray, console

    # -- one phase of a batch: a sweep of its points ----------------------------------------
    def run_phase(self, phase: str, points: list[SweepPoint]) -> dict[str, Any]:
        """Rows by point name, and the error of every point that failed."""
        folder = self.search.folder / phase
        compare = self.spec.compare.model_copy(update={
            # trained models need no second timing (their graph is the latency phase's)
            "enabled": phase != ACCURACY and len(points) > 1,
            "batch_sizes": [self.spec.objective.batch]})
        sweep = Sweep(f"{self.spec.name}-{phase}", self.search.source, folder, points,
                      self.spec.build_cpus, {}, compare)
        result = run_sweep(sweep, self.ray, self.console,
                           on_record=lambda record: append_record(folder, record))
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in collect_rows(result.statuses, result.comparison):
            rows.setdefault(row["run"], []).append(row)
        errors = {s.point.name: s.error or s.state for s in result.statuses if s.state != "done"}
        compared = result.comparison
        # where the side-by-side timing failed, p50s fall back to each build's own benchmark
        return {"rows": rows, "errors": errors,
                "side_by_side": bool(compared and compared.get("ok")),
                "compare_error": compared.get("error") if compared else None}

    # -- the budget that no candidate can meet -----------------------------------------------
    def check_cheapest(self) -> float | None:
        """Time the cheapest candidate beside the reference before anything is trained; a
        latency budget it misses is one no candidate meets (exit 2). Returns the reference's
        p50 (None without a reference)."""
        model = cheapest(self.spec.space)
        name = candidate_key(model)
        points = [self.search.point(LATENCY, name, model)]
        if self.search.reference is not None:
            points.append(self.search.point(LATENCY, REFERENCE, None))
        measured = self.run_phase(LATENCY, points)
        if name in measured["errors"]:
            raise EdgeCNNError(f"search {self.spec.name}: the cheapest candidate of the space "
                               f"does not build: {measured['errors'][name]}")
        p50 = p50_of(measured["rows"].get(name, []), self.spec)
        reference = self.reference_p50(measured)
        budget = self.latency_budget(reference)
        if budget is not None and p50 is not None and p50 > budget:
            raise EdgeCNNError(
                f"search {self.spec.name}: no candidate can meet the latency budget of "
                f"{budget:.3f} ms ({self._budget_words(reference)}): the cheapest point of the "
                f"space measured {p50:.3f} ms on {self.spec.objective.backend}; allow more "
                "latency or make the space smaller")
        return reference

    def reference_p50(self, timed: dict[str, Any]) -> float | None:
        """The reference's p50 in this batch; a budget relative to it cannot go unchecked."""
        if self.search.reference is None:
            return None
        p50 = p50_of(timed["rows"].get(REFERENCE, []), self.spec)
        if p50 is None and self.spec.constraints.latency_ratio is not None:
            raise EdgeCNNError(
                f"search {self.spec.name}: the reference {self.spec.reference} gave no "
                f"{self.spec.objective.backend} {self.spec.objective.precision} latency, which "
                f"constraints.latency_ratio needs: {timed['errors'].get(REFERENCE, 'no row')}")
        return p50

    def latency_budget(self, reference_p50: float | None) -> float | None:
        c = self.spec.constraints
        budgets = [c.latency_ms] if c.latency_ms is not None else []
        if c.latency_ratio is not None and reference_p50 is not None:
            budgets.append(c.latency_ratio * reference_p50)
        return min(budgets) if budgets else None

    def _budget_words(self, reference_p50: float | None) -> str:
        c = self.spec.constraints
        words = [f"latency_ms {c.latency_ms}"] if c.latency_ms is not None else []
        if c.latency_ratio is not None and reference_p50 is not None:
            words.append(f"latency_ratio {c.latency_ratio} x the reference's "
                         f"{reference_p50:.3f} ms")
        return ", ".join(words)

    # -- one batch of trials ---------------------------------------------------------------
    def run_batch(self, study, trials: list) -> None:
        spec, search = self.spec, self.search
        models = [suggest(t, spec.space) for t in trials]
        keys = [candidate_key(m) for m in models]
        points = {k: search.point(LATENCY, k, m) for k, m in zip(keys, models, strict=True)}
        if search.reference is not None:
            points[REFERENCE] = search.point(LATENCY, REFERENCE, None)
        timed = self.run_phase(LATENCY, list(points.values()))
        reference = self.reference_p50(timed)
        budget = self.latency_budget(reference)
        figures: dict[str, dict[str, Any]] = {}
        for key, model in zip(keys, models, strict=True):
            rows = timed["rows"].get(key, [])
            row = objective_row(rows, spec)
            p50 = p50_of(rows, spec)
            figures[key] = {"key": key, "model": model, "error": timed["errors"].get(key),
                            "p50_ms": p50, "reference_p50_ms": reference,
                            "ratio": p50 / reference if p50 and reference else None,
                            "timings": 1, "budget_ms": budget,
                            "macs": row["macs"] if row else None,
                            "params": row["params"] if row else None, "trained": False}
        self.confirm_latency(timed, points, [figures[k] for k in dict.fromkeys(keys)])
        for key in keys:
            figures[key]["violations"] = self.static_violations(figures[key])
        feasible = [k for k in dict.fromkeys(keys)
                    if figures[k]["error"] is None and not any(
                        v > 0 for v in figures[k]["violations"].values())]
        if feasible:
            trained = self.run_phase(ACCURACY, [search.point(ACCURACY, k, figures[k]["model"])
                                                for k in feasible])
            for key in feasible:
                rows = trained["rows"].get(key, [])
                final, fp32 = objective_row(rows, spec), objective_row(rows, spec, "fp32")
                figures[key].update(error=trained["errors"].get(key), trained=True,
                                    top1=final.get("top1") if final else None,
                                    top1_fp32=fp32.get("top1") if fp32 else None)
                drop = (figures[key]["top1_fp32"] - figures[key]["top1"]
                        if final and fp32 and spec.objective.precision == "int8" else None)
                figures[key]["int8_drop"] = drop
                if spec.constraints.max_int8_drop is not None and drop is not None:
                    figures[key]["violations"]["int8_drop"] = drop - spec.constraints.max_int8_drop
        for trial, key in zip(trials, keys, strict=True):
            self.tell(study, trial, figures[key])

    def near_budget(self, figures: dict[str, Any]) -> bool:
        c, margin = self.spec.constraints, 1 + self.spec.confirm.margin
        if figures["error"] is not None or figures["p50_ms"] is None:
            return False
        return ((c.latency_ms is not None and figures["p50_ms"] <= c.latency_ms * margin)
                or (c.latency_ratio is not None and figures["ratio"] is not None
                    and figures["ratio"] <= c.latency_ratio * margin))

    def confirm_latency(self, timed: dict[str, Any], points: dict[str, SweepPoint],
                        candidates: list[dict[str, Any]]) -> None:
        """The candidates near the latency budget timed ``confirm.repeats`` times more beside
        the reference (their artifacts are built: only the side-by-side timing runs again);
        each gets the median of its p50s, of the reference's and of its ratios to it."""
        repeats = self.spec.confirm.repeats
        # over the MACs or parameter budget, a candidate is out whatever its latency
        near = [f for f in candidates if self.near_budget(f) and not any(
            v > 0 for k, v in self.static_violations(f).items() if k != "latency")]
        if not near or not repeats or self.search.reference is None:
            return
        again = [self.run_phase(LATENCY, [points[f["key"]] for f in near] + [points[REFERENCE]])
                 for _ in range(repeats)]
        for f in near:
            pairs = [(p, r) for p, r in side_by_side_series([timed, *again], f["key"], self.spec)
                     if p is not None and r is not None]
            f.update(p50_ms=median(p for p, _ in pairs),
                     reference_p50_ms=median(r for _, r in pairs),
                     ratio=median(p / r for p, r in pairs), timings=len(pairs),
                     ratios=[round(p / r, 4) for p, r in pairs])
            f["budget_ms"] = self.latency_budget(f["reference_p50_ms"])
            self.console.print(f"  {f['key']}: {len(pairs)} side-by-side timings, ratio to the "
                               f"reference {', '.join(f'{x:.2f}' for x in f['ratios'])} "
                               f"(median {f['ratio']:.3f})")

    def static_violations(self, figures: dict[str, Any]) -> dict[str, float]:
        """Constraint -> amount over the limit (<= 0: met), as Optuna's constraints want. A
        ratio budget is judged on the (median) ratio to the reference, in the reference's ms."""
        c, out = self.spec.constraints, {}
        over = []
        if c.latency_ms is not None and figures["p50_ms"] is not None:
            over.append(figures["p50_ms"] - c.latency_ms)
        if c.latency_ratio is not None and figures.get("ratio") is not None:
            over.append((figures["ratio"] - c.latency_ratio) * figures["reference_p50_ms"])
        if over:
            out["latency"] = max(over)
        if c.max_macs is not None and figures["macs"] is not None:
            out["macs"] = (figures["macs"] - c.max_macs) / c.max_macs
        if c.max_params is not None and figures["params"] is not None:
            out["params"] = (figures["params"] - c.max_params) / c.max_params
        return out

    def constraint_names(self) -> list[str]:
        c = self.spec.constraints
        names = ["latency"] if c.latency_ms is not None or c.latency_ratio is not None else []
        names += [name for name, limit in (("macs", c.max_macs), ("params", c.max_params),
                                           ("int8_drop", c.max_int8_drop)) if limit is not None]
        return names

    def tell(self, study, trial, figures: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        for name, value in figures.items():
            trial.set_user_attr(name, value)
        if figures["error"] is not None or figures["p50_ms"] is None:
            study.tell(trial, state=TrialState.FAIL)
            self.console.print(f"trial {trial.number} ({figures['key']}): failed: "
                               f"{figures['error'] or 'no latency measured'}")
            return
        # every trial carries every constraint (Optuna compares them); one a phase did not
        # reach (the INT8 drop of an untrained candidate) counts as met: another one is not
        for name in self.constraint_names():
            trial.set_constraint(name, figures["violations"].get(name, 0.0))
        # an untrained (infeasible) candidate scores 0: Optuna ranks it by its violations
        top1 = figures.get("top1") if figures["trained"] else None
        study.tell(trial, [top1 if top1 is not None else 0.0, figures["p50_ms"]])
        state = (f"top-1 {top1:.2f}%" if top1 is not None
                 else "over budget: " + ", ".join(k for k, v in figures["violations"].items()
                                                  if v > 0))
        self.console.print(f"trial {trial.number} ({figures['key']}): p50 "
                           f"{figures['p50_ms']:.3f} ms, {state}")

    # -- the final phase: the best candidates on the base's schedule, beside the reference ---
    def run_final(self, study) -> dict[str, Any] | None:
        spec, search = self.spec, self.search
        best = best_on_front(front_of(feasible_trained(trial_rows(study), spec)),
                             spec.finalists)
        points = [search.point(FINAL, row["key"], row["model"]) for row in best]
        if spec.train_reference and search.reference is not None:
            points.append(search.point(FINAL, REFERENCE, None))
        if not points:
            return None
        done = self.run_phase(FINAL, points)
        # the comparison a user decides on: timed 1 + confirm.repeats times side by side (the
        # trainings are cached, only the timing runs again), the median of each kept
        timings = [done] + [self.run_phase(FINAL, points)
                            for _ in range(spec.confirm.repeats if len(points) > 1 else 0)]
        with_reference = spec.train_reference and search.reference is not None

        def figures(name: str) -> dict[str, Any]:
            rows = done["rows"].get(name, [])
            final, fp32 = objective_row(rows, spec), objective_row(rows, spec, "fp32")
            series = side_by_side_series(timings, name, spec)
            p50s = [p for p, _ in series]
            out = {"top1": final.get("top1") if final else None,
                   "top1_fp32": fp32.get("top1") if fp32 else None,
                   "p50_ms": median(p for p in p50s if p) if any(p50s) else None,
                   "p50s_ms": p50s, "error": done["errors"].get(name)}
            if with_reference and name != REFERENCE:
                ratios = [p / r for p, r in series if p and r]
                out["ratios"] = [round(x, 4) for x in ratios]
                out["ratio"] = median(ratios) if ratios else None
            return out

        result = {"side_by_side": len(points) > 1, "timings": len(timings),
                  "schedule": "the base recipe's own schedule (without the search's set)",
                  "reference": figures(REFERENCE) if with_reference else None,
                  "finalists": [{"trial": row["trial"], "key": row["key"], "model": row["model"],
                                 "search_top1": row["top1"], "search_p50_ms": row["p50_ms"],
                                 **figures(row["key"])} for row in best]}
        atomic_write_json(search.folder / FINAL_FILE, result)
        for row in result["finalists"]:
            words = (f"top-1 {row['top1']:.2f}%, p50 {row['p50_ms']:.3f} ms"
                     if row["top1"] is not None and row["p50_ms"] is not None
                     else f"failed: {row['error']}")
            if row.get("ratio") is not None:
                words += (f", {row['ratio']:.3f}x the reference (median of "
                          f"{', '.join(f'{x:.2f}' for x in row['ratios'])})")
            self.console.print(f"final: trial {row['trial']} ({row['key']}) on the base's "
                               f"schedule: {words}")
        return result


def preflight_search(search: Search):
    """What can be said before anything is built: the cheapest candidate and the reference
    pass `edgecnn build`'s checks (data, backends, recipe fields of `set`), and the cheapest
    candidate meets the MACs and parameter budgets (else none does). Returns its counts."""
    from edgecnn.models import create_model
    from edgecnn.profile import profile_model
    from edgecnn.recipe.preflight import preflight

    spec = search.spec
    model = cheapest(spec.space)
    # the cheapest candidate as both phases build it (untrained, then with the proxy training)
    points = [search.point(LATENCY, "cheapest", model), search.point(ACCURACY, "cheapest", model)]
    if search.reference is not None:
        points.append(search.point(LATENCY, REFERENCE, None))
    for point in points:
        try:
            preflight(point.recipe, point.run_dir)
        except EdgeCNNError as exc:
            raise EdgeCNNError(f"search {search.source} ({point.name}): {exc}") from exc
    built = create_model(model["arch"], device="meta", num_classes=10,
                         cifar_stem=model["cifar_stem"], **model["options"])
    counts = profile_model(built, model["resolution"])
    limits = spec.constraints
    for field, value, limit, what in (("max_macs", counts.macs, limits.max_macs, "MACs"),
                                      ("max_params", counts.params, limits.max_params,
                                       "parameters")):
        if limit is not None and value > limit:
            raise EdgeCNNError(f"search {search.source}: no candidate can meet constraints."
                               f"{field} {limit:g}: the cheapest point of the space has "
                               f"{value:,} {what}")
    return counts


def open_study(search: Search):
    optuna = require("optuna", "edgecnn search")
    spec = search.spec
    # constraints reach both samplers through Trial.set_constraint (Optuna 5)
    sampler = (optuna.samplers.NSGAIISampler(seed=spec.seed,
                                             population_size=max(4, spec.parallel * 2))
               if spec.sampler == "nsga2" else
               optuna.samplers.TPESampler(seed=spec.seed, multivariate=True,
                                          n_startup_trials=max(4, spec.parallel * 2)))
    search.folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=f"sqlite:///{search.folder / STUDY_FILE}",
                               study_name=spec.name, load_if_exists=True,
                               directions=["maximize", "minimize"], sampler=sampler)


def resume_stale_trials(study) -> int:
    """Trials left running by a killed search: failed, and their parameters proposed again
    (their run folders, named by content, keep what they finished)."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(stale)


def finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_search(search: Search, ray, console: Console) -> Any:
    """Run trials until the budget's trials are complete or its hours spent; returns the
    study. Every run adds to the stored trials."""
    spec = search.spec
    study = open_study(search)
    stale = resume_stale_trials(study)
    before = finished(study)
    console.print(f"search {spec.name}: {before} trials stored"
                  + (f", {stale} interrupted {'trial' if stale == 1 else 'trials'} proposed "
                     "again" if stale else ""))
    runner = SearchRunner(search, ray, console)
    if before == 0 and not stale:
        runner.check_cheapest()
    spent, start = float(study.user_attrs.get(SPENT, 0.0)), time.time()
    asked = 0  # a space whose candidates keep failing to build must not loop forever
    while finished(study) < spec.budget.trials and asked < 2 * spec.budget.trials:
        elapsed = spent + time.time() - start
        if spec.budget.hours is not None and elapsed >= spec.budget.hours * 3600:
            console.print(f"budget of {spec.budget.hours} h spent")
            break
        count = min(spec.parallel, spec.budget.trials - finished(study))
        runner.run_batch(study, [study.ask() for _ in range(count)])
        asked += count
        study.set_user_attr(SPENT, spent + time.time() - start)
    # after the budget: the best candidates and the reference, each on its own recipe's
    # schedule, side by side (cached after: a rerun retimes only)
    runner.run_final(study)
    return study

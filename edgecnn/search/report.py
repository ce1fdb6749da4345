"""What a search leaves: trials.json / trials.md (every trial with its figures), the Pareto
front of top-1 against measured latency as a table and a plot with the reference on it, and the
best candidates as ready recipes (best-1.yaml, ...) for a full ``edgecnn build``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from edgecnn.atomic import atomic_write_bytes, atomic_write_json
from edgecnn.search.study import ACCURACY, REFERENCE, Search, objective_row
from edgecnn.sweep.frontier import pareto_front
from edgecnn.sweep.plots import plot_frontier
from edgecnn.sweep.spec import RUNS_FOLDER

BEST = 3  # recipes written for the best candidates of the front


def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append({"trial": trial.number, "state": trial.state.name, "key": attrs.get("key"),
                     "params": attrs.get("params"), "macs": attrs.get("macs"),
                     "p50_ms": attrs.get("p50_ms"), "budget_ms": attrs.get("budget_ms"),
                     "reference_p50_ms": attrs.get("reference_p50_ms"),
                     "trained": attrs.get("trained", False), "top1": attrs.get("top1"),
                     "top1_fp32": attrs.get("top1_fp32"), "int8_drop": attrs.get("int8_drop"),
                     "violations": attrs.get("violations", {}), "error": attrs.get("error"),
                     "model": attrs.get("model"), "choices": trial.params})
    return rows


def reference_row(search: Search) -> dict[str, Any] | None:
    """The reference's top-1 (its own schedule) and latency (side by side in the last batch),
    when the search trained it."""
    report = search.folder / ACCURACY / RUNS_FOLDER / REFERENCE / "report.json"
    if not report.is_file():
        return None
    from edgecnn.report.rows import read_rows

    row = objective_row(read_rows(report), search.spec)
    return row


def write_search_report(search: Search, study) -> dict[str, Path]:
    spec, folder = search.spec, search.folder
    rows = trial_rows(study)
    o = spec.objective
    # the feasible trained trials as the sweep's frontier and plot read rows
    trained = [{**r, "run": f"t{r['trial']}", "backend": o.backend, "precision": o.precision,
                "family": "searchable"}
               for r in rows if r["state"] == "COMPLETE" and r["trained"]
               and r["top1"] is not None and not any(v > 0 for v in r["violations"].values())]
    front = pareto_front(trained, lambda r: r["p50_ms"])
    front_ids = {r["trial"] for r in front}
    reference = reference_row(search)
    reference_p50 = next((r["reference_p50_ms"] for r in reversed(rows)
                          if r.get("reference_p50_ms")), None)
    files = {"json": folder / "trials.json", "md": folder / "trials.md"}
    atomic_write_json(files["json"], {
        "name": spec.name, "source": str(search.source), "objective": spec.objective.model_dump(),
        "constraints": spec.constraints.model_dump(), "trials": rows,
        "front": sorted(front_ids), "reference": {
            "top1": reference.get("top1") if reference else None, "p50_ms": reference_p50}})
    plot_rows = list(trained)
    if reference and reference_p50:
        plot_rows.append({"run": "reference", "top1": reference["top1"], "p50_ms": reference_p50,
                          "family": "reference", "backend": o.backend, "precision": o.precision})
    if plot_rows:
        files["plot"] = folder / "front_top1_vs_latency.png"
        plot_frontier(plot_rows, lambda r: r["p50_ms"],
                      f"p50 at batch {o.batch}, {o.threads} threads, {o.backend} "
                      f"{o.precision.upper()} (ms)",
                      f"search {spec.name}: top-1 against measured latency", files["plot"])
    best = sorted(front, key=lambda r: -r["top1"])[:BEST]
    for rank, row in enumerate(best, 1):
        files[f"best-{rank}"] = write_best_recipe(search, row, rank)
    atomic_write_bytes(files["md"], _markdown(search, rows, front_ids, reference,
                                              reference_p50, best).encode())
    return files


def write_best_recipe(search: Search, row: dict[str, Any], rank: int) -> Path:
    raw = copy.deepcopy(search.base)
    raw["model"] = copy.deepcopy(row["model"])
    raw["name"] = f"{search.spec.name}-best-{rank}"
    raw.pop("output", None)
    o = search.spec.objective
    header = (f"# edgecnn build best-{rank}.yaml\n#\n# Trial {row['trial']} of search "
              f"{search.spec.name}: top-1 {row['top1']:.2f}% after the search's proxy\n"
              f"# training, p50 {row['p50_ms']:.3f} ms ({o.backend} {o.precision.upper()}, "
              f"batch {o.batch}, {o.threads} threads);\n# {row['macs'] / 1e6:.2f} M MACs, "
              f"{row['params'] / 1e6:.3f} M params. The rest is the search's base recipe "
              "(its own training,\n# without the search's set).\n")
    path = search.folder / f"best-{rank}.yaml"
    atomic_write_bytes(path, (header + yaml.safe_dump(raw, sort_keys=False)).encode())
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _markdown(search: Search, rows, front_ids, reference, reference_p50, best) -> str:
    spec, o = search.spec, search.spec.objective
    lines = [f"# Search {spec.name}", "",
             f"Objective: top-1 after the base recipe's training, and p50 of the "
             f"{o.precision.upper()} artifact on {o.backend} at batch {o.batch}, {o.threads} "
             f"threads (side by side with the reference in each batch). Constraints: "
             + (", ".join(f"{k} {v}" for k, v in spec.constraints.model_dump().items()
                          if v is not None) or "none") + ".", ""]
    if reference_p50:
        top1 = f", top-1 {reference['top1']:.2f}%" if reference else ""
        lines += [f"Reference ({spec.reference}): p50 {reference_p50:.3f} ms{top1}.", ""]
    lines += ["| trial | state | MACs (M) | params (M) | p50 (ms) | budget (ms) | top-1 | "
              "FP32 top-1 | INT8 drop | front | over budget | error |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        over = ", ".join(k for k, v in r["violations"].items() if v > 0)
        lines.append(
            f"| {r['trial']} | {r['state'].lower()} | "
            f"{_fmt(r['macs'] / 1e6 if r['macs'] else None, 2)} | "
            f"{_fmt(r['params'] / 1e6 if r['params'] else None, 3)} | {_fmt(r['p50_ms'])} | "
            f"{_fmt(r['budget_ms'])} | {_fmt(r['top1'], 2)} | {_fmt(r['top1_fp32'], 2)} | "
            f"{_fmt(r['int8_drop'], 2)} | {'*' if r['trial'] in front_ids else ''} | {over} | "
            f"{(r['error'] or '')[:100]} |")
    lines += ["", "## Best candidates (on the front, highest top-1 first)", ""]
    lines += [f"- best-{i}.yaml: trial {r['trial']}, top-1 {r['top1']:.2f}%, p50 "
              f"{r['p50_ms']:.3f} ms" for i, r in enumerate(best, 1)] or ["- none yet"]
    return "\n".join(lines) + "\n"

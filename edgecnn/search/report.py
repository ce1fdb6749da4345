"""What a search leaves: trials.json / trials.md (every trial with its figures), the Pareto
front of top-1 against measured latency as a table and a plot with the reference on it, and the
best candidates as ready recipes (best-1.yaml, ...) for a full ``edgecnn build``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from edgecnn.atomic import atomic_write_bytes, atomic_write_json
from edgecnn.search.front import best_on_front, feasible_trained, front_of, trial_rows
from edgecnn.search.study import FINAL, FINAL_FILE, REFERENCE, Search, objective_row
from edgecnn.sweep.plots import plot_frontier
from edgecnn.sweep.spec import RUNS_FOLDER

BEST = 3  # recipes written for the best candidates of the front


def reference_row(search: Search) -> dict[str, Any] | None:
    """The reference's top-1 on its own schedule, when the search trained it."""
    report = search.folder / FINAL / RUNS_FOLDER / REFERENCE / "report.json"
    if not report.is_file():
        return None
    from edgecnn.report.rows import read_rows

    row = objective_row(read_rows(report), search.spec)
    return row


def write_search_report(search: Search, study) -> dict[str, Path]:
    spec, folder = search.spec, search.folder
    rows = trial_rows(study)
    o = spec.objective
    trained = feasible_trained(rows, spec)
    front = front_of(trained)
    front_ids = {r["trial"] for r in front}
    final_file = folder / FINAL_FILE
    final = json.loads(final_file.read_text()) if final_file.is_file() else None
    reference = reference_row(search)
    reference_p50 = next((r["reference_p50_ms"] for r in reversed(rows)
                          if r.get("reference_p50_ms")), None)
    files = {"json": folder / "trials.json", "md": folder / "trials.md"}
    atomic_write_json(files["json"], {
        "name": spec.name, "source": str(search.source), "objective": spec.objective.model_dump(),
        "constraints": spec.constraints.model_dump(), "trials": rows,
        "front": sorted(front_ids), "reference": {
            "top1": reference.get("top1") if reference else None, "p50_ms": reference_p50},
        "final": final})
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
    best = best_on_front(front, BEST)
    for rank, row in enumerate(best, 1):
        files[f"best-{rank}"] = write_best_recipe(search, row, rank)
    atomic_write_bytes(files["md"], (_markdown(search, rows, front_ids, reference,
                                               reference_p50, best)
                                     + _final_markdown(search, final)).encode())
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
    lines += ["p50 and ratio: the median of the side-by-side timings (a candidate near the "
              f"budget is timed {1 + spec.confirm.repeats} times).", "",
              "| trial | state | MACs (M) | params (M) | p50 (ms) | p50 / reference | timings | "
              "budget (ms) | top-1 | FP32 top-1 | INT8 drop | front | over budget | error |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        over = ", ".join(k for k, v in r["violations"].items() if v > 0)
        lines.append(
            f"| {r['trial']} | {r['state'].lower()} | "
            f"{_fmt(r['macs'] / 1e6 if r['macs'] else None, 2)} | "
            f"{_fmt(r['params'] / 1e6 if r['params'] else None, 3)} | {_fmt(r['p50_ms'])} | "
            f"{_fmt(r.get('ratio'))} | {r.get('timings') or '-'} | {_fmt(r['budget_ms'])} | "
            f"{_fmt(r['top1'], 2)} | {_fmt(r['top1_fp32'], 2)} | "
            f"{_fmt(r['int8_drop'], 2)} | {'*' if r['trial'] in front_ids else ''} | {over} | "
            f"{(r['error'] or '')[:100]} |")
    lines += ["", "## Best candidates (on the front, highest top-1 first)", ""]
    lines += [f"- best-{i}.yaml: trial {r['trial']}, top-1 {r['top1']:.2f}%, p50 "
              f"{r['p50_ms']:.3f} ms" for i, r in enumerate(best, 1)] or ["- none yet"]
    return "\n".join(lines) + "\n"


def _final_markdown(search: Search, final: dict[str, Any] | None) -> str:
    """The finalists on the base recipe's own schedule against the reference on its own,
    timed side by side: the comparison the search was for."""
    if not final:
        return ""
    o = search.spec.objective
    ref = final.get("reference") or {}
    timed = ", timed side by side with the reference" if final["side_by_side"] else ""
    timed += (f" ({final['timings']} timings; p50 and p50 / reference: their medians)"
              if final.get("timings", 1) > 1 else "")
    lines = ["", f"## Final: trained on {final['schedule']}{timed}", "",
             f"| run | top-1 {o.precision.upper()} | FP32 top-1 | p50 (ms) | top-1 vs "
             "reference (points) | p50 / reference | search's proxy top-1 |",
             "|---|---|---|---|---|---|---|"]

    def versus(row, key, fmt):
        if row.get(key) is None or ref.get(key) is None:
            return "-"
        return fmt(row[key], ref[key])

    for row in final["finalists"]:
        # the median of the per-timing ratios where the finalist was timed more than once
        ratio = (_fmt(row["ratio"]) if row.get("ratio") is not None
                 else versus(row, "p50_ms", lambda a, b: f"{a / b:.3f}"))
        lines.append(
            f"| trial {row['trial']} ({row['key']}) | {_fmt(row['top1'], 2)} | "
            f"{_fmt(row['top1_fp32'], 2)} | {_fmt(row['p50_ms'])} | "
            f"{versus(row, 'top1', lambda a, b: f'{a - b:+.2f}')} | {ratio} | "
            f"{_fmt(row['search_top1'], 2)} |" + (f" error: {row['error'][:100]}"
                                                  if row.get("error") else ""))
    if ref:
        lines.append(f"| reference ({search.spec.reference}) | {_fmt(ref['top1'], 2)} | "
                     f"{_fmt(ref['top1_fp32'], 2)} | {_fmt(ref['p50_ms'])} | | | |")
    return "\n".join(lines) + "\n"

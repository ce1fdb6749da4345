"""The sweep's report: every finished run's rows in one table per backend with the Pareto
frontier members marked, the runs with their state and error, and the frontier plots.

Written as ``sweep.json`` (everything, for scripts), ``sweep.md`` (for people) and
``top1_vs_<cost>_<backend>.png`` in the sweep's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecnn.atomic import atomic_write_bytes, atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.profile.summary import human
from edgecnn.report.rows import read_rows
from edgecnn.sweep.frontier import SIDE_BY_SIDE, frontiers, latency_source, macs, p50_at, row_id
from edgecnn.sweep.plots import plot_frontier


def family_of(arch: str | None) -> str:
    """The registry's family of an architecture (mobilenet, resnet, ...); ``custom`` for the
    user's own models."""
    from edgecnn.models.registry import get_spec

    try:
        return get_spec(arch).family if arch else "custom"
    except EdgeCNNError:
        return "custom"


def collect_rows(statuses, comparison: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every row of every finished run, with its family, the host that benchmarked it and,
    where the sweep timed it side by side, that timing (``side_by_side``)."""
    timed = (comparison or {}).get("results") or {}
    rows = []
    for status in statuses:
        report = status.point.run_dir / "report.json"
        if status.state != "done" or not report.is_file():
            continue
        for row in read_rows(report):
            row["family"] = family_of(row.get("arch"))
            row["benchmark_host"] = status.device_node.host
            if status.point.recipe.benchmark.device:
                row["device"] = status.point.recipe.benchmark.device
            if row_id(row) in timed:
                row[SIDE_BY_SIDE] = timed[row_id(row)]
            rows.append(row)
    return rows


def write_sweep_report(sweep, statuses, interrupted: bool = False,
                       comparison: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the report of ``sweep`` (:class:`edgecnn.sweep.spec.Sweep`) from its runs'
    ``statuses`` and the side-by-side ``comparison``; returns the files by kind (json, md, and
    each plot by its stem)."""
    folder = sweep.folder
    rows = collect_rows(statuses, comparison)
    fronts = frontiers(rows)
    members: dict[str, list[str]] = {}
    for by_cost in fronts.values():
        for cost, ids in by_cost.items():
            for rid in ids:
                members.setdefault(rid, []).append(cost)
    for row in rows:
        row["frontier"] = members.get(row_id(row), [])
    plots = _plots(rows, fronts, folder)
    for old in folder.glob("top1_vs_*.png"):  # a plot of an earlier run of the sweep
        if old not in plots:
            old.unlink()
    files = {"json": folder / "sweep.json", "md": folder / "sweep.md"}
    atomic_write_json(files["json"], {
        "name": sweep.name, "source": str(sweep.source), "common": sweep.common,
        "interrupted": interrupted,
        "points": [s.to_dict() for s in statuses], "rows": rows, "frontiers": fronts,
        "side_by_side": _comparison_summary(comparison), "plots": [p.name for p in plots]})
    text = _markdown(sweep, statuses, rows, plots, interrupted, comparison)
    atomic_write_bytes(files["md"], text.encode())
    return {**files, **{p.stem: p for p in plots}}


def _plots(rows: list[dict[str, Any]], fronts: dict[str, Any], folder: Path) -> list[Path]:
    written = []
    for backend, by_cost in fronts.items():
        mine = [r for r in rows if r["backend"] == backend]
        path = folder / f"top1_vs_macs_{backend}.png"
        plot_frontier(mine, macs, "mult-adds (log scale)", f"{backend}: top-1 vs mult-adds",
                      path)
        written.append(path)
        source = latency_source(mine)
        how = "timed side by side" if source == SIDE_BY_SIDE else "each run's benchmark"
        for cost in by_cost:
            if cost.startswith("latency b"):
                batch = cost.removeprefix("latency b")
                path = folder / f"top1_vs_latency_{backend}_b{batch}.png"
                plot_frontier(mine, p50_at(batch, source),
                              f"p50 latency, batch {batch} (ms, log scale; {how})",
                              f"{backend}: top-1 vs latency, batch {batch}", path)
                written.append(path)
    return written


def _comparison_summary(comparison: dict[str, Any] | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    return {k: comparison.get(k) for k in ("ok", "error", "host", "node_id", "start", "end",
                                           "context")}


def _markdown(sweep, statuses, rows: list[dict[str, Any]], plots: list[Path],
              interrupted: bool, comparison: dict[str, Any] | None) -> str:
    done = sum(s.state == "done" for s in statuses)
    failed = [s for s in statuses if s.state == "failed"]
    common = ", ".join(f"{k}={_short(v)}" for k, v in sweep.common.items())
    lines = [f"# Sweep {sweep.name}", "",
             f"`edgecnn sweep {sweep.source}`: {len(statuses)} runs, {done} done, "
             f"{len(failed)} failed" + (", the sweep was interrupted" if interrupted else "")
             + "." + (f" Every run: {common}." if common else ""), ""]
    if comparison and comparison.get("ok"):
        c = sweep.compare
        lines += [f"Latencies marked *side by side* were timed after the runs, every CPU "
                  f"artifact of the sweep in one process on {comparison['host']} ({c.rounds} "
                  f"alternating rounds of at least {c.iterations} runs and {c.seconds} s); "
                  "the latency frontiers rank those. *own run* is each run's benchmark.", ""]
    elif comparison:
        lines += [f"The side-by-side timing failed ({comparison['error']}): the latency "
                  "frontiers rank each run's own benchmark, timed at different moments.", ""]
    lines += ["| run | overrides | state | benchmark on | time | top-1 FP32 | published top-1 | "
              "error |", "|---|---|---|---|---|---|---|---|"]
    fp32 = {r["run"]: r["top1"] for r in rows
            if r["precision"] == "fp32" and r.get("top1") is not None}
    for s in statuses:
        overrides = ", ".join(f"{k}={_short(v)}" for k, v in s.point.overrides.items())
        where = s.device_node.host + (f" ({s.point.recipe.benchmark.device})"
                                      if s.point.recipe.benchmark.device else "")
        took = f"{s.finished - s.started:.0f} s" if s.started and s.finished else ""
        error = (s.error or "").replace("|", "/").replace("\n", " ")[:300]
        ours = f"{fp32[s.point.name]:.2f}" if s.point.name in fp32 else ""
        paper = s.point.published
        published = f"{paper.top1:.2f} ({paper.source})" if paper else ""
        lines.append(f"| {s.point.name} | {overrides or '(base)'} | {s.state} | {where} | "
                     f"{took} | {ours} | {published} | {error} |")
    for backend in sorted({r["backend"] for r in rows}):
        mine = [r for r in rows if r["backend"] == backend]
        lines += ["", f"## {backend}", "", *_backend_table(mine)]
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{p.name}]({p.name})" for p in plots)]
    return "\n".join(lines) + "\n"


def _backend_table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows of one backend, fastest first, with their latencies and frontier marks."""
    source = latency_source(rows)
    batches = sorted({b for r in rows for b in r.get("latency", {})}, key=int)
    compared = sorted({b for r in rows for b in r.get(SIDE_BY_SIDE) or {}}, key=int)
    columns = ([f"p50 b{b} side by side (ms)" for b in compared]
               + [f"p50 b{b} own run (ms)" for b in batches])
    lines = ["Frontier: the artifacts no other of this backend beats on top-1 at equal or lower "
             "cost (mult-adds, or p50 latency at batch b"
             + (", timed side by side)." if source == SIDE_BY_SIDE else ", each run's own)."),
             "",
             "| run | family | precision | variant | top-1 | params | MACs | "
             + " | ".join(columns) + " | frontier |", "|" + "---|" * (8 + len(columns))]
    first = (compared or batches or [None])[0]
    order = p50_at(first, source) if first else macs
    for r in sorted(rows, key=lambda r: (order(r) or float("inf"), r["macs"])):
        top1 = "-" if r.get("top1") is None else f"{r['top1']:.2f}"
        cells = ([_p50(r.get(SIDE_BY_SIDE) or {}, b) for b in compared]
                 + [_p50(r.get("latency") or {}, b) for b in batches])
        lines.append(f"| {r['run']} | {r['family']} | {r['precision']} | "
                     f"{r.get('variant') or 'dense'} | {top1} | {human(r['params'])} | "
                     f"{human(r['macs'])} | " + " | ".join(cells)
                     + f" | {', '.join(r['frontier'])} |")
    return lines


def _p50(latency: dict[str, Any], batch: str) -> str:
    return f"{latency[batch]['p50_ms']:.3f}" if batch in latency else "-"


def _short(value: Any) -> str:
    """A field's value in a table cell, compact."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 160 else text[:157] + "..."

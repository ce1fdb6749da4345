"""The seed lecture's claims, checked on the zoo sweep's own figures.

    python benchmarks/zoo_claims.py runs/sweeps/cifar10_zoo/sweep.json \
        > benchmarks/results/zoo/claims.md
    python benchmarks/zoo_claims.py runs/sweeps/cifar10_zoo   # a sweep not finished yet: the
                                                              # report.json of its finished runs

Reads what `edgecnn sweep sweeps/cifar10_zoo.yaml` wrote (nothing is measured here) and sets the
pairs the lecture compares side by side: separable against full-convolution MobileNet v1;
ResNeXt cardinality against width at equal mult-adds; squeeze-excitation against its plain
twin; compound against single-dimension EfficientNet scaling at equal mult-adds; and the
latency frontier of every backend. Latencies are the sweep's side-by-side p50 at batch 1 (every
artifact timed in one process, alternating rounds), else the run's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BACKENDS = ("onnxruntime", "openvino", "tflite")
CLAIMS = {
    "separable vs full convolution (MobileNet v1 0.5)": ["mobilenet-v1-0.5",
                                                         "conv-mobilenet-v1-0.5"],
    "cardinality vs width at equal mult-adds (ResNeXt-11)": [
        "resnext11-1x32d", "resnext11-2x20d", "resnext11-4x12d", "resnext11-8x7d"],
    "squeeze-excitation vs its plain twin (ResNet-20)": ["resnet20", "se-resnet20"],
    "compound vs single-dimension scaling at equal mult-adds (EfficientNet-B0 0.5 baseline)": [
        "efficientnet-b0-0.5", "efficientnet-compound", "efficientnet-depth",
        "efficientnet-width", "efficientnet-resolution"],
}


def p50(row: dict[str, Any]) -> float | None:
    for source in ("side_by_side", "latency"):
        stats = (row.get(source) or {}).get("1")
        if stats:
            return stats["p50_ms"]
    return None


def by_run(report: dict[str, Any]) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    table: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for row in report["rows"]:
        if (row.get("variant") or "dense") == "dense":
            table.setdefault(row["run"], {})[(row["backend"], row["precision"])] = row
    return table


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def claim_table(runs: list[str], table: dict, published: dict[str, Any],
                compare: bool = True) -> list[str]:
    base = runs[0]
    head = ["run", "params", "MACs (M)", "FP32 top-1", "published"]
    for backend in BACKENDS:
        head += [f"{backend} FP32 / INT8 p50 (ms)", f"{backend} INT8 top-1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        rows = table.get(run)
        if not rows:
            lines.append(f"| {run} | (no rows: the run failed or did not finish) |")
            continue
        fp32 = rows.get(("onnxruntime", "fp32")) or next(iter(rows.values()))
        pub = published.get(run)
        cells = [run, f"{fp32['params'] / 1e6:.3f} M", f"{fp32['macs'] / 1e6:.1f}",
                 fmt(fp32.get("top1"), 2), f"{pub['top1']:.2f}" if pub else "-"]
        for backend in BACKENDS:
            f, i = rows.get((backend, "fp32")), rows.get((backend, "int8"))
            cells += [f"{fmt(p50(f) if f else None)} / {fmt(p50(i) if i else None)}",
                      fmt(i.get("top1") if i else None, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if compare:
        lines += ratios(base, runs[1:], table)
    return lines


def ratios(base: str, others: list[str], table: dict) -> list[str]:
    """Each run against the first: top-1 difference, MACs ratio, latency ratio per backend."""
    lines = []
    b = table.get(base, {})
    for run in others:
        o = table.get(run, {})
        bf, of = b.get(("onnxruntime", "fp32")), o.get(("onnxruntime", "fp32"))
        if not bf or not of:
            continue
        parts = [f"top-1 {of['top1'] - bf['top1']:+.2f} points",
                 f"MACs x{of['macs'] / bf['macs']:.2f}"]
        for backend in BACKENDS:
            for precision in ("fp32", "int8"):
                x, y = b.get((backend, precision)), o.get((backend, precision))
                if x and y and p50(x) and p50(y):
                    parts.append(f"{backend} {precision.upper()} latency x{p50(y) / p50(x):.2f}")
        lines.append(f"- {run} against {base}: " + ", ".join(parts))
    return [*lines, ""]


def frontier_lines(report: dict[str, Any]) -> list[str]:
    lines = ["## The latency frontier (batch 1) of each backend", ""]
    for backend, fronts in report.get("frontiers", {}).items():
        members = fronts.get("latency b1", [])
        lines.append(f"- {backend}: " + ", ".join(members))
    return [*lines, ""]


def load(path: Path) -> dict[str, Any]:
    """sweep.json, or for a sweep folder without one (a sweep still running) the rows of the
    runs that finished, with their own (not side-by-side) latencies."""
    if path.is_file():
        return json.loads(path.read_text())
    rows, points = [], []
    # a sweep folder's runs/NAME/report.json, or NAME/report.json copied out of one
    for report in sorted(path.glob("runs/*/report.json")) or sorted(path.glob("*/report.json")):
        run = report.parent.name
        rows += [{**row, "run": run} for row in json.loads(report.read_text())["rows"]]
        points.append({"name": run, "state": "done", "published": None})
    from edgecnn.sweep.frontier import frontiers  # the sweep report's own frontiers

    return {"name": path.name + " (finished runs only)", "rows": rows, "points": points,
            "frontiers": frontiers(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_json", help="sweep.json, or a sweep folder (its finished runs)")
    parser.add_argument("--sweep-file", help="the sweep file, for its published figures")
    args = parser.parse_args()
    report = load(Path(args.sweep_json))
    table = by_run(report)
    published = {p["name"]: p.get("published") for p in report["points"] if p.get("published")}
    if args.sweep_file:  # the published figures, when the sweep has not written sweep.json
        from edgecnn.sweep.spec import load_sweep

        published |= {p.name: p.published.model_dump() for p in load_sweep(args.sweep_file).points
                      if p.published}
    timing = ("side by side (one process, alternating rounds)" if report.get("side_by_side")
              else "each run's own benchmark (runs timed minutes apart: noisy across runs)")
    out = [f"# The lecture's claims on sweep {report['name']}", "",
           f"From {args.sweep_json}; p50 at batch 1, 2 threads, {timing}. Top-1 on the 10,000 "
           "test images of the JPEG copy.", ""]
    out += ["## Every run", "", *claim_table([p["name"] for p in report["points"]], table,
                                              published, compare=False)]
    for title, runs in CLAIMS.items():
        out += [f"## {title}", "", *claim_table(runs, table, published)]
    out += frontier_lines(report)
    failed = [p["name"] for p in report["points"] if p.get("state") != "done"]
    if failed:
        out.append(f"Runs that did not finish: {', '.join(failed)}")
    print("\n".join(out))


if __name__ == "__main__":
    main()

"""Pareto frontiers of sweep rows, and the sweep report's tables and plots from hand-made rows."""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn.sweep.frontier import frontiers, latency_source, macs, p50_at, pareto_front


def row(run: str, top1: float | None, p50: float | None, macs: int, precision: str = "int8",
        backend: str = "onnxruntime") -> dict:
    latency = {} if p50 is None else {"1": {"p50_ms": p50, "throughput": 1000 / p50}}
    return {"run": run, "backend": backend, "precision": precision, "variant": "dense",
            "top1": top1, "macs": macs, "params": 1000, "latency": latency, "arch": "resnet20"}


ROWS = [
    row("fast", 80.0, 0.5, 40),
    row("slow-worse", 79.0, 0.9, 10),       # beaten on latency by fast, but the fewest MACs
    row("best", 91.0, 2.0, 100),
    row("tie-slower", 91.0, 2.5, 120),      # the same top-1 as best, slower: not on the front
    row("middle", 85.0, 1.0, 60),
    row("no-top1", None, 0.1, 5),
    row("no-latency", 95.0, None, 500),
]


def test_latency_front_keeps_what_nothing_cheaper_beats():
    front = [r["run"] for r in pareto_front(ROWS, p50_at("1"))]
    assert front == ["fast", "middle", "best"]


def test_macs_front_uses_every_row_with_a_top1():
    assert [r["run"] for r in pareto_front(ROWS, macs)] == [
        "slow-worse", "fast", "middle", "best", "no-latency"]


def test_fronts_are_per_backend_and_batch():
    rows = [*ROWS, row("other", 99.0, 0.01, 1, backend="openvino")]
    found = frontiers(rows)
    assert found["openvino"] == {"macs": ["other/openvino/int8/dense"],
                                 "latency b1": ["other/openvino/int8/dense"]}
    assert found["onnxruntime"]["latency b1"] == [
        f"{run}/onnxruntime/int8/dense" for run in ("fast", "middle", "best")]


def test_side_by_side_timings_rank_the_front_when_every_row_has_one():
    timed = [{**r, "side_by_side": {"1": {"p50_ms": 10.0 - i, "throughput": 1.0}}}
             for i, r in enumerate(ROWS)]
    assert latency_source(timed) == "side_by_side"
    assert latency_source([*timed[:-1], ROWS[-1]]) == "latency"  # never a mix of the two
    # timed side by side, 'no-latency' (95%) is the fastest of all and alone on the front
    assert [r["run"] for r in pareto_front(timed, p50_at("1", "side_by_side"))] == [
        "no-latency"]


def test_report_marks_the_front_and_plots_it(tmp_path):
    from edgecnn.report.rows import read_rows  # the report reads real report.json files
    from edgecnn.sweep.ray_runner import Node, RunStatus
    from edgecnn.sweep.report import write_sweep_report
    from edgecnn.sweep.spec import load_sweep

    base = tmp_path / "base.yaml"
    base.write_text("name: b\nmodel: {arch: resnet20}\ndata: {dataset: cifar10-jpeg}\n")
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text("name: s\nbase: base.yaml\noutput: " + str(tmp_path / "out") + "\n"
                          "grid: {model.arch: [resnet20, mobilenet_v2]}\nruns:\n"
                          "  - {name: p, published: {top1: 91.25, source: He et al. 2016}}\n")
    sweep = load_sweep(sweep_file)
    node = Node("n1", "host", 2, {"CPU": 2.0})
    statuses = []
    for point, rows in zip(sweep.points, (ROWS[:3], ROWS[3:5]), strict=True):
        point.run_dir.mkdir(parents=True)
        (point.run_dir / "report.json").write_text(json.dumps(
            {"rows": [{**r, "run": f"{point.name}-{r['run']}",
                       "arch": point.recipe.model.arch} for r in rows]}))
        assert read_rows(point.run_dir / "report.json")
        statuses.append(RunStatus(point, node, state="done"))
    statuses.append(RunStatus(sweep.points[0], node, state="failed", error="boom | bad"))
    files = write_sweep_report(sweep, statuses)
    table = files["md"].read_text()
    assert "boom / bad" in table  # a pipe in an error does not break the table
    assert "| 91.25 (He et al. 2016) |" in table  # beside each run, the paper's figure
    report = json.loads(files["json"].read_text())
    marked = {r["run"]: r["frontier"] for r in report["rows"]}
    assert marked["p-arch-resnet20-best"] == ["macs", "latency b1"]
    assert marked["p-arch-mobilenet_v2-tie-slower"] == []
    assert {r["family"] for r in report["rows"]} == {"cifar_resnet", "mobilenet"}
    for name in ("top1_vs_macs_onnxruntime.png", "top1_vs_latency_onnxruntime_b1.png"):
        assert Path(tmp_path / "out" / name).stat().st_size > 10_000

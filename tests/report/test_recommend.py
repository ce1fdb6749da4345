"""Never ship a slower INT8: the report recommends per backend, variant and batch size."""

from __future__ import annotations

import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.report.recommend import choose_artifact, recommend
from edgecnn.report.tables import markdown_table


def _row(precision: str, p50: dict[str, float], variant: str = "dense",
         backend: str = "onnxruntime") -> dict:
    return {"run": "r", "precision": precision, "backend": backend, "variant": variant,
            "artifact": f"{variant}.{precision}", "params": 1000, "macs": 10**6, "top1": 80.0,
            "latency": {b: {"p50_ms": v, "throughput": int(b) / v * 1e3}
                        for b, v in p50.items()}}


def test_int8_only_where_it_is_clearly_faster():
    rows = [_row("fp32", {"1": 1.00, "8": 4.0}), _row("int8", {"1": 0.98, "8": 2.0}),
            _row("fp32", {"1": 1.00}, variant="pruned"), _row("int8", {"1": 0.5}, "pruned")]
    picks, notes = recommend(rows)
    chosen = {(p["variant"], p["batch"]): p["precision"] for p in picks}
    assert chosen == {("dense", 1): "fp32", ("dense", 8): "int8", ("pruned", 1): "int8"}
    dense_b1 = next(p for p in picks if p["variant"] == "dense" and p["batch"] == 1)
    assert dense_b1["artifact"] == "dense.fp32" and "not faster than fp32" in dense_b1["reason"]
    assert notes == ["INT8 is not faster than FP32 on onnxruntime at batch 1 (0.980 vs 1.000 "
                     "ms): ship FP32 there"]


def test_backends_without_a_pair_get_no_recommendation():
    picks, notes = recommend([_row("fp32", {"1": 1.0}), _row("fp16", {"1": 0.5}, "dense",
                                                               "tensorrt")])
    assert picks == [] and notes == []


def test_the_fastest_precision_wins_only_by_a_margin():
    choice = choose_artifact({"fp32": 10.0, "int8": 5.0, "fp16": 6.0})
    assert choice.artifact == "int8" and choice.faster_than_reference
    assert "0.50x" in choice.reason
    tie = choose_artifact({"fp32": 10.0, "int8": 9.9})
    assert tie.artifact == "fp32" and not tie.faster_than_reference and "0.99x" in tie.reason
    with pytest.raises(EdgeCNNError, match="reference artifact 'fp32'"):
        choose_artifact({"int8": 1.0})
    with pytest.raises(EdgeCNNError, match="positive"):
        choose_artifact({"fp32": 1.0, "int8": 0.0})


def test_table_shows_the_variant_column_only_for_several_variants():
    one = markdown_table([_row("fp32", {"1": 1.0})])
    assert "variant" not in one.splitlines()[0]
    two = markdown_table([_row("fp32", {"1": 1.0}), _row("fp32", {"1": 0.5}, "pruned")])
    assert two.splitlines()[0].startswith("| run | variant | precision |")
    assert "| r | pruned | fp32 | onnxruntime |" in two


def _cpu_row(backend: str, precision: str, p50: float, top1: float, run: str = "m",
             cpu: str = "xeon") -> dict:
    return {"run": run, "backend": backend, "precision": precision, "variant": "dense",
            "artifact": f"{backend}.{precision}", "top1": top1,
            "latency": {"1": {"p50_ms": p50}}, "context": {"cpu": cpu}}


def test_fastest_on_cpu_crosses_runtimes_with_the_drop_against_the_fp32_reference():
    from edgecnn.report.recommend import fastest_on_cpu

    rows = [_cpu_row("onnxruntime", "fp32", 6.0, 87.2), _cpu_row("onnxruntime", "int8", 3.6, 87.0),
            _cpu_row("openvino", "fp32", 5.8, 87.2), _cpu_row("tflite", "int8", 3.4, 86.5),
            _cpu_row("tflite", "fp32", 5.0, 87.2), _cpu_row("tensorrt", "int8", 0.5, 86.0),
            _cpu_row("onnxruntime", "fp32", 9.0, 80.0, run="other")]
    picks = {p["run"]: p for p in fastest_on_cpu(rows)}
    best = picks["m"]
    # the GPU engine is not a CPU candidate, however fast
    assert (best["backend"], best["precision"]) == ("tflite", "int8")
    assert best["top1_drop"] == pytest.approx(87.2 - 86.5)
    assert best["vs_own_fp32"] == pytest.approx(3.4 / 5.0)
    assert best["runtimes"] == ["onnxruntime", "openvino", "tflite"]
    assert picks["other"]["backend"] == "onnxruntime" and picks["other"]["top1_drop"] == 0

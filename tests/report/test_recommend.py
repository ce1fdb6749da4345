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

"""The report's notes on the accuracy-aware fallback, and the side-by-side timing behind them."""

from __future__ import annotations

from edgecnn.report.build_report import fallback_note


def test_fallback_note_names_layers_and_their_cost():
    aware = {"max_accuracy_drop": 0.3, "fp32_top1": 87.4, "top1": 87.1,
             "fallback_layers": [f"conv{i}" for i in range(10)],
             "p50_ms": {"fp32": 5.16, "int8_full": 2.28, "int8_fallback": 5.02}}
    note = fallback_note("onnxruntime", "dense", aware)
    assert note.startswith("int8 onnxruntime (dense), accuracy-aware (max drop 0.3)")
    assert "10 layer(s) in float: conv0, conv1" in note and "conv7 ..." in note
    assert "FP32 5.160 ms, full INT8 2.280 ms, with float layers 5.020 ms" in note
    aware.update(fallback_layers=[], p50_ms=None)
    assert fallback_note("openvino", "pruned", aware).endswith("no layer returned to float")


def test_side_by_side_p50_times_each_file_on_its_backend(tmp_path):
    from edgecnn.bench.rounds import p50_side_by_side
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    small = export_onnx(create_model("resnet20"), tmp_path / "r20.onnx", 32).path
    large = export_onnx(create_model("resnet56"), tmp_path / "r56.onnx", 32).path
    p50 = p50_side_by_side({"r20": small, "r56": large}, "onnxruntime", threads=1, rounds=2,
                           seconds=0.2)
    assert set(p50) == {"r20", "r56"}
    # ResNet-56 has 2.9x ResNet-20's mult-adds: a mix-up of files or keys would show
    assert p50["r56"] > 1.5 * p50["r20"] > 0

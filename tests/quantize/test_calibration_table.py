"""Calibration tables: calibrate once, quantize again from the JSON with identical scales, and
refuse a table measured on another model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.calibration_table import load_calibration_table
from edgecnn.quantize.onnxruntime_static import calibrate_onnx, quantize_static_onnx


def _qdq_parameters(path) -> dict[str, bytes]:
    """Every scale and zero-point initializer, as raw bytes."""
    graph = onnx.load(str(path)).graph
    names = {i for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
             for i in n.input[1:]}
    return {i.name: numpy_helper.to_array(i).tobytes() for i in graph.initializer
            if i.name in names}


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_quantizing_from_the_saved_table_gives_identical_scales(
        tmp_path, resnet20_fp32, resnet20_calibration, method):
    fp32 = resnet20_fp32[0]
    first = quantize_static_onnx(fp32, tmp_path / "a.onnx", resnet20_calibration, method=method)
    table_file = first.table.save(tmp_path / "table.json")
    again = quantize_static_onnx(fp32, tmp_path / "b.onnx", table=table_file)
    a, b = _qdq_parameters(tmp_path / "a.onnx"), _qdq_parameters(tmp_path / "b.onnx")
    assert len(a) > 40 and a == b
    assert again.method == method and again.table.sha256 == first.table.sha256
    # the whole file, not only the scales
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_table_holds_what_onnxruntime_itself_measures(tmp_path, resnet20_fp32,
                                                      resnet20_calibration):
    """MinMax through the table == ONNX Runtime's own quantize_static calibrating in one go on
    the same prepared graph: the table loses nothing."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgecnn.quantize.onnxruntime_static import prepare_for_quantization

    prepared = tmp_path / "prepared.onnx"
    prepare_for_quantization(resnet20_fp32[0], prepared)

    class Reader:
        def __init__(self):
            self.batches = [resnet20_calibration[i:i + 16] for i in range(0, 128, 16)]

        def get_next(self):
            return {"input": self.batches.pop(0)} if self.batches else None

    quantize_static(str(prepared), str(tmp_path / "ort.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"QDQKeepRemovableActivations": True})
    quantize_static_onnx(resnet20_fp32[0], tmp_path / "ours.onnx", resnet20_calibration,
                         reduce_range=False)
    assert _qdq_parameters(tmp_path / "ort.onnx") == _qdq_parameters(tmp_path / "ours.onnx")


def test_table_records_model_data_and_method(tmp_path, resnet20_fp32, resnet20_calibration):
    import hashlib

    table = calibrate_onnx(resnet20_fp32[0], resnet20_calibration, method="percentile",
                           manifest={"dataset": "cifar10-jpeg", "split": "test[:128]"})
    data = json.loads(table.save(tmp_path / "t.json").read_text())
    assert data["method"] == "percentile" and data["options"]["percentile"] == 99.999
    assert data["model_sha256"] == hashlib.sha256(resnet20_fp32[0].read_bytes()).hexdigest()
    assert data["calibration"]["dataset"] == "cifar10-jpeg"
    assert data["calibration"]["array_sha256"] == hashlib.sha256(
        np.ascontiguousarray(resnet20_calibration).tobytes()).hexdigest()
    assert len(data["calibration"]["sha256"]) == 64 and data["onnxruntime"]
    lo, hi = data["tensors"]["input"]
    assert lo < 0 < hi
    reloaded = load_calibration_table(tmp_path / "t.json")
    assert reloaded.ranges == table.ranges


def test_a_table_for_another_model_is_refused(tmp_path, resnet20_fp32, resnet20_calibration):
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    table = calibrate_onnx(resnet20_fp32[0], resnet20_calibration)
    other = create_model("resnet20", num_classes=10)  # same graph, other weights
    export_onnx(other, tmp_path / "other.onnx", 32)
    with pytest.raises(EdgeCNNError, match="does not match"):
        quantize_static_onnx(tmp_path / "other.onnx", tmp_path / "x.onnx", table=table)
    assert not (tmp_path / "x.onnx").exists()


def test_bad_table_files_are_refused(tmp_path):
    with pytest.raises(EdgeCNNError, match="does not exist"):
        load_calibration_table(tmp_path / "missing.json")
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(EdgeCNNError, match="not readable JSON"):
        load_calibration_table(tmp_path / "garbage.json")
    (tmp_path / "other.json").write_text('{"CLS": "TensorsData"}')
    with pytest.raises(EdgeCNNError, match="not an edgecnn calibration table"):
        load_calibration_table(tmp_path / "other.json")
    (tmp_path / "partial.json").write_text(
        '{"format": "edgecnn-calibration-table/1", "method": "minmax"}')
    with pytest.raises(EdgeCNNError, match="incomplete"):
        load_calibration_table(tmp_path / "partial.json")


def test_methods_give_different_scales(tmp_path, resnet20_fp32, resnet20_calibration):
    """Acceptance 3: the method choice reaches the scales (minmax keeps every outlier,
    percentile clips the 0.001% tails, entropy picks the KL-optimal threshold)."""
    scales = {}
    for method in ("minmax", "entropy", "percentile"):
        table = calibrate_onnx(resnet20_fp32[0], resnet20_calibration, method=method)
        scales[method] = table.ranges
    names = sorted(scales["minmax"])
    for a, b in [("minmax", "entropy"), ("minmax", "percentile"), ("entropy", "percentile")]:
        differ = sum(scales[a][n] != scales[b][n] for n in names)
        assert differ > len(names) // 2, (a, b, differ)
    # percentile/entropy never widen minmax's range (they clip outliers)
    for method in ("entropy", "percentile"):
        for n in names:
            assert scales[method][n][1] <= scales["minmax"][n][1] + 1e-6, (method, n)


def test_bad_calibration_input_is_refused(tmp_path, resnet20_fp32, resnet20_calibration):
    fp32 = resnet20_fp32[0]
    with pytest.raises(EdgeCNNError, match="method 'kl' is not valid"):
        quantize_static_onnx(fp32, tmp_path / "x.onnx", resnet20_calibration, method="kl")
    with pytest.raises(EdgeCNNError, match="at least one calibration sample"):
        quantize_static_onnx(fp32, tmp_path / "x.onnx", resnet20_calibration[:0])
    with pytest.raises(EdgeCNNError, match="shape"):
        quantize_static_onnx(fp32, tmp_path / "x.onnx", np.zeros((4, 3, 16, 16), np.float32))
    with pytest.raises(EdgeCNNError, match="layout 'tflite' is not valid"):
        quantize_static_onnx(fp32, tmp_path / "x.onnx", resnet20_calibration, layout="tflite")
    assert not (tmp_path / "x.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".quantize-")]

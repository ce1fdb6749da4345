"""NNCF quantization for the openvino target: an IR the OpenVINO runner loads, INT8 inside,
the method reaching NNCF's range estimators, and errors that name what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytest.importorskip("nncf", reason="the openvino extra is not installed")

from edgecnn.backends.openvino_backend import OpenVINORunner
from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.openvino_nncf import quantize_openvino
from edgecnn.quantize.targets import artifact_name, quantize_for_target


def _fake_quantize_ranges(xml):
    """(input_low, input_high) of every activation FakeQuantize in the IR."""
    import openvino as ov

    ranges = []
    for op in ov.Core().read_model(str(xml)).get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            low = op.input_value(1).get_node()
            high = op.input_value(2).get_node()
            if low.get_type_name() == "Constant" and high.get_type_name() == "Constant":
                ranges.append((low.get_data().ravel().copy(), high.get_data().ravel().copy()))
    return ranges


@pytest.fixture(scope="module")
def minmax_ir(tmp_path_factory, resnet20_fp32, resnet20_calibration):
    xml = tmp_path_factory.mktemp("nncf") / "model.int8.xml"
    info = quantize_openvino(resnet20_fp32[0], xml, resnet20_calibration[:64], method="minmax")
    return xml, info


def test_writes_an_int8_ir_that_agrees_with_fp32(minmax_ir, resnet20_fp32, cifar_test_split):
    from edgecnn.data.eval_batches import normalize_nchw

    xml, info = minmax_ir
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert info.layout == "openvino" and info.samples == 64 and "nncf" in info.quantizer
    assert _fake_quantize_ranges(xml), "no FakeQuantize in the IR"
    runner = OpenVINORunner(xml, threads=2)
    assert runner.metadata["precision"] == "int8" and runner.metadata["arch"] == "resnet20"
    card = resnet20_fp32[1].card
    x = normalize_nchw(cifar_test_split.images[2000:2400], card.mean, card.std)
    fp32 = OpenVINORunner(resnet20_fp32[0]).run(x).argmax(1)
    assert (runner.run(x).argmax(1) == fp32).mean() > 0.95
    assert not [p for p in xml.parent.iterdir() if p.name.startswith(".quantize-")]


def test_method_changes_the_ranges(tmp_path, minmax_ir, resnet20_fp32, resnet20_calibration):
    xml = tmp_path / "p.xml"
    quantize_openvino(resnet20_fp32[0], xml, resnet20_calibration[:64], method="percentile",
                      percentile=99.0)
    minmax, percentile = _fake_quantize_ranges(minmax_ir[0]), _fake_quantize_ranges(xml)
    assert len(minmax) == len(percentile)
    assert sum(not np.array_equal(a[1], b[1]) for a, b in zip(minmax, percentile,
                                                               strict=True)) > len(minmax) // 2


def test_target_entry_point_and_errors(tmp_path, resnet20_fp32, resnet20_calibration):
    fp32, calib = resnet20_fp32[0], resnet20_calibration[:16]
    assert artifact_name("openvino") == "model.int8.xml"
    assert artifact_name("tensorrt") == "model.int8.tensorrt.onnx"
    with pytest.raises(EdgeCNNError, match=r"writes a \.xml file"):
        quantize_for_target("openvino", fp32, tmp_path / "m.onnx", calib)
    with pytest.raises(EdgeCNNError, match="target 'tflite' is not valid"):
        quantize_for_target("tflite", fp32, tmp_path / "m.tflite", calib)
    with pytest.raises(EdgeCNNError, match="method 'kl' is not valid for openvino"):
        quantize_openvino(fp32, tmp_path / "m.xml", calib, method="kl")
    with pytest.raises(EdgeCNNError, match="calibration data has shape"):
        quantize_openvino(fp32, tmp_path / "m.xml", np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(EdgeCNNError, match="does not exist"):
        quantize_openvino(tmp_path / "none.onnx", tmp_path / "m.xml", calib)
    with pytest.raises(EdgeCNNError, match=r"\['no_such_conv'\] are not in"):
        quantize_openvino(fp32, tmp_path / "m.xml", calib, ignored_nodes=["no_such_conv"])
    with pytest.raises(EdgeCNNError, match="needs calibration images"):
        quantize_for_target("openvino", fp32, tmp_path / "m.xml", calib, table="t.json")
    assert not list(tmp_path.iterdir())


def test_multiply_stays_float_for_openvino_fusion(tmp_path):
    """SiLU's and squeeze-excite's Multiply get no FakeQuantize (OpenVINO fuses them into the
    int8 convolution); NNCF's default would quantize both their inputs."""
    import openvino as ov
    import torch

    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    torch.manual_seed(0)
    export_onnx(create_model("efficientnet_b0", num_classes=10, cifar_stem=True).eval(),
                tmp_path / "fp32.onnx", 32)
    calib = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)

    def fq_into_multiply(xml) -> int:
        ops = ov.Core().read_model(str(xml)).get_ordered_ops()
        return sum(t.get_node().get_type_name() == "Multiply"
                   for op in ops if op.get_type_name() == "FakeQuantize"
                   for t in op.output(0).get_target_inputs())

    quantize_openvino(tmp_path / "fp32.onnx", tmp_path / "ours.xml", calib)
    quantize_openvino(tmp_path / "fp32.onnx", tmp_path / "all.xml", calib,
                      keep_multiply_float=False)
    assert fq_into_multiply(tmp_path / "ours.xml") == 0
    assert fq_into_multiply(tmp_path / "all.xml") > 0
    assert _fake_quantize_ranges(tmp_path / "ours.xml")  # the convolutions are still INT8

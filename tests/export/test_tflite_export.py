"""LiteRT export: every precision through the runner, metadata, numeric check, errors that name
the op and the layer. Real CIFAR ResNet-20 weights on real CIFAR-10 (JPEG copy) test images, so
the agreement figures mean something; 32x32 keeps each conversion to a few seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("litert_torch", reason="the LiteRT export needs litert-torch (tflite extra)")
pytest.importorskip("litert_quantizer", reason="LiteRT quantization needs litert-quantizer")
pytest.importorskip("ai_edge_litert", reason="the tflite runner needs ai-edge-litert")

from edgecnn.backends.tflite_backend import TFLiteRunner
from edgecnn.backends.tflite_metadata import metadata_entries
from edgecnn.data.eval_batches import normalize_nchw
from edgecnn.errors import EdgeCNNError
from edgecnn.export.tflite_export import export_tflite, read_tflite_metadata
from edgecnn.models import create_model


@pytest.fixture(scope="module")
def resnet20(shared):
    weights = shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th"
    return create_model("resnet20", pretrained=str(weights)).eval()


@pytest.fixture(scope="module")
def samples(resnet20, cifar_test_split):
    """(calibration, check): 64 + 64 normalised CIFAR-10 (JPEG copy) test images."""
    x = normalize_nchw(cifar_test_split.images[:128], resnet20.card.mean, resnet20.card.std)
    return x[:64], x[64:]


@pytest.fixture(scope="module")
def exports(resnet20, samples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    calibration, check = samples
    cases = {"fp32": {}, "fp16": {"precision": "fp16"},
             "dynamic_int8": {"precision": "dynamic_int8"}, "int8": {"precision": "int8"},
             "int8_io_nhwc": {"precision": "int8", "io": "int8", "layout": "NHWC"}}
    return {key: export_tflite(resnet20, folder / f"{key}.tflite", 32, calibration=calibration,
                               check_samples=check, threads=2, **options)
            for key, options in cases.items()}


def test_fp32_matches_torch_and_carries_its_metadata(exports, resnet20):
    result = exports["fp32"]
    assert result.check.samples == 64 and result.check.top1_agreement == 1.0
    assert result.check.max_abs_diff < 1e-3
    meta = read_tflite_metadata(result.path)
    assert meta["arch"] == "resnet20" and meta["precision"] == "fp32"
    assert meta["layout"] == "NCHW" and meta["io"] == "float" and meta["resolution"] == "32"
    assert meta["num_classes"] == "10" and json.loads(meta["mean"]) == list(resnet20.card.mean)
    assert meta["converter"].startswith("litert-torch ")


def test_metadata_reader_agrees_with_the_flatbuffer_schema(exports):
    """The stdlib-only reader against ai-edge-litert's generated schema on the same file."""
    from ai_edge_litert import schema_py_generated as schema

    data = exports["int8"].path.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    expected = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        expected[entry.Name().decode()] = model.Buffers(entry.Buffer()).DataAsNumpy()
    entries = metadata_entries(data)
    assert set(entries) == set(expected) and "edgecnn" in entries
    for name, raw in expected.items():
        assert entries[name] == (raw.tobytes() if isinstance(raw, np.ndarray) else b"")


@pytest.mark.parametrize(("key", "max_size_ratio", "min_agreement"), [
    ("fp16", 0.55, 1.0), ("dynamic_int8", 0.35, 0.9), ("int8", 0.35, 0.85),
])
def test_each_precision_runs_and_agrees_with_torch(exports, key, max_size_ratio, min_agreement):
    result = exports[key]
    assert result.size_bytes <= max_size_ratio * result.float_size_bytes, result.to_dict()
    assert result.check.top1_agreement >= min_agreement, result.check
    assert read_tflite_metadata(result.path)["precision"] == key
    assert result.quantizer.startswith("litert-quantizer ")


def test_full_int8_is_integer_only_with_float_io(exports):
    result = exports["int8"]
    assert result.ops.float_ops == [] and result.ops.float_conversions == []
    assert [op.op for op in result.ops.io_conversions] == ["QUANTIZE", "DEQUANTIZE"]
    assert result.ops.input_types == ("FLOAT32",) and result.ops.output_types == ("FLOAT32",)
    assert result.calibration_samples == 64
    # XNNPACK runs every int8 op but the option-A shortcuts' stride-2 slices (stride 1 only)
    delegation = TFLiteRunner(result.path, threads=2).delegation()
    assert {(op["op"], op["layer"]) for op in delegation.not_delegated} == {
        ("STRIDED_SLICE", "layer2.0.shortcut"), ("STRIDED_SLICE", "layer3.0.shortcut")}


def test_int8_io_and_nhwc_model_runs_through_the_same_runner(exports, samples):
    nhwc, nchw = exports["int8_io_nhwc"], exports["int8"]
    assert nhwc.ops.input_types == ("INT8",) and nhwc.ops.io_conversions == []
    # the channels-last wrapper's transpose cancels the converter's own: none is left
    assert "TRANSPOSE" not in nhwc.ops.op_counts() and "TRANSPOSE" in nchw.ops.op_counts()
    runner = TFLiteRunner(nhwc.path, threads=2)
    assert runner.metadata["model_input_layout"] == "NHWC"
    assert runner.metadata["model_input_dtype"] == "int8"
    assert runner.input_spec().shape == (None, 3, 32, 32)  # the runner still takes NCHW float
    _, check = samples
    int8_io = runner.run(check)
    float_io = TFLiteRunner(nchw.path, threads=2).run(check)
    # same weights and calibration; only the I/O quantization step differs
    assert (int8_io.argmax(1) == float_io.argmax(1)).mean() >= 0.95
    assert nhwc.check.top1_agreement >= 0.85


def test_a_layer_the_converter_cannot_handle_is_named(tmp_path):
    class BesselI0(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.i0(x)

    model = create_model("resnet20").eval()
    model.layer3[0].relu = BesselI0()
    target = tmp_path / "m.tflite"
    with pytest.raises(EdgeCNNError, match=r"at op aten\.i0\.default in layer 'layer3\.0\.relu'"):
        export_tflite(model, target, 32)
    assert list(tmp_path.iterdir()) == []


def test_an_op_the_quantizer_leaves_in_float_is_named(tmp_path, samples):
    class Sine(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sin(x)

    model = create_model("resnet20").eval()
    model.layer2[1].relu = Sine()
    calibration, _ = samples
    with pytest.raises(EdgeCNNError, match=r"computing in float, first SIN #\d+ in layer "
                                           r"'layer2\.1\.relu'"):
        export_tflite(model, tmp_path / "m.tflite", 32, precision="int8",
                      calibration=calibration[:8])
    assert list(tmp_path.iterdir()) == []
    kept = export_tflite(model, tmp_path / "m.tflite", 32, precision="int8",
                         calibration=calibration[:8], allow_float_ops=True)
    assert {op.op for op in kept.ops.float_ops} == {"SIN"}
    assert {op.layer for op in kept.ops.float_ops} == {"layer2.1.relu"}
    assert {op.op for op in kept.ops.float_conversions} == {"QUANTIZE", "DEQUANTIZE"}


@pytest.mark.parametrize(("options", "message"), [
    ({"precision": "int4"}, r"tflite precision 'int4' is not one of fp32, fp16"),
    ({"io": "int8"}, r"io 'int8' needs precision 'int8'"),
    ({"layout": "CHWN"}, r"layout 'CHWN' is not one of NCHW, NHWC"),
    ({"precision": "int8"}, r"precision 'int8' needs calibration samples"),
    ({"precision": "int8", "calibration": np.zeros((4, 32, 32, 3), np.float32)},
     r"calibration must be normalised float32 images of shape \(N, 3, 32, 32\)"),
])
def test_bad_options_are_refused_before_converting(tmp_path, options, message):
    with pytest.raises(EdgeCNNError, match=message):
        export_tflite(create_model("resnet20"), tmp_path / "m.tflite", 32, **options)
    assert list(tmp_path.iterdir()) == []


def test_metadata_of_a_non_tflite_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(EdgeCNNError, match=r"bad\.tflite is not a TFLite model"):
        read_tflite_metadata(bad)

"""The ``onnxruntime`` layout: what ONNX Runtime's CPU kernels run in int8, and the choices that
depend on the machine."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.quantize.cpu_features import choose_reduce_range
from edgecnn.quantize.onnxruntime_static import quantize_static_onnx


def _optimized_ops(path, tmp_path) -> collections.Counter:
    """Op types after ONNX Runtime's graph optimisations (where Q/DQ become QLinear ops)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx"))
                               .graph.node)


@pytest.fixture(scope="module")
def squeeze_excite_model(tmp_path_factory):
    """EfficientNet-B0 at 32x32: SiLU, 16 squeeze-excite poolings and the head's pooling."""
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", num_classes=10, cifar_stem=True).eval()
    path = tmp_path_factory.mktemp("effnet") / "fp32.onnx"
    export_onnx(model, path, 32)
    calib = np.random.default_rng(0).standard_normal((16, 3, 32, 32), dtype=np.float32)
    return path, calib


def test_tuned_layout_runs_pooling_and_silu_in_int8(tmp_path, squeeze_excite_model):
    fp32, calib = squeeze_excite_model
    pools = sum(n.op_type == "ReduceMean" for n in onnx.load(str(fp32)).graph.node)
    assert pools == 17
    info = quantize_static_onnx(fp32, tmp_path / "tuned.onnx", calib)
    assert info.rewrites == [f"ReduceMean->GlobalAveragePool x{pools}"]
    tuned = _optimized_ops(tmp_path / "tuned.onnx", tmp_path)
    assert tuned["QLinearGlobalAveragePool"] == pools and tuned["ReduceMean"] == 0
    assert tuned["QLinearSigmoid"] > 0 and tuned["QLinearMul"] > 0 and tuned["Sigmoid"] == 0
    stock = quantize_static_onnx(fp32, tmp_path / "stock.onnx", calib, tuned=False)
    assert stock.rewrites == []
    assert _optimized_ops(tmp_path / "stock.onnx", tmp_path)["ReduceMean"] == pools


def test_rewrite_keeps_the_function(tmp_path, squeeze_excite_model):
    """GlobalAveragePool computes what ReduceMean over H, W did (FP32, before quantizing)."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.quantize.onnxruntime_static import prepare_for_quantization

    fp32, calib = squeeze_excite_model
    prepare_for_quantization(fp32, tmp_path / "prepared.onnx")
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "prepared.onnx"))
                              .graph.node)
    assert ops["ReduceMean"] == 0 and ops["GlobalAveragePool"] == 17
    a = OnnxRuntimeRunner(fp32).run(calib)
    b = OnnxRuntimeRunner(tmp_path / "prepared.onnx").run(calib)
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(a).max()))


def test_reduce_range_follows_the_cpu():
    assert not choose_reduce_range(["avx2", "avx512f", "avx512_vnni"], "x86_64").reduce_range
    assert not choose_reduce_range(["avx2", "avx_vnni"], "x86_64").reduce_range
    no_vnni = choose_reduce_range(["avx2", "avx512f"], "x86_64")
    assert no_vnni.reduce_range and "without VNNI" in no_vnni.reason
    assert not choose_reduce_range(["asimd", "asimddp"], "aarch64").reduce_range


def test_default_reduce_range_is_this_machines_and_recorded(tmp_path, resnet20_fp32,
                                                            resnet20_calibration):
    info = quantize_static_onnx(resnet20_fp32[0], tmp_path / "int8.onnx",
                                resnet20_calibration[:16])
    expected = choose_reduce_range()
    assert info.reduce_range == expected.reduce_range
    assert info.reduce_range_reason == expected.reason
    explicit = quantize_static_onnx(resnet20_fp32[0], tmp_path / "rr.onnx",
                                    resnet20_calibration[:16], reduce_range=True)
    assert explicit.reduce_range and explicit.reduce_range_reason == "set explicitly"
    assert "7-bit weights" in explicit.quantizer
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "int8.onnx")).metadata_props}
    assert meta["precision"] == "int8" and meta["int8_layout"] == "onnxruntime"
    assert meta["arch"] == "resnet20"


def test_excluded_layers_stay_float(tmp_path, resnet20_fp32, resnet20_calibration):
    fp32 = resnet20_fp32[0]
    first_conv = next(n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv")
    info = quantize_static_onnx(fp32, tmp_path / "int8.onnx", resnet20_calibration[:16],
                                exclude_nodes=[first_conv])
    assert info.excluded_nodes == [first_conv]
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    inits = {i.name for i in graph.initializer}
    node = next(n for n in graph.node if n.name == first_conv)
    assert node.input[1] in inits  # float weight, no DequantizeLinear in front
    others = [n for n in graph.node if n.op_type == "Conv" and n.name != first_conv]
    assert all(n.input[1] not in inits for n in others)
    with pytest.raises(EdgeCNNError, match="not in the prepared graph"):
        quantize_static_onnx(fp32, tmp_path / "x.onnx", resnet20_calibration[:16],
                             exclude_nodes=["no_such_conv"])


def test_hard_sigmoid_runs_as_int8_add(tmp_path):
    """MobileNetV3: h-swish and squeeze-excite gates leave no float op between int8 kernels,
    and the rewrite computes what the float HardSigmoid did (to its 1/255 resolution)."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=10, cifar_stem=True).eval()
    export_onnx(model, tmp_path / "fp32.onnx", 32)
    calib = np.random.default_rng(0).standard_normal((16, 3, 32, 32), dtype=np.float32)
    tuned = quantize_static_onnx(tmp_path / "fp32.onnx", tmp_path / "tuned.onnx", calib)
    assert any(r.startswith("HardSigmoid->int8 Add x") for r in tuned.rewrites)
    ops = _optimized_ops(tmp_path / "tuned.onnx", tmp_path)
    assert ops["HardSigmoid"] == 0 and ops["Mul"] == 0 and ops["Add"] == 0
    assert ops["QLinearAdd"] > 0 and ops["QLinearMul"] > 0
    # against the same quantization with the float HardSigmoid left in place
    from edgecnn.quantize.onnxruntime_static import prepare_for_quantization, quantize_prepared

    prepared = tmp_path / "prepared.onnx"
    prepare_for_quantization(tmp_path / "fp32.onnx", prepared)
    untouched = quantize_prepared(prepared, tmp_path / "float_hsig.onnx", tuned.table,
                                  tuned=False)
    assert untouched.rewrites == []
    assert _optimized_ops(tmp_path / "float_hsig.onnx", tmp_path)["HardSigmoid"] > 0
    x = np.random.default_rng(1).standard_normal((64, 3, 32, 32), dtype=np.float32)
    reference = OnnxRuntimeRunner(tmp_path / "fp32.onnx").run(x)
    scale = float(np.sqrt(np.mean(reference ** 2)))

    def error(name):
        out = OnnxRuntimeRunner(tmp_path / name).run(x)
        return float(np.sqrt(np.mean((out - reference) ** 2))) / scale

    assert error("tuned.onnx") < 1.5 * error("float_hsig.onnx") + 1e-3

"""Mult-adds and parameters counted from ONNX graphs, against the torch profiler.

The registered models are exported with torch's legacy (TorchScript) exporter, the fast one (a
second or two a model, against 5-10 s for the dynamo exporter). All 43 take about a minute on 2
idle cores (measured: every one agrees), too long for every run, so CASES takes one or two
models of every family (a test fails when a family has none), chosen for what makes their
graphs different: grouped convolutions (ResNeXt), the option-A zero-pad shortcut (CIFAR
ResNet), concatenations (DenseNet), depthwise and squeeze-excite convolutions (MobileNet,
EfficientNet), TF-'SAME' padding computed in the graph (EfficientNet-Lite), and a
``separable="depthwise"`` rewrite. ``EDGECNN_COUNT_ALL_MODELS=1`` runs every registered model
instead. Our own export path (dynamo, BN folded by onnxslim) is checked on two models, an INT8
(QDQ) graph against its float original; hand-made graphs check the ConvTranspose, Gemm and
MatMul formulas and the errors.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model, list_models
from edgecnn.models.registry import FAMILIES, get_spec
from edgecnn.profile import conv2d_macs, linear_macs, profile_model
from edgecnn.profile.onnx_counting import count_onnx

# What the legacy exporter says of our models' Python-computed padding (TF 'SAME', option A):
# correct for the fixed input size each test exports at.
pytestmark = [pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
              pytest.mark.filterwarnings("ignore:Constant folding:UserWarning")]

# (name, create_model options, resolution): 64 px keeps every ImageNet model at least 2x2 at
# its last stage; the CIFAR ResNets are run at their own 32.
CASES = [
    ("resnet18", {}, 64),
    ("resnext50_32x4d", {}, 64),
    ("resnet20", {}, 32),
    ("densenet121", {}, 64),
    ("mobilenet_v1", {}, 64),
    ("mobilenet_v3_small", {}, 64),
    ("efficientnet_b0", {}, 64),
    ("efficientnet_lite0", {}, 64),
    ("searchable_mbconv", {"stages": [
        {"width": 24, "depth": 2, "stride": 2, "kernel": 5, "expansion": 4, "se": True,
         "activation": "hswish"}, {"width": 40, "stride": 2, "kernel": 7}]}, 64),
    ("efficientnet_b0", {"separable": "depthwise"}, 64),
]
if os.environ.get("EDGECNN_COUNT_ALL_MODELS") == "1":
    CASES = [(name, {}, 32 if get_spec(name).family == "cifar_resnet" else 64)
             for name in list_models()] + CASES[-1:]
IDS = [f"{n}-{o['separable']}" if "separable" in o else n for n, o, _ in CASES]


def _legacy_export(model: torch.nn.Module, path, resolution: int, **kwargs) -> onnx.ModelProto:
    x = torch.zeros(1, model.card.in_chans, resolution, resolution)
    with pytest.warns(DeprecationWarning):  # torch 2.13 warns that this exporter is legacy
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, **kwargs)
    return onnx.load(str(path))


def _counted_macs(profile) -> list[int]:
    return sorted(layer.macs for layer in profile.layers if layer.macs)


def test_cases_cover_every_family():
    assert {get_spec(name).family for name, _, _ in CASES} == set(FAMILIES)


@pytest.mark.parametrize(("name", "options", "resolution"), CASES, ids=IDS)
def test_registered_model_graph_counts_what_the_torch_profiler_counts(
        tmp_path, name, options, resolution):
    model = create_model(name, **options).eval()
    proto = _legacy_export(model, tmp_path / "m.onnx", resolution)
    counts = count_onnx(proto)
    profile = profile_model(model, resolution)
    assert counts.macs == profile.macs
    # Layer by layer, too: one counted node per Conv2d/Linear, with the same mult-adds.
    assert sorted(m for _, _, m in counts.layers) == _counted_macs(profile)
    assert {op for _, op, _ in counts.layers} <= {"Conv", "Gemm", "MatMul"}
    assert 0 < counts.params <= profile.params + profile.buffer_elements


def test_grouped_convolutions_are_counted_per_group(tmp_path):
    model = create_model("resnext50_32x4d").eval()
    proto = _legacy_export(model, tmp_path / "m.onnx", 64)
    layers = {label: macs for label, _, macs in count_onnx(proto).layers}
    grouped = [n for n in proto.graph.node if n.op_type == "Conv"
               and any(a.name == "group" and a.i == 32 for a in n.attribute)]
    assert len(grouped) == 16  # one 3x3 grouped conv per bottleneck block
    first = grouped[0]  # layer1.0.conv2: 128 -> 128 channels in 32 groups, 16x16 output
    assert layers[first.name] == conv2d_macs(128, 128, 3, 16, groups=32) == 16 * 16 * 128 * 4 * 9


@pytest.mark.parametrize(("name", "options"), [
    ("resnet20", {}), ("mobilenet_v3_small", {"cifar_stem": True, "num_classes": 10}),
])
def test_edgecnn_export_with_folded_bn_counts_the_same(tmp_path, name, options):
    model = create_model(name, **options).eval()
    info = export_onnx(model, tmp_path / "m.onnx", 32)
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(str(info.path)).graph.node)
    counts = count_onnx(info.path)  # from the file: a symbolic batch, static 32x32
    profile = profile_model(model, 32)
    assert counts.macs == profile.macs
    assert sorted(m for _, _, m in counts.layers) == _counted_macs(profile)
    assert count_onnx(info.path, 32).macs == profile.macs  # a matching resolution is accepted
    with pytest.raises(EdgeCNNError, match=r"fixed at \[batch, 3, 32, 32\]; resolution=64"):
        count_onnx(info.path, 64)


def test_symbolic_height_and_width_need_a_resolution(tmp_path):
    model = create_model("resnet20").eval()
    proto = _legacy_export(model, tmp_path / "m.onnx", 32, input_names=["images"],
                           dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}})
    with pytest.raises(EdgeCNNError, match=r"input 'images' has symbolic height/width "
                                           r"\[n, 3, h, w\]; set model.resolution"):
        count_onnx(proto)
    for resolution in (32, 48):
        assert count_onnx(proto, resolution).macs == profile_model(model, resolution).macs
    assert proto.graph.input[0].type.tensor_type.shape.dim[2].dim_param == "h"  # not changed


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _weight(name, *shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def test_conv_transpose_counts_every_input_pixel_times_its_kernel_window():
    # 8 -> 4 channels in 2 groups, 3x3 stride 2 on a 5x5 input: weight [C_in, C_out/g, kh, kw].
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", strides=[2, 2],
                            group=2)
    model = _model([node], [_float("x", ["n", 8, 5, 5])], [_float("y", ["n", 4, 11, 11])],
                   [_weight("w", 8, 2, 3, 3)])
    counts = count_onnx(model)
    assert counts.layers == [("up", "ConvTranspose", 5 * 5 * 8 * 2 * 3 * 3)]
    assert counts.params == 8 * 2 * 3 * 3
    # The direct scatter loop does exactly that many multiplications, whatever the output size.
    up = torch.nn.ConvTranspose2d(8, 4, 3, stride=2, groups=2, bias=False)
    assert tuple(up(torch.zeros(1, 8, 5, 5)).shape) == (1, 4, 11, 11)


def test_gemm_and_matmul_count_one_image_as_a_linear_layer():
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="tokens"),  # [n, 7, 16] @ [16, 12]
        helper.make_node("Flatten", ["h"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="head", transB=1),
    ]
    model = _model(nodes, [_float("x", ["n", 7, 16])], [_float("y", ["n", 10])],
                   [_weight("w1", 16, 12), _weight("w2", 10, 84), _weight("b2", 10)])
    counts = count_onnx(model)
    assert counts.layers == [("tokens", "MatMul", linear_macs(16, 12, rows=7)),
                             ("head", "Gemm", linear_macs(84, 10))]
    assert counts.macs == 7 * 16 * 12 + 84 * 10
    assert counts.params == 16 * 12 + 10 * 84 + 10
    # The torch profiler's Linear convention: rows per image = numel / out / batch.
    linear = torch.nn.Sequential(torch.nn.Conv2d(7, 7, 1), torch.nn.Flatten(2),
                                 torch.nn.Linear(16, 12))
    assert _counted_macs(profile_model(linear, 4, in_chans=7))[-1] == 7 * 16 * 12


def test_qdq_weights_and_constants_are_counted():
    # An INT8 weight behind a DequantizeLinear, a bias in a Constant node, a shape initializer.
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
        helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(
            np.zeros(4, np.float32))),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "shape"], ["y"]),
    ]
    model = _model(nodes, [_float("x", [1, 3, 6, 6])], [_float("y", [1, 144])], [
        numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "wq"),
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
    ])
    counts = count_onnx(model)
    assert counts.layers == [("Conv#2", "Conv", conv2d_macs(3, 4, 3, 6))]
    assert counts.params == 4 * 3 * 3 * 3 + 1 + 4  # weight, scale, bias; not zero point, shape


def test_an_int8_qdq_graph_counts_what_its_float_original_does(tmp_path):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1)]
    rng = np.random.default_rng(0)
    weights = {"w": (8, 3, 3, 3), "b": (8,), "fc_w": (10, 8), "fc_b": (10,)}
    model = _model(nodes, [_float("x", ["n", 3, 16, 16])], [_float("y", ["n", 10])], [
        numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
        for n, s in weights.items()])
    onnx.save(model, str(tmp_path / "f.onnx"))

    class Images(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.random((1, 3, 16, 16), np.float32)}] * 4)

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Images(),
                    quant_format=QuantFormat.QDQ, weight_type=QuantType.QInt8)
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    assert any(n.op_type == "DequantizeLinear" for n in quantized.graph.node)
    assert count_onnx(quantized).macs == count_onnx(model).macs == (
        conv2d_macs(3, 8, 3, 16) + linear_macs(8, 10))


def test_a_node_whose_shape_is_unknown_is_named():
    nodes = [helper.make_node("Opaque", ["x"], ["h"], domain="com.example"),
             helper.make_node("Conv", ["h", "w"], ["y"], name="after_custom_op")]
    graph = helper.make_graph(nodes, "g", [_float("x", [1, 3, 8, 8])], [_float("y", None)],
                              [_weight("w", 4, 3, 3, 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    with pytest.raises(EdgeCNNError, match=r"node after_custom_op \(Conv\): the shape of its "
                                           r"output 'y' is unknown"):
        count_onnx(model)


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(EdgeCNNError, match=r"ONNX file .*nothing.onnx does not exist"):
        count_onnx(tmp_path / "nothing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07\x12\xff\xff not a model")
    with pytest.raises(EdgeCNNError, match=r"bad.onnx is not a readable ONNX model"):
        count_onnx(bad)

"""The ``tensorrt`` Q/DQ layout, checked on the graph: what TensorRT needs to run INT8.

Every Conv/Gemm takes a dequantized activation and a per-channel, symmetric int8 weight; every
residual Add takes two dequantized inputs; every activation quantizer is symmetric int8 (zero
point 0). Checked on real CIFAR ResNet-20 and MobileNet v2 exports, calibrated on test images.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.quantize.onnxruntime_static import quantize_static_onnx


def _layout(path):
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    return graph, inits, producer


@pytest.fixture(scope="module", params=["resnet20", "mobilenet_v2"])
def tensorrt_qdq(request, tmp_path_factory, cifar_test_split):
    from edgecnn.data.eval_batches import normalize_nchw

    arch = request.param
    model = create_model(arch, num_classes=10, cifar_stem=arch != "resnet20")
    folder = tmp_path_factory.mktemp(arch)
    export_onnx(model, folder / "fp32.onnx", 32)
    calib = normalize_nchw(cifar_test_split.images[:64], model.card.mean, model.card.std)
    quantize_static_onnx(folder / "fp32.onnx", folder / "int8.onnx", calib, layout="tensorrt")
    return _layout(folder / "int8.onnx")


def test_every_conv_and_gemm_input_is_quantized_with_per_channel_symmetric_weights(tensorrt_qdq):
    graph, inits, producer = tensorrt_qdq
    layers = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert layers
    for node in layers:
        act, weight = (producer.get(node.input[0]), producer.get(node.input[1]))
        assert act is not None and act.op_type == "DequantizeLinear", node.name
        assert weight is not None and weight.op_type == "DequantizeLinear", node.name
        q_weight = inits[weight.input[0]]
        scale = inits[weight.input[1]]
        zero = inits[weight.input[2]] if len(weight.input) > 2 else np.zeros(1, np.int8)
        assert q_weight.dtype == np.int8 and zero.dtype == np.int8 and not zero.any(), node.name
        if node.op_type == "Conv":  # one scale per output channel
            assert scale.shape == (q_weight.shape[0],), node.name


def test_residual_adds_take_two_dequantized_inputs(tensorrt_qdq):
    graph, _, producer = tensorrt_qdq
    adds = [n for n in graph.node if n.op_type == "Add"
            and all(i in producer for i in n.input)]   # tensor + tensor, not a bias
    assert adds
    for node in adds:
        assert all(producer[i].op_type == "DequantizeLinear" for i in node.input), node.name


def test_activation_quantizers_are_symmetric_int8(tensorrt_qdq):
    graph, inits, _ = tensorrt_qdq
    quantizers = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quantizers
    for node in quantizers:
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), node.name

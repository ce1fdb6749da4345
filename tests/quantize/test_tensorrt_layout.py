"""The ``tensorrt`` Q/DQ layout, checked on the graph: what TensorRT needs to build an INT8 engine.

TensorRT (explicit quantization) runs a layer in INT8 when Q/DQ say so, and fuses a DQ into the
consumer and a Q into the producer. NVIDIA's placement recommendations (TensorRT developer
guide, "Q/DQ Layer-Placement Recommendations") and its ONNX parser's limits give the rules
checked here, on real CIFAR ResNet-20 weights, a ResNet-50 bottleneck network and MobileNet v2:

* every Conv/Gemm input is quantized: the activation through its own Q -> DQ pair, the weight
  an int8 initializer dequantized per output channel (axis 0), symmetric (zero point 0);
* both inputs of every residual Add are quantized (TensorRT then fuses the Add into the
  convolution or runs it in INT8);
* every activation quantizer is symmetric int8 (zero point 0), one scale;
* Q/DQ appear nowhere else: not on the outputs of weighted ops nor around Relu/Clip/Sigmoid/
  pooling/reshape (TensorRT fuses those itself; a Q/DQ in between splits the fusion), and no
  pair is shared by two consumers (TensorRT cannot fuse a shared pair);
* biases stay float: TensorRT's parser rejects DequantizeLinear of int32
  (onnx/onnx-tensorrt#850).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.quantize.onnxruntime_static import quantize_static_onnx

WEIGHTED = ("Conv", "Gemm", "MatMul")
RESNET20 = "weights/cifar10-resnet/resnet20-12fca82f.th"


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Trained-like BatchNorm statistics, so the folded convolutions carry biases."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_(0, 0.2)


def _resnet50_blocks():
    """ResNet-50's bottleneck (1x1-3x3-1x1, projection and identity shortcuts, 7x7 stem,
    max-pool), two blocks in the first stage and one in the others: the block structure at a
    test's cost."""
    from edgecnn.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, [2, 1, 1, 1], num_classes=10)
    model.card = create_model("resnet18", num_classes=10).card
    return model


@pytest.fixture(scope="module", params=["resnet20", "resnet50_blocks", "mobilenet_v2"])
def tensorrt_qdq(request, tmp_path_factory, shared, cifar_test_split):
    from edgecnn.data.eval_batches import normalize_nchw

    arch = request.param
    if arch == "resnet20":
        model, resolution = create_model(arch, pretrained=str(shared / RESNET20),
                                         num_classes=10), 32
    elif arch == "resnet50_blocks":
        model, resolution = _resnet50_blocks(), 64
        _randomise_batchnorm(model)
    else:
        model, resolution = create_model(arch, num_classes=10, cifar_stem=True), 32
        _randomise_batchnorm(model)
    folder = tmp_path_factory.mktemp(arch)
    export_onnx(model.eval(), folder / "fp32.onnx", resolution)
    images = cifar_test_split.images[:32]
    if resolution != 32:
        images = images.repeat(resolution // 32, axis=1).repeat(resolution // 32, axis=2)
    calib = normalize_nchw(images, model.card.mean, model.card.std)
    quantize_static_onnx(folder / "fp32.onnx", folder / "int8.onnx", calib, layout="tensorrt")
    return onnx.load(str(folder / "int8.onnx")).graph


def _index(graph):
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return inits, producer, consumers


def _attr(node, name, default):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name),
                default)


def test_every_weighted_op_takes_a_dedicated_activation_pair_and_per_channel_weights(
        tensorrt_qdq):
    inits, producer, consumers = _index(tensorrt_qdq)
    layers = [n for n in tensorrt_qdq.node if n.op_type in WEIGHTED]
    assert layers
    for node in layers:
        act, weight = producer.get(node.input[0]), producer.get(node.input[1])
        assert act is not None and act.op_type == "DequantizeLinear", node.name
        assert producer[act.input[0]].op_type == "QuantizeLinear", node.name
        assert consumers[act.output[0]] == [node], f"{node.name}: shared activation pair"
        assert weight is not None and weight.op_type == "DequantizeLinear", node.name
        q_weight, scale = inits[weight.input[0]], inits[weight.input[1]]
        zero = inits[weight.input[2]]
        assert q_weight.dtype == np.int8 and zero.dtype == np.int8 and not zero.any(), node.name
        assert np.abs(q_weight.astype(np.int32)).max() <= 127, node.name  # symmetric range
        if node.op_type == "Conv":  # one scale per output channel, along axis 0
            assert scale.shape == (q_weight.shape[0],), node.name
            assert _attr(weight, "axis", 1) == 0, node.name


def test_biases_stay_float(tensorrt_qdq):
    inits, producer, _ = _index(tensorrt_qdq)
    biased = [n for n in tensorrt_qdq.node if n.op_type in WEIGHTED and len(n.input) > 2]
    assert biased, "the fixture models should have folded biases"
    for node in biased:
        assert node.input[2] in inits and node.input[2] not in producer, node.name
        assert inits[node.input[2]].dtype == np.float32, node.name


def test_both_inputs_of_residual_adds_are_quantized(tensorrt_qdq):
    inits, producer, _ = _index(tensorrt_qdq)
    adds = [n for n in tensorrt_qdq.node if n.op_type == "Add"
            and not any(i in inits for i in n.input)]   # tensor + tensor: a residual join
    assert adds
    for node in adds:
        for name in node.input:
            dq = producer[name]
            assert dq.op_type == "DequantizeLinear", node.name
            assert producer[dq.input[0]].op_type == "QuantizeLinear", node.name


def test_activation_quantizers_are_symmetric_int8_per_tensor(tensorrt_qdq):
    inits, _, _ = _index(tensorrt_qdq)
    quantizers = [n for n in tensorrt_qdq.node if n.op_type == "QuantizeLinear"]
    assert quantizers
    for node in quantizers:
        zero, scale = inits[node.input[2]], inits[node.input[1]]
        assert zero.dtype == np.int8 and not zero.any(), node.name
        assert scale.size == 1 and scale.item() > 0, node.name


def test_no_qdq_where_tensorrt_cannot_fuse(tensorrt_qdq):
    _, _, consumers = _index(tensorrt_qdq)
    for node in tensorrt_qdq.node:
        if node.op_type == "QuantizeLinear":
            users = consumers[node.output[0]]
            assert [u.op_type for u in users] == ["DequantizeLinear"], node.name
        elif node.op_type == "DequantizeLinear":
            users = consumers[node.output[0]]
            assert len(users) == 1, f"{node.name} is shared by {len(users)} consumers"
            assert users[0].op_type in (*WEIGHTED, "Add"), \
                f"{node.name} feeds {users[0].op_type} {users[0].name}"


def test_the_layout_runs_and_agrees_with_fp32(tmp_path, shared, cifar_test_split):
    """Numerically sound too (ONNX Runtime runs the same Q/DQ graph in float): the real
    ResNet-20 agrees with its FP32 self on most test images."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.data.eval_batches import normalize_nchw

    model = create_model("resnet20", pretrained=str(shared / RESNET20), num_classes=10)
    export_onnx(model, tmp_path / "fp32.onnx", 32)
    calib = normalize_nchw(cifar_test_split.images[:64], model.card.mean, model.card.std)
    quantize_static_onnx(tmp_path / "fp32.onnx", tmp_path / "trt.onnx", calib,
                         layout="tensorrt")
    x = normalize_nchw(cifar_test_split.images[1000:1500], model.card.mean, model.card.std)
    fp32 = OnnxRuntimeRunner(tmp_path / "fp32.onnx").run(x).argmax(1)
    int8 = OnnxRuntimeRunner(tmp_path / "trt.onnx").run(x).argmax(1)
    assert (fp32 == int8).mean() > 0.95

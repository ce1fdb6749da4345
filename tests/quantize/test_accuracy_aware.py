"""Accuracy-aware PTQ: layers go back to float, most sensitive first, until the budget holds.

The model is the real CIFAR ResNet-20 with one *outlier channel* planted without changing its
function: channel 5 of layer2.1's first BatchNorm is scaled by 200 and the next convolution's
weights for that channel by 1/200 (ReLU is positively homogeneous, so FP32 outputs are the
same). Per-tensor activation ranges then crush the other channels of that tensor — the failure
accuracy-aware modes exist for — while the rest of the network quantizes well. The metric is
top-1 agreement with FP32 on 256 CIFAR-10 test images (FP32 = 100), evaluated for real; plain
per-channel PTQ of the unmodified model agrees on about 98% of them, so the budget here is 4
points: what the outlier costs must be recovered, not the last point of ordinary noise.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.accuracy_aware import quantize_with_accuracy_budget

SCALE, CHANNEL = 200.0, 5


@pytest.fixture(scope="module")
def outlier_model(shared, tmp_path_factory, cifar_test_split):
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.data.eval_batches import normalize_nchw
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    from .conftest import RESNET20

    model = create_model("resnet20", pretrained=str(shared / RESNET20), num_classes=10).eval()
    block = model.layer2[1]
    reference = normalize_nchw(cifar_test_split.images[:8], model.card.mean, model.card.std)
    before = model(torch.from_numpy(reference)).detach().numpy()
    with torch.no_grad():
        block.bn1.weight[CHANNEL] *= SCALE
        block.bn1.bias[CHANNEL] *= SCALE
        block.conv2.weight[:, CHANNEL] /= SCALE
    after = model(torch.from_numpy(reference)).detach().numpy()
    assert np.abs(after - before).max() < 1e-3  # same function in FP32
    path = tmp_path_factory.mktemp("outlier") / "fp32.onnx"
    export_onnx(model, path, 32)
    picks = np.random.default_rng(1).choice(len(cifar_test_split), 256, replace=False)
    images = normalize_nchw(cifar_test_split.images[picks], model.card.mean, model.card.std)
    calib = normalize_nchw(cifar_test_split.images[:64], model.card.mean, model.card.std)
    fp32_predictions = OnnxRuntimeRunner(path).run(images).argmax(1)

    def agreement(onnx_path) -> float:
        out = OnnxRuntimeRunner(onnx_path).run(images).argmax(1)
        return 100.0 * float((out == fp32_predictions).mean())

    return path, calib, agreement


def test_fallback_meets_the_budget_and_lists_its_layers(tmp_path, outlier_model):
    path, calib, agreement = outlier_model
    messages: list[str] = []
    result = quantize_with_accuracy_budget(
        path, tmp_path / "int8.onnx", calib, agreement, max_accuracy_drop=4.0,
        fp32_top1=100.0, reduce_range=False, progress=messages.append)
    assert result.ptq_top1 < 90.0, "the planted outlier should hurt plain PTQ"
    assert result.drop <= 4.0 and result.top1 == agreement(tmp_path / "int8.onnx")
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    reader = next(n.name for n in graph.node if n.op_type == "Conv"
                  and n.input[1].startswith("layer2.1.conv2"))
    # the layer reading the planted tensor ranks first and is enough
    assert result.sensitivity[0][0] == reader
    assert result.fallback_layers == [reader]
    assert [s.layer for s in result.steps] == [reader] and result.steps[0].drop <= 4.0
    assert len(result.sensitivity) > 20 and messages[0].startswith("full PTQ")
    inits = {i.name for i in graph.initializer}
    node = next(n for n in graph.node if n.name == reader)
    assert node.input[1] in inits  # float weight, not a DequantizeLinear
    producers = {o: n for n in graph.node for o in n.output}
    relu = producers[node.input[0]]
    assert relu.op_type == "Relu" and producers[relu.input[0]].op_type == "Conv"  # float input
    assert result.to_dict()["fallback_layers"] == [reader]
    assert result.to_dict()["fallback_layer_weights"] == ["layer2.1.conv2.weight"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".accuracy-aware")]


def test_within_budget_nothing_falls_back(tmp_path, outlier_model):
    path, calib, agreement = outlier_model
    result = quantize_with_accuracy_budget(path, tmp_path / "int8.onnx", calib, agreement,
                                           max_accuracy_drop=100.0, fp32_top1=100.0)
    assert result.fallback_layers == [] and result.steps == [] and result.sensitivity == []
    assert result.top1 == result.ptq_top1


def test_unreachable_budget_raises_with_the_best_reached(tmp_path, outlier_model):
    path, calib, agreement = outlier_model
    with pytest.raises(EdgeCNNError, match=r"max_accuracy_drop 0.0 points .* best "):
        quantize_with_accuracy_budget(path, tmp_path / "int8.onnx", calib, agreement,
                                      max_accuracy_drop=0.0, fp32_top1=100.0, max_fallbacks=1)
    assert not (tmp_path / "int8.onnx").exists()
    assert not list(tmp_path.iterdir())


def test_openvino_target_uses_nncf_accuracy_control(tmp_path, outlier_model, cifar_test_split):
    """The openvino target's accuracy-aware mode is NNCF's own; it finds the same layer."""
    pytest.importorskip("nncf", reason="the openvino extra is not installed")
    from edgecnn.data.eval_batches import normalize_nchw
    from edgecnn.quantize.openvino_nncf import quantize_openvino_with_accuracy_control

    path, calib, _ = outlier_model
    picks = np.random.default_rng(1).choice(len(cifar_test_split), 256, replace=False)
    x = normalize_nchw(cifar_test_split.images[picks], (0.485, 0.456, 0.406),
                       (0.229, 0.224, 0.225))
    y = cifar_test_split.labels[picks]
    result = quantize_openvino_with_accuracy_control(
        path, tmp_path / "int8.xml", calib, lambda: [(x[i:i + 64], y[i:i + 64])
                                                     for i in range(0, 256, 64)],
        max_accuracy_drop=1.0)
    assert result.drop <= 1.0 and (tmp_path / "int8.xml").is_file()
    reader = next(n.name for n in onnx.load(str(path)).graph.node
                  if n.op_type == "Conv" and n.input[1].startswith("layer2.1.conv2"))
    assert [layer.split("/")[0] for layer in result.fallback_layers] == [reader]
    assert result.info.excluded_nodes == result.fallback_layers


@pytest.fixture(scope="module")
def tiny_outlier_model(tmp_path_factory):
    """Three convolutions with an outlier channel planted in the second one's input, as in
    ``outlier_model``: small enough for one ModelOpt run per ranked layer (seconds each)."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10)).eval()
    with torch.no_grad():
        for layer in (model[0], model[2], model[4], model[7]):
            layer.bias.zero_()  # random biases would fix the prediction to one class
        model[0].weight[CHANNEL] *= SCALE
        model[2].weight[:, CHANNEL] /= SCALE
    path = tmp_path_factory.mktemp("tiny") / "fp32.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), input_names=["input"],
                      output_names=["logits"], opset_version=18, external_data=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    rng = np.random.default_rng(0)

    def draw(n: int) -> np.ndarray:  # noise plus a per-image colour: predictions then vary
        return (rng.standard_normal((n, 3, 16, 16))
                + 2 * rng.standard_normal((n, 3, 1, 1))).astype(np.float32)

    calib, images = draw(16), draw(256)
    fp32_predictions = OnnxRuntimeRunner(path).run(images).argmax(1)
    assert len(np.unique(fp32_predictions)) >= 4  # an agreement that can drop

    def agreement(onnx_path) -> float:
        out = OnnxRuntimeRunner(onnx_path).run(images).argmax(1)
        return 100.0 * float((out == fp32_predictions).mean())

    return path, calib, agreement


def test_tensorrt_target_falls_back_through_modelopt(tmp_path, tiny_outlier_model):
    """The tensorrt target's fallback: ModelOpt's nodes_to_exclude, ranked the same way."""
    pytest.importorskip("modelopt.onnx.quantization",
                        reason="nvidia-modelopt is not installed (pip install 'edgecnn[tensorrt]')")
    path, calib, agreement = tiny_outlier_model
    result = quantize_with_accuracy_budget(
        path, tmp_path / "int8.tensorrt.onnx", calib, agreement, max_accuracy_drop=2.0,
        fp32_top1=100.0, layout="tensorrt")
    graph = onnx.load(str(tmp_path / "int8.tensorrt.onnx")).graph
    reader = next(n.name for n in graph.node if n.op_type == "Conv"
                  and n.input[1].startswith("2."))
    assert result.ptq_top1 < 90.0, "the planted outlier should hurt plain PTQ"
    assert result.sensitivity[0][0] == reader and result.fallback_layers == [reader]
    assert result.info.quantizer.startswith("ModelOpt") and result.drop <= 2.0
    producers = {o: n for n in graph.node for o in n.output}
    node = next(n for n in graph.node if n.name == reader)
    assert producers[node.input[0]].op_type == "Relu"  # reads its input in float
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

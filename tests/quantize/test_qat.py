"""QAT for the ONNX Runtime target: the simulation matches ORT's quantizer, training moves the
weights, and the result quantizes into ORT's own Q/DQ layout and agrees with the simulation.

Real weights (CIFAR ResNet-20) and real CIFAR-10 (JPEG copy) test images, a few hundred of them,
so the whole module runs in well under a minute on two cores.
"""

from __future__ import annotations

import operator

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.data.eval_batches import normalize_nchw
from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.quantize.onnxruntime_static import quantize_static_onnx
from edgecnn.quantize.qat import QATModel, fake_quant_model, qat_finetune

CALIBRATION, TRAIN, CHECK = slice(0, 128), slice(128, 512), slice(512, 1024)
PASS_THROUGH = ("Slice", "Pad", "Reshape", "Flatten", "MaxPool", "Squeeze", "Unsqueeze",
                "Transpose")


@pytest.fixture(scope="module")
def resnet20(shared):
    path = shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return create_model("resnet20", pretrained=str(path)).eval()


@pytest.fixture(scope="module")
def inputs(cifar_test_split, resnet20):
    card = resnet20.card
    return normalize_nchw(cifar_test_split.images[:1024], card.mean, card.std)


def _graph(path):
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    return graph, inits, producer


def _activation_scales(path) -> list[float]:
    """Scales of the activation quantizers ORT runs, in graph order. Left out: those of ops
    that pass a quantized input's grid through (Slice, Pad, Reshape, ...: ORT gives them their
    input's parameters), and a Q/DQ pair whose only consumers are Relu/Clip (kept in the graph
    by QDQKeepRemovableActivations, merged into the activation's own Q when ORT optimises)."""
    graph, inits, producer = _graph(path)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    scales = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        source = producer.get(node.input[0])
        if source is not None and source.op_type in PASS_THROUGH:
            feeder = producer.get(source.input[0])
            if feeder is not None and feeder.op_type == "DequantizeLinear":
                continue
        readers = [c for dq in consumers.get(node.output[0], [])
                   for c in consumers.get(dq.output[0], [])]
        if readers and all(r.op_type in ("Relu", "Clip") for r in readers):
            continue
        scales.append(float(inits[node.input[1]]))
    return scales


def _logits(run, x: np.ndarray) -> np.ndarray:
    return np.concatenate([run(x[i:i + 128]) for i in range(0, len(x), 128)])


@pytest.mark.parametrize("per_channel", [True, False])
def test_simulation_uses_onnxruntimes_quantizers_and_ranges(resnet20, inputs, tmp_path,
                                                            per_channel):
    calib = inputs[CALIBRATION]
    export_onnx(resnet20, tmp_path / "fp32.onnx", 32)
    quantize_static_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calib,
                         per_channel=per_channel, reduce_range=True)
    sim = fake_quant_model(resnet20, calib, per_channel=per_channel, reduce_range=True)
    # one quantizer per tensor ORT quantizes, with the same scale (same calibration rule)
    ours = [float(fq.scale) for fq in sim.activation_quantizers]
    theirs = _activation_scales(tmp_path / "int8.onnx")
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert sim.folded_batchnorms == 19 and len(sim.weight_quantizers) == 20
    # the first conv's weight scales: max|w| / 64 of the BN-folded weight, per channel or not
    graph, inits, producer = _graph(tmp_path / "int8.onnx")
    first_conv = next(n for n in graph.node if n.op_type == "Conv")
    ort_scale = inits[producer[first_conv.input[1]].input[1]]
    folded = sim.model.conv1.parametrizations.weight.original.detach()
    absmax = folded.abs().amax(dim=(1, 2, 3)) if per_channel else folded.abs().amax()
    np.testing.assert_allclose(np.atleast_1d(ort_scale), np.atleast_1d(absmax.numpy() / 64),
                               rtol=1e-5)
    # and the two compute the same function, up to an output quantization step
    ort = OnnxRuntimeRunner(tmp_path / "int8.onnx", threads=2)
    with torch.no_grad():
        torch_logits = _logits(lambda b: sim(torch.from_numpy(b)).numpy(), inputs[CHECK])
    ort_logits = _logits(ort.run, inputs[CHECK])
    logit_step = float(sim.activation_quantizers[-1].scale)
    assert np.abs(torch_logits - ort_logits).mean() < logit_step
    agree = (torch_logits.argmax(1) == ort_logits.argmax(1)).mean()
    assert agree >= 0.97, agree


def test_qat_trains_and_exports_to_the_onnxruntime_layout(resnet20, inputs, cifar_test_split,
                                                          tmp_path):
    card = resnet20.card
    calib = inputs[CALIBRATION]
    train = cifar_test_split.subset(np.arange(TRAIN.start, TRAIN.stop), "qat-train")
    before = {k: v.clone() for k, v in resnet20.state_dict().items()}
    trained, result = qat_finetune(resnet20, train, calibration=calib, mean=card.mean,
                                   std=card.std, epochs=1, lr=0.01, batch_size=64,
                                   per_channel=True, reduce_range=True, recalibrate_every=2)
    # the caller's model is untouched; the result has its class and keys, and new weights
    assert all(torch.equal(v, resnet20.state_dict()[k]) for k, v in before.items())
    assert type(trained) is type(resnet20)
    assert set(trained.state_dict()) == set(before)
    assert result.steps == 6 and result.recalibrations == 1 + 2 and len(result.epoch_seconds) == 1
    assert result.activation_quantizers == 31 and result.weight_quantizers == 20
    assert not torch.allclose(trained.layer2[0].conv1.weight, before["layer2.0.conv1.weight"])
    # BatchNorm is folded into the convolutions: identity scale, the bias carries the shift
    assert torch.allclose(trained.bn1.running_var, torch.full((16,), 1 - trained.bn1.eps))
    assert torch.all(trained.bn1.weight == 1) and torch.all(trained.bn1.running_mean == 0)

    export_onnx(trained, tmp_path / "qat.fp32.onnx", 32)
    quantize_static_onnx(tmp_path / "qat.fp32.onnx", tmp_path / "qat.int8.onnx", calib,
                         per_channel=True, reduce_range=True)
    graph, inits, producer = _graph(tmp_path / "qat.int8.onnx")
    layers = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) == 20 and not any(n.op_type == "BatchNormalization" for n in graph.node)
    for node in layers:  # ORT's U8S8 layout: uint8 activations, per-channel int8 weights
        act, weight = producer[node.input[0]], producer[node.input[1]]
        assert act.op_type == weight.op_type == "DequantizeLinear", node.name
        assert inits[act.input[2]].dtype == np.uint8, node.name
        q_weight, scale = inits[weight.input[0]], inits[weight.input[1]]
        assert q_weight.dtype == np.int8 and np.abs(q_weight).max() <= 64, node.name
        assert scale.shape == (q_weight.shape[0],), node.name

    sim = fake_quant_model(trained, calib, per_channel=True, reduce_range=True)
    ort = OnnxRuntimeRunner(tmp_path / "qat.int8.onnx", threads=2)
    with torch.no_grad():
        torch_logits = _logits(lambda b: sim(torch.from_numpy(b)).numpy(), inputs[CHECK])
    ort_logits = _logits(ort.run, inputs[CHECK])
    agree = (torch_logits.argmax(1) == ort_logits.argmax(1)).mean()
    assert agree >= 0.97, agree
    labels = cifar_test_split.labels[CHECK]
    assert (ort_logits.argmax(1) == labels).mean() > 0.6  # still a working classifier


def test_activation_placement_follows_onnxruntime_on_mobilenet_v2(tmp_path, inputs):
    """Clip after Conv removed, the residual Add's inputs and output, the Gemm's input/output."""
    model = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.25,
                         dropout=0.0).eval()
    export_onnx(model, tmp_path / "fp32.onnx", 32)
    calib = inputs[:32]
    quantize_static_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calib)
    sim = QATModel(model)
    assert len(sim.activation_quantizers) == len(_activation_scales(tmp_path / "int8.onnx"))
    graph = sim.graph_module.graph
    modules = dict(sim.graph_module.named_modules())

    def is_quantizer(node):
        return node.op == "call_module" and node.target.startswith("act_fq_")

    relu6 = [n for n in graph.nodes
             if n.op == "call_module" and isinstance(modules[n.target], torch.nn.ReLU6)]
    assert len(relu6) == 35
    for node in relu6:  # the quantizer follows the ReLU6, none sits between BN and ReLU6
        assert not is_quantizer(node.args[0]) and all(is_quantizer(u) for u in node.users)
    adds = [n for n in graph.nodes if n.op == "call_function" and n.target is operator.add
            and not any(i.op == "call_method" for i in n.all_input_nodes)]  # not a folded BN's
    # bias (x + bias.view(...))
    assert len(adds) == sum(getattr(m, "use_res_connect", False) for m in model.modules())
    assert adds
    for node in adds:
        assert all(is_quantizer(i) for i in node.all_input_nodes)
        assert all(is_quantizer(u) for u in node.users)
    first, last = sim.activation_quantizers[0], sim.activation_quantizers[-1]
    assert (first.tensor_name, last.tensor_name) == ("x", "classifier_1")  # input and logits


def test_bad_options_and_untraceable_models_are_user_errors(resnet20, inputs,
                                                            cifar_test_split):
    card = resnet20.card
    train = cifar_test_split.subset(np.arange(64), "tiny")
    base = dict(calibration=inputs[:16], mean=card.mean, std=card.std)
    for bad, field in [(dict(epochs=0), "quantize.qat.epochs"), (dict(lr=0.0), "quantize.qat.lr"),
                       (dict(batch_size=65), "quantize.qat.batch_size"),
                       (dict(augment="autoaugment"), "data.augment"),
                       (dict(calibration_method="entropy"), "quantize.calibration.method"),
                       (dict(calibration=np.zeros((0, 3, 32, 32), np.float32)), "calibration")]:
        with pytest.raises(EdgeCNNError, match=field):
            qat_finetune(resnet20, train, **{**base, **bad})

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(EdgeCNNError, match=r"torch\.fx"):
        QATModel(DataDependent())

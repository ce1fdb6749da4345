"""The tensorrt target's FP16 ONNX (``model.fp16.onnx``), made by NVIDIA ModelOpt's AutoCast.

AutoCast keeps a node FP32 where FP16 would overflow -- an initializer beyond 65504, or
activations beyond 512 in its reference run -- and converts the rest; with float32 input and
output (TensorRT's strongly typed networks take the types from the graph).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("modelopt") is None or importlib.util.find_spec("polygraphy") is None,
    reason="nvidia-modelopt / polygraphy are not installed (pip install 'edgecnn[tensorrt]')")


def _conv_weight_types(path) -> dict[str, int]:
    graph = onnx.load(str(path)).graph
    inits = {i.name: i.data_type for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    types = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        while weight not in inits and weight in producer:  # through a Cast
            weight = producer[weight].input[0]
        types[node.name] = inits[weight]
    return types


def test_every_conv_is_fp16_with_float32_io_and_close_to_fp32(resnet20_fp32, resnet20_calibration,
                                                                tmp_path):
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.quantize.modelopt_fp16 import fp16_onnx

    fp32 = resnet20_fp32[0]
    out = fp16_onnx(fp32, tmp_path / "model.fp16.onnx")
    model = onnx.load(str(out))
    assert {p.key: p.value for p in model.metadata_props}["precision"] == "fp16"
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT, value.name
    types = _conv_weight_types(out)
    assert types and set(types.values()) == {TensorProto.FLOAT16}, types
    x = resnet20_calibration[:64]
    ref = OnnxRuntimeRunner(fp32).run(x)
    half = OnnxRuntimeRunner(out).run(x)
    assert (ref.argmax(1) == half.argmax(1)).mean() >= 0.98
    assert np.abs(ref - half).max() < 0.05 * np.abs(ref).max()


def test_what_fp16_cannot_hold_stays_fp32(tmp_path):
    """A weight beyond FP16's 65504 keeps its Conv FP32 (initializer rule), and the ReLU and
    Conv after it too: their inputs reach ~1e5 in the reference run, beyond ``data_max`` 512.
    A weight of 10 leaves every node FP16. (ONNX Runtime's converter, used before, converted
    all of them and clipped the weight to 65504.)"""
    from edgecnn.quantize.modelopt_fp16 import fp16_onnx

    def conv_types(big: float) -> list[int]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                                    torch.nn.Conv2d(8, 4, 1)).eval()
        with torch.no_grad():
            model[0].weight[0, 0, 0, 0] = big
        fp32 = tmp_path / f"fp32_{big}.onnx"
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(fp32),
                          input_names=["input"], output_names=["logits"], opset_version=18)
        types = _conv_weight_types(fp16_onnx(fp32, tmp_path / f"fp16_{big}.onnx"))
        return [types[name] for name in sorted(types)]

    assert conv_types(1e5) == [TensorProto.FLOAT, TensorProto.FLOAT]
    assert conv_types(10.0) == [TensorProto.FLOAT16, TensorProto.FLOAT16]

"""What each runtime leaves outside its int8 kernels (edgecnn.bench.int8_coverage), on graphs
built to have a known float island and on real build artifacts."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.bench.int8_coverage import onnx_float_islands


def _qdq_graph(path, wrap_sigmoid: bool):
    """x -> Q -> DQ -> Conv -> Q -> DQ -> Sigmoid [-> Q -> DQ] -> Mul(with the conv) -> Q -> DQ:
    the SiLU pattern of EfficientNet. ``wrap_sigmoid`` False leaves the Sigmoid's output in
    float, as the issue's 65 Sigmoids of EfficientNet-B0 were."""
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "wq")

    def qdq(name):
        return [helper.make_node("QuantizeLinear", [name, "s", "z"], [f"{name}_q"]),
                helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_dq"])]

    nodes = [*qdq("x"), helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"]),
             helper.make_node("Conv", ["x_dq", "w"], ["c"], name="conv"), *qdq("c"),
             helper.make_node("Sigmoid", ["c_dq"], ["g"], name="gate")]
    gate = "g"
    if wrap_sigmoid:
        nodes += qdq("g")
        gate = "g_dq"
    nodes += [helper.make_node("Mul", ["c_dq", gate], ["m"], name="silu_mul"), *qdq("m")]
    graph = helper.make_graph(
        nodes, "silu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("m_dq", TensorProto.FLOAT, [1, 4, 4, 4])],
        [scale, zero, weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_sigmoid_left_in_float_and_the_mul_it_feeds_are_named(tmp_path):
    coverage = onnx_float_islands(_qdq_graph(tmp_path / "m.onnx", wrap_sigmoid=False))
    # the Sigmoid's output is not requantized, so neither it nor the Mul that reads it fuses
    assert coverage.float_ops == {"Sigmoid": 1, "Mul": 1}
    assert coverage.examples == ["gate", "silu_mul"]
    assert "2 op(s) in float between DQ/Q: " in coverage.describe()


def test_a_fully_wrapped_graph_has_no_float_island(tmp_path):
    coverage = onnx_float_islands(_qdq_graph(tmp_path / "m.onnx", wrap_sigmoid=True))
    assert coverage.float_ops == {}
    assert coverage.describe() == "every compute op in int8"

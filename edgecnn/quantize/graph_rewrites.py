"""Graph rewrites that let ONNX Runtime run more of a CNN in int8 (the tuned onnxruntime layout).

Before quantizing (FP32 graph): torch's exporter writes global average pooling
(``mean(dim=(2, 3))``, ``AdaptiveAvgPool2d(1)``) as ``ReduceMean`` over the spatial axes. ONNX
Runtime has no int8 ReduceMean in its Q/DQ fusions (onnxruntime's
qdq_selector_action_transformer: the unary int8 ops are AveragePool, LeakyRelu,
GlobalAveragePool, Sigmoid, Softmax), so it ran in float between DequantizeLinear and
QuantizeLinear: in an ONNX Runtime profile of EfficientNet-B0 (17 squeeze-excite poolings)
18% of the INT8 run, against 4% as ``GlobalAveragePool`` -> ``QLinearGlobalAveragePool``.
Same mean. With it, EfficientNet-B0 INT8 runs at 0.81x the FP32 time instead of 1.05x
(benchmarks/results/int8_latency.json).

After quantizing (Q/DQ graph): HardSigmoid, see :func:`hard_sigmoid_to_int8_add`; with both,
MobileNetV3-Large INT8 runs at 0.72x the FP32 time instead of 0.98x.

Neither ONNX Runtime's ``quant_pre_process`` nor its quantizer nor onnxslim makes these
rewrites, hence this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def reduce_mean_to_global_average_pool(model: onnx.ModelProto) -> int:
    """Replace every ``ReduceMean`` over axes {2, 3} of a 4-D tensor, in place; returns how
    many. ``keepdims=0`` becomes ``GlobalAveragePool`` + ``Flatten`` (N, C)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in [*graph.value_info, *graph.input, *graph.output]
             if v.type.tensor_type.HasField("shape")}
    nodes, rewritten = [], 0
    for node in graph.node:
        axes = _reduce_axes(node, constants)
        rank = ranks.get(node.input[0]) if node.input else None
        if node.op_type != "ReduceMean" or axes is None or rank != 4 or \
                sorted(int(a) % 4 for a in axes) != [2, 3]:
            nodes.append(node)
            continue
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        if keepdims:
            nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]],
                                          list(node.output), name=node.name))
        else:
            pooled = f"{node.output[0]}_pooled"
            nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], [pooled],
                                          name=node.name))
            nodes.append(helper.make_node("Flatten", [pooled], list(node.output),
                                          name=f"{node.name}_flatten", axis=1))
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {name for node in graph.node for name in node.input}
        keep = [i for i in graph.initializer if i.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return rewritten


def _reduce_axes(node, constants) -> list[int] | None:
    """The axes of a ReduceMean (opset >= 18 input, or the older attribute)."""
    if node.op_type != "ReduceMean":
        return None
    if len(node.input) > 1 and node.input[1]:
        value = constants.get(node.input[1])
        return None if value is None else [int(a) for a in value.reshape(-1)]
    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    return None  # no axes: reduces over every axis, not a spatial pooling


def hard_sigmoid_to_int8_add(model: onnx.ModelProto) -> int:
    """In a uint8 Q/DQ graph, compute every quantized HardSigmoid with an int8 Add; returns
    how many. In place.

    ONNX Runtime has no int8 HardSigmoid, so MobileNetV3's h-swish (x * HardSigmoid(x), which
    ONNX Runtime expands HardSwish into) and squeeze-excite gates run DequantizeLinear ->
    HardSigmoid -> QuantizeLinear in float between int8 kernels. But
    ``HardSigmoid(x) = clip(a*x + b, 0, 1) = a * clip(x + b/a, 0, 1/a)``: quantizing
    ``x + b/a`` with scale ``1/(255*a)`` and zero point 0 saturates exactly at 0 and 1/a (the
    clip), and the same uint8 values read back with scale ``1/255`` are the HardSigmoid. So
    ``DQ(x) -> Add(b/a) -> Q(1/(255a), 0)``, which ONNX Runtime fuses into QLinearAdd, replaces
    the float op, and the consumers' DequantizeLinear read the result with scale 1/255. The
    output keeps 1/255 resolution over [0, 1] (the calibrated range would be [0, 1] or
    narrower).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewritten = 0
    for node in list(graph.node):
        if node.op_type != "HardSigmoid":
            continue
        source = producer.get(node.input[0])
        users = consumers.get(node.output[0], [])
        if source is None or source.op_type != "DequantizeLinear" or len(users) != 1 or \
                users[0].op_type != "QuantizeLinear":
            continue
        quant = users[0]
        zero = inits.get(quant.input[2]) if len(quant.input) > 2 else None
        if zero is None or zero.data_type != TensorProto.UINT8:
            continue
        readers = consumers.get(quant.output[0], [])
        if not readers or any(r.op_type != "DequantizeLinear" for r in readers):
            continue
        attrs = {a.name: a.f for a in node.attribute}
        alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
        if alpha <= 0:
            continue
        name = node.name or node.output[0]
        offset, shifted = f"{name}_offset", f"{name}_shifted"
        graph.initializer.extend([
            numpy_helper.from_array(np.array(1, np.uint8), f"{offset}_quantized"),
            numpy_helper.from_array(np.array(beta / alpha, np.float32), f"{offset}_scale"),
            numpy_helper.from_array(np.array(0, np.uint8), f"{offset}_zero_point"),
            numpy_helper.from_array(np.array(1.0 / (255.0 * alpha), np.float32),
                                    f"{name}_add_scale"),
            numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), f"{name}_unit_scale"),
            numpy_helper.from_array(np.array(0, np.uint8), f"{name}_zero"),
        ])
        dq_offset = helper.make_node(
            "DequantizeLinear", [f"{offset}_quantized", f"{offset}_scale",
                                 f"{offset}_zero_point"], [offset], name=f"{offset}_dq")
        add = helper.make_node("Add", [node.input[0], offset], [shifted], name=f"{name}_add")
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, add)
        graph.node.insert(position, dq_offset)
        quant.input[0] = shifted
        quant.input[1], quant.input[2] = f"{name}_add_scale", f"{name}_zero"
        for reader in readers:
            reader.input[1], reader.input[2] = f"{name}_unit_scale", f"{name}_zero"
        rewritten += 1
    if rewritten:
        used = {name for node in graph.node for name in node.input}
        keep = [i for i in graph.initializer if i.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return rewritten

"""Parameters and mult-adds counted from an ONNX graph, in the torch profiler's convention.

An imported ``.onnx`` has no torch module to hook, so its figures come from the graph itself:
``onnx.shape_inference`` gives every tensor's shape, and the formulas the torch profiler
(:mod:`edgecnn.profile.profiler`) uses, :func:`~edgecnn.profile.counting.conv2d_macs` and
:func:`~edgecnn.profile.counting.linear_macs`, turn the shapes into mult-adds, so the two can
never disagree on a convention. What the torch profiler counts (Conv2d, Linear) is what is
counted here: convolutions (Conv, ConvTranspose, and the INT8 forms QLinearConv / ConvInteger;
a QDQ graph's Conv behind DequantizeLinear counts as its float original) and matrix products
(Gemm, MatMul, MatMulInteger, QLinearMatMul). Bias additions, BN, activations, pooling and
residual additions are free, as there, so a model exported by edgecnn has the same mult-adds in
both, whether or not its BN was folded. One difference: a MatMul of two activations (attention)
is counted here, where torch has no Linear to hook; no registered model has one.

Shapes are inferred on a copy whose batch is 1 (the counts are of one image) and whose symbolic
height and width are set to ``resolution``; the caller's model is not changed. ONNX Runtime's
com.microsoft ops (a QOperator-format INT8 graph's QLinearAdd, QGemm, ...) have no ONNX
shape-inference rule: a count that needs a shape after one is refused, naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.profile.counting import conv2d_macs, linear_macs

if TYPE_CHECKING:
    import onnx

_DEFAULT_DOMAINS = ("", "ai.onnx")
# Input positions of the data and weight tensors of each counted convolution.
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
_SMALL = 4096  # elements: above this an initializer is a weight, below it may be a shape
_INT_TYPES = (6, 7, 12, 13)  # INT32, INT64, UINT32, UINT64: shapes, indices, pads
_RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
               "Multinomial", "Bernoulli"}


@dataclass(frozen=True)
class GraphCounts:
    """What :func:`count_onnx` found; all figures are for one input image (batch 1)."""

    params: int
    macs: int
    layers: list[tuple[str, str, int]] = field(default_factory=list)


def load_onnx(path: str | Path, *, load_external_data: bool = False) -> onnx.ModelProto:
    """Load ``path``, with a missing or corrupt file reported as one :class:`EdgeCNNError`."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"ONNX file {path} does not exist" if not path.exists()
                           else f"{path} is not a file (an ONNX model is one .onnx file)")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError, or an external-data OSError
        raise EdgeCNNError(f"{path} is not a readable ONNX model: "
                           f"{first_line(exc)}") from exc


def count_onnx(model: onnx.ModelProto | str | Path, resolution: int | None = None) -> GraphCounts:
    """Parameters and mult-adds of one image through ``model`` (a proto or a ``.onnx`` file).

    ``resolution`` sets symbolic input height and width; it is required when they are symbolic
    and, when they are fixed, must agree with them (a count at another size would be wrong).
    Weights are counted from the file's shapes alone, so external data is never read.
    """
    import onnx

    proto = load_onnx(model) if isinstance(model, (str, Path)) else model
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"count_onnx takes an onnx.ModelProto or a path, got {type(model)}")
    graph = _Graph(static_shapes(proto, resolution).graph)
    layers: list[tuple[str, str, int]] = []
    for index, node in enumerate(graph.nodes):
        if node.domain not in _DEFAULT_DOMAINS:
            continue
        if node.op_type in _CONV_OPS or node.op_type == "ConvTranspose":
            macs = _conv_macs(graph, node, index)
        elif node.op_type == "Gemm" or node.op_type in _MATMUL_OPS:
            macs = _matmul_macs(graph, node, index)
        else:
            continue
        layers.append((node_label(node, index), node.op_type, macs))
    return GraphCounts(params=count_params(proto), macs=sum(m for _, _, m in layers),
                       layers=layers)


def count_params(model: onnx.ModelProto) -> int:
    """Elements of the weights the graph holds: floating-point initializers and Constant tensors.

    An INT8 graph's weights are integer initializers behind a DequantizeLinear; those are counted
    too (a quantized model has as many parameters as its float original), other integer tensors
    (shapes, indices, axes) are not weights.
    """
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    floats |= {getattr(TensorProto, name) for name in (
        "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ") if hasattr(
        TensorProto, name)}
    dequantized = {n.input[0] for n in all_nodes(model.graph)
                   if n.op_type == "DequantizeLinear" and n.input}
    total = 0
    for tensor in _all_initializers(model.graph):
        if tensor.data_type in floats or tensor.name in dequantized:
            total += math.prod(tensor.dims)
    for node in all_nodes(model.graph):
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS:
            for attr in node.attribute:
                if attr.name == "value" and (attr.t.data_type in floats
                                             or node.output[0] in dequantized):
                    total += math.prod(attr.t.dims)
    return total


def static_shapes(model: onnx.ModelProto, resolution: int | None, *,
                  symbolic_ok: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` with batch 1 and square ``resolution`` inputs, shapes inferred.

    Symbolic height/width without a ``resolution`` are an error, or with ``symbolic_ok`` are
    left symbolic (to read what does not depend on them, such as the class count).

    Stale intermediate shapes (``value_info``) and the outputs' declared shapes are dropped
    first: they may have been recorded for another batch or size, and inference would have to
    reconcile them. Every other graph input dimension must be fixed.
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    initializers = {t.name for t in graph.initializer}
    for inp in graph.input:
        if inp.name in initializers or not inp.type.HasField("tensor_type"):
            continue
        if not inp.type.tensor_type.HasField("shape"):
            raise EdgeCNNError(f"ONNX input {inp.name!r} has no declared shape; its shape is "
                               "needed to count the graph")
        dims = inp.type.tensor_type.shape.dim
        declared = _shape_text(dims)
        spatial = len(dims) == 4
        for axis, dim in enumerate(dims):
            if axis == 0:
                dim.Clear()
                dim.dim_value = 1  # counts are of one image
            elif dim.HasField("dim_value"):
                if spatial and axis >= 2 and resolution not in (None, dim.dim_value):
                    raise EdgeCNNError(
                        f"ONNX input {inp.name!r} is fixed at {declared}; "
                        f"resolution={resolution} does not apply (leave it unset or use "
                        f"{dim.dim_value})")
            elif spatial and axis >= 2:
                if resolution is None and symbolic_ok:
                    continue
                if resolution is None:
                    raise EdgeCNNError(
                        f"ONNX input {inp.name!r} has symbolic height/width {declared}; set "
                        "model.resolution (the resolution argument) to count it")
                dim.Clear()
                dim.dim_value = resolution
            else:
                raise EdgeCNNError(
                    f"ONNX input {inp.name!r} has symbolic dimension {axis} in {declared}; "
                    "only the batch and a 4-D input's height/width may be symbolic")
    del graph.value_info[:]
    for out in graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    for tensor in graph.initializer:
        # Inference reads a weight's dims, never its values: dropping large weights' data saves
        # serialising them (1 s for ResNet-152). Small ones (Resize scales) are read.
        if math.prod(tensor.dims) > _SMALL and tensor.data_type not in _INT_TYPES:
            for name in ("raw_data", "float_data", "double_data", "int32_data", "external_data"):
                tensor.ClearField(name)
            tensor.data_location = 0  # DEFAULT: nothing external left to resolve
    _fold_constants(copy)
    try:
        return onnx.shape_inference.infer_shapes(copy, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception as exc:  # InferenceError / ValidationError of a malformed graph
        raise EdgeCNNError(f"ONNX shape inference failed: {first_line(exc)}") from exc


def _fold_constants(model: onnx.ModelProto) -> int:
    """Replace each node that computes a small constant by a Constant of its value; return how
    many were replaced.

    Exporters compute some shapes in the graph (torch's F.pad builds its pads with
    ConstantOfShape/Concat/Reshape/Slice/Transpose, TF-'SAME' padding from the Shape of its
    input), and ONNX shape inference propagates values through only a few ops, so such a Pad's
    output, and every shape after it, would lose dimensions. One pass in graph order infers each
    node's output types (``infer_node_outputs``) and folds a node whose inputs are all constant,
    or a Shape/Size of a tensor whose shape is now fully known, with the reference evaluator.
    A folded node keeps its name and position, so labels and indexes are unchanged.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    opsets = list(model.opset_import)
    versions = {o.domain or "": o.version for o in opsets}
    types: dict[str, Any] = {v.name: v.type for v in graph.input}
    values: dict[str, Any] = {}
    for t in graph.initializer:
        types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
        if math.prod(t.dims) <= _SMALL and t.data_location != onnx.TensorProto.EXTERNAL:
            values[t.name] = t
    folded = 0
    for index, node in enumerate(graph.node):
        inputs = [name for name in node.input if name]
        result = None
        if node.domain not in _DEFAULT_DOMAINS:
            continue
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                types[node.output[0]] = helper.make_tensor_type_proto(value.data_type,
                                                                      list(value.dims))
                if math.prod(value.dims) <= _SMALL:
                    values[node.output[0]] = value
                continue
        known = _static_dims(types.get(inputs[0])) if inputs else None
        if node.op_type in ("Shape", "Size") and known is not None:
            if node.op_type == "Size":
                result = np.array(math.prod(known), np.int64)
            else:
                start, end = _int_attr(node, "start", 0), _int_attr(node, "end", len(known))
                result = np.array(known[start:end], np.int64)
        elif (len(node.output) == 1 and node.op_type not in _RANDOM_OPS
                and all(name in values for name in inputs)
                and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                            for a in node.attribute)):
            result = _evaluate(node, values, opsets, model.ir_version, ReferenceEvaluator)
        if result is not None and result.size <= _SMALL:
            tensor = numpy_helper.from_array(np.asarray(result), node.output[0])
            _replace_by_constant(graph, index, tensor)
            values[node.output[0]] = tensor
            types[node.output[0]] = helper.make_tensor_type_proto(tensor.data_type,
                                                                  list(tensor.dims))
            folded += 1
            continue
        if any(name not in types for name in inputs):
            continue  # after a node inference cannot follow; the final pass tries again
        try:
            schema = onnx.defs.get_schema(node.op_type, versions.get(node.domain, 1),
                                          node.domain)
            types.update(onnx.shape_inference.infer_node_outputs(
                schema, node, {name: types[name] for name in inputs},
                {name: values[name] for name in inputs if name in values},
                opset_imports=opsets, ir_version=model.ir_version))
        except Exception:  # no schema, or a rule that needs more: the final pass decides
            continue
    return folded


def _evaluate(node: Any, values: dict, opsets: list, ir_version: int, evaluator: Any) -> Any:
    """The value of ``node`` computed from constant inputs, or None where the reference
    implementation cannot run it."""
    import onnx
    from onnx import helper

    inits = []
    for name in dict.fromkeys(n for n in node.input if n):
        inits.append(onnx.TensorProto())
        inits[-1].CopyFrom(values[name])
        inits[-1].name = name  # a Constant's tensor is often unnamed
    out = helper.make_value_info(node.output[0], onnx.TypeProto())
    tiny = helper.make_model(helper.make_graph([node], "fold", [], [out], inits),
                             opset_imports=opsets, ir_version=ir_version)
    try:
        (result,) = evaluator(tiny).run(None, {})
    except Exception:  # best effort: the node stays as it is
        return None
    return result


def _static_dims(type_proto: Any) -> tuple[int, ...] | None:
    if type_proto is None or not type_proto.HasField("tensor_type"):
        return None
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def _replace_by_constant(graph: Any, index: int, tensor: Any) -> None:
    from onnx import helper

    node = graph.node[index]
    graph.node[index].CopyFrom(helper.make_node("Constant", [], [node.output[0]],
                                                name=node.name, value=tensor))


def node_label(node: Any, index: int) -> str:
    """The node's name, or ``OpType#index`` for the unnamed nodes some exporters write."""
    return node.name or f"{node.op_type}#{index}"


class _Graph:
    """The inferred top-level graph, indexed for the lookups the counting makes."""

    def __init__(self, graph: Any) -> None:
        self.nodes = list(graph.node)
        self.initializers = {t.name: tuple(t.dims) for t in graph.initializer}
        self.producers = {out: node for node in self.nodes for out in node.output}
        self.shapes = _known_shapes(graph)

    def shape(self, name: str, node: Any, index: int, what: str,
              needed: slice = slice(None)) -> tuple[int, ...]:
        """The shape of ``name``, whose ``needed`` dimensions must be known after inference, or
        an error naming the node that needs them. (Inference sometimes loses only the batch,
        after a Pad whose pads are computed, say; a conv's count does not depend on it.)"""
        shape = self.shapes.get(name)
        if shape is None or any(d is None for d in shape[needed]):
            got = "unknown" if shape is None else str([d if d is not None else "?"
                                                       for d in shape])
            raise EdgeCNNError(
                f"ONNX node {node_label(node, index)} ({node.op_type}): the shape of its {what} "
                f"{name!r} is {got} after shape inference, so its mult-adds cannot be counted "
                "(is the graph valid, and does every op before it have a shape-inference rule?)")
        return shape  # type: ignore[return-value]

    def weight(self, node: Any, index: int, pos: int) -> tuple[int, ...]:
        """A weight's shape: from its initializer, its Constant node, the initializer behind a
        DequantizeLinear (QDQ graphs), or else from shape inference."""
        if len(node.input) <= pos or not node.input[pos]:
            raise EdgeCNNError(f"ONNX node {node_label(node, index)} ({node.op_type}) has no "
                               f"input {pos}")
        name = node.input[pos]
        for _ in range(2):  # the weight itself, then what a DequantizeLinear dequantizes
            if name in self.initializers:
                return self.initializers[name]
            producer = self.producers.get(name)
            if producer is None:
                break
            if producer.op_type == "Constant":
                for attr in producer.attribute:
                    if attr.name == "value":
                        return tuple(attr.t.dims)
                break
            if producer.op_type != "DequantizeLinear" or not producer.input:
                break
            name = producer.input[0]
        return self.shape(node.input[pos], node, index, "weight")


def _conv_macs(graph: _Graph, node: Any, index: int) -> int:
    data_pos, weight_pos = _CONV_OPS.get(node.op_type, (0, 1))
    label = node_label(node, index)
    weight = graph.weight(node, index, weight_pos)
    if len(weight) != 4:
        raise EdgeCNNError(f"ONNX node {label} ({node.op_type}) has a {len(weight) - 2}-D kernel "
                           f"{list(weight)}; only 2-D convolutions are counted")
    groups = _int_attr(node, "group", 1)
    kernel = (weight[2], weight[3])
    try:
        if node.op_type == "ConvTranspose":
            # Weight [C_in, C_out/groups, kh, kw]; every input pixel scatters a kh x kw x
            # (C_out/groups) window: the adjoint of a conv from C_out to C_in on the input
            # grid, so H_in * W_in * C_in * (C_out/groups) * kh * kw.
            height, width = graph.shape(node.input[data_pos], node, index, "input",
                                        slice(2, None))[2:]
            return conv2d_macs(weight[1] * groups, weight[0], kernel, (height, width), groups)
        # Weight [C_out, C_in/groups, kh, kw]; the output grid sets the work.
        height, width = graph.shape(node.output[0], node, index, "output", slice(2, None))[2:]
        return conv2d_macs(weight[1] * groups, weight[0], kernel, (height, width), groups)
    except ValueError as exc:
        raise EdgeCNNError(f"ONNX node {label} ({node.op_type}): {exc}") from exc


def _matmul_macs(graph: _Graph, node: Any, index: int) -> int:
    label = node_label(node, index)
    if node.op_type == "Gemm":
        # Y[M, N] = A[M, K] @ B[K, N] (either transposed); M is the batch, 1 here.
        b = graph.weight(node, index, 1)
        if len(b) != 2:
            raise EdgeCNNError(f"ONNX node {label} (Gemm) has operand {list(b)}; Gemm takes "
                               "2-D operands")
        k, n = (b[1], b[0]) if _int_attr(node, "transB", 0) else (b[0], b[1])
        a = graph.shape(node.input[0], node, index, "first operand", slice(None))
        if len(a) != 2:
            raise EdgeCNNError(f"ONNX node {label} (Gemm) has operand {list(a)}; Gemm takes "
                               "2-D operands")
        m = a[1] if _int_attr(node, "transA", 0) else a[0]
        return linear_macs(k, n, m)
    a_pos, _ = _MATMUL_OPS[node.op_type]
    # numpy matmul semantics: every output element is a dot product over A's last dimension.
    out = graph.shape(node.output[0], node, index, "output", slice(1, None))
    a = graph.shape(node.input[a_pos], node, index, "first operand", slice(-1, None))
    if not a:
        raise EdgeCNNError(f"ONNX node {label} ({node.op_type}) has a scalar operand")
    k = a[-1]
    if len(out) < 2:  # a vector result: no batch dimension to leave out
        return linear_macs(k, out[0] if out else 1)
    # Dimension 0 is the batch (1 here), so this is one image's count; the torch profiler counts
    # a Linear on [N, ..., in] the same way, as rows = numel / out_features / N.
    return linear_macs(k, out[-1], math.prod(out[1:-1]))


def _known_shapes(graph: Any) -> dict[str, tuple[int | None, ...]]:
    shapes: dict[str, tuple[int | None, ...]] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if value.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                       for d in tensor_type.shape.dim)
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return shapes


def _int_attr(node: Any, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def all_nodes(graph: Any):
    """Every node, including those in If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from all_nodes(attr.g)
            for sub in attr.graphs:
                yield from all_nodes(sub)


def _all_initializers(graph: Any):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_initializers(attr.g)
            for sub in attr.graphs:
                yield from _all_initializers(sub)


def _shape_text(dims: Any) -> str:
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in dims) + "]"


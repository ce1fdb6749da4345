"""Which ops of a .tflite model compute in float, and which layer of the torch model each came from.

A "full INT8" model can still compute in float where the quantizer left an op it does not
support: the graph then holds DEQUANTIZE -> float op -> QUANTIZE islands, which cost accuracy
nothing but cost speed and rule out integer-only accelerators. :func:`inspect_ops` lists every
op with its tensor types and classifies them:

- ``float_ops``: ops other than QUANTIZE/DEQUANTIZE with a float activation input or output
  (constant inputs are weights; a dynamic-range op with int8 weights and float activations is a
  float op here, which it is for the activations);
- ``io_conversions``: the QUANTIZE of a float graph input and the DEQUANTIZE to a float graph
  output, which is what ``io="float"`` asks for;
- ``float_conversions``: every other QUANTIZE/DEQUANTIZE between float and integer activations
  (the edges of a float island). DEQUANTIZE of a constant (FP16 weights) is neither: it is
  unpacked once at load time.

The layer of an op comes from its output tensor's name, which litert-torch builds from the torch
module path (``pkg.MobileNetV3/pkg.Sequential_features/pkg.ConvNormAct_0/...`` -> ``features.0``).
Reading uses ai-edge-litert's generated schema (flatbuffers), lazily, without unpacking weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.backends.tflite_metadata import tflite_bytes

FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")
# The wrapper litert-torch puts around a module for channels-last I/O; not a layer of the model.
_IO_WRAPPERS = ("ChannelLastIOWrapper",)


@dataclass(frozen=True)
class OpInfo:
    index: int
    op: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    layer: str  # dotted torch module path ("features.3.block.1"), "" if unknown
    tensor: str  # the op's output tensor name, as the converter wrote it

    def describe(self) -> str:
        where = f" in layer {self.layer!r}" if self.layer else f" (tensor {self.tensor!r})"
        return (f"{self.op} #{self.index}{where}: {','.join(self.input_types)} -> "
                f"{','.join(self.output_types)}")

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.op, "inputs": list(self.input_types),
                "outputs": list(self.output_types), "layer": self.layer}


@dataclass
class OpReport:
    ops: list[OpInfo]
    float_ops: list[OpInfo] = field(default_factory=list)
    io_conversions: list[OpInfo] = field(default_factory=list)
    float_conversions: list[OpInfo] = field(default_factory=list)
    input_types: tuple[str, ...] = ()
    output_types: tuple[str, ...] = ()

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.op] = counts.get(op.op, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict:
        return {
            "op_counts": self.op_counts(), "input_types": list(self.input_types),
            "output_types": list(self.output_types),
            "float_ops": [o.to_dict() for o in self.float_ops],
            "io_conversions": [o.to_dict() for o in self.io_conversions],
            "float_conversions": [o.to_dict() for o in self.float_conversions],
        }


def inspect_ops(model: str | Path | bytes) -> OpReport:
    """Classify every op of the model's main subgraph (see the module docstring)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = tflite_bytes(model)
    fb = schema.Model.GetRootAs(buf, 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    codes = []
    for i in range(fb.OperatorCodesLength()):
        code = fb.OperatorCodes(i)
        # Builtin codes above 127 live only in the newer int32 field (schema v3a).
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        codes.append(custom.decode() if custom else op_names.get(builtin, str(builtin)))
    graph = fb.Subgraphs(0)

    def tensor_type(t: int) -> str:
        return type_names.get(graph.Tensors(t).Type(), "?")

    def is_constant(t: int) -> bool:
        buffer = fb.Buffers(graph.Tensors(t).Buffer())
        return buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)

    graph_inputs = {graph.Inputs(i) for i in range(graph.InputsLength())}
    graph_outputs = {graph.Outputs(i) for i in range(graph.OutputsLength())}
    report = OpReport(ops=[],
                      input_types=tuple(tensor_type(t) for t in sorted(graph_inputs)),
                      output_types=tuple(tensor_type(t) for t in sorted(graph_outputs)))
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        inputs = [op.Inputs(i) for i in range(op.InputsLength()) if op.Inputs(i) >= 0]
        outputs = [op.Outputs(i) for i in range(op.OutputsLength())]
        name = graph.Tensors(outputs[0]).Name().decode() if outputs else ""
        info = OpInfo(index, codes[op.OpcodeIndex()], tuple(tensor_type(t) for t in inputs),
                      tuple(tensor_type(t) for t in outputs), layer_of_tensor(name), name)
        report.ops.append(info)
        float_activation_in = any(tensor_type(t) in FLOAT_TYPES and not is_constant(t)
                                  for t in inputs)
        float_out = any(tensor_type(t) in FLOAT_TYPES for t in outputs)
        if info.op in CONVERSION_OPS:
            if info.op == "DEQUANTIZE" and all(is_constant(t) for t in inputs):
                continue  # unpacking FP16/int8 weights once at load time
            at_boundary = (info.op == "QUANTIZE" and set(inputs) <= graph_inputs) or (
                info.op == "DEQUANTIZE" and set(outputs) <= graph_outputs)
            if at_boundary:
                report.io_conversions.append(info)
            elif float_activation_in or float_out:
                report.float_conversions.append(info)
        elif float_activation_in or float_out:
            report.float_ops.append(info)
    return report


def layer_of_tensor(name: str) -> str:
    """The torch module path encoded in a litert-torch tensor name ("" if there is none).

    Each ``/``-separated part is ``<module>.<Class>_<attribute>``; the attribute names make the
    path. The first part is the root module (no attribute).
    """
    first = next((part for part in name.split(";") if part), "")
    parts = first.split("/")
    if len(parts) < 2:
        return ""
    path = []
    for i, part in enumerate(parts[1:], start=1):
        class_and_attr = part[part.rfind(".") + 1:]
        if "_" not in class_and_attr:
            return ".".join(path)
        attr = class_and_attr.split("_", 1)[1]
        if i == 1 and parts[0].rsplit(".", 1)[-1] in _IO_WRAPPERS:
            continue  # the channels-last wrapper's own attribute ("wrapped")
        path.append(attr)
    return ".".join(path)

"""What of an INT8 artifact its runtime does not run in integer arithmetic, and why that matters.

An INT8 model is only as fast as the part of it the runtime's int8 kernels take: every op left
in float costs a dequantize/requantize round trip (ONNX Runtime), an f32 kernel (OpenVINO), or
a break in the delegated graph (LiteRT/XNNPACK: each partition boundary hands tensors back to
TFLite's own kernels). When INT8 is not faster than FP32 the report names these ops, so the user
sees which layers to change rather than only "ship FP32". Each runtime is asked in its own
terms:

- ONNX Runtime: nodes of the Q/DQ graph that ORT's QDQ fusions cannot take because they are not
  wrapped as DequantizeLinear -> op -> QuantizeLinear (their inputs are not all dequantized
  tensors, or their output is not requantized): they run in float.
- OpenVINO: the compiled runtime model's layers whose ``runtimePrecision`` is f32 (the CPU
  plugin's own record of what it executes, after its fusions).
- LiteRT: the number of XNNPACK delegate partitions (one is the whole graph) and the ops the
  file computes in float (:func:`edgecnn.backends.tflite_ops.inspect_ops`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Ops that only move or reshape data: ORT runs them on int8 tensors as they are, so a float
# one is no island of float compute worth naming.
DATA_MOVEMENT = {"Shape", "Constant", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                 "Transpose", "Gather", "Slice", "Concat", "Split"}
QDQ = {"QuantizeLinear", "DequantizeLinear"}
# OpenVINO layer types that compute (not constants, reorders, reshapes or the graph's ends)
OPENVINO_COMPUTE = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected",
                    "MatMul", "Eltwise", "Pooling", "Reduce", "Interpolate", "MVN", "Softmax"}


@dataclass
class Int8Coverage:
    backend: str
    float_ops: dict[str, int] = field(default_factory=dict)  # op type -> count left in float
    examples: list[str] = field(default_factory=list)  # a few of their names
    partitions: int | None = None  # XNNPACK delegate partitions (LiteRT, ExecuTorch)

    def describe(self) -> str:
        parts = []
        if self.partitions is not None:
            parts.append(f"{self.partitions} XNNPACK partition"
                         + ("s" if self.partitions != 1 else ""))
        if self.float_ops:
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.float_ops.items(),
                                                             key=lambda kv: -kv[1]))
            where = {"onnxruntime": "in float between DQ/Q", "openvino": "executed in f32",
                     "tflite": "computing in float"}.get(self.backend,
                                                         "outside the runtime's int8 kernels")
            parts.append(f"{sum(self.float_ops.values())} op(s) {where}: {ops}"
                         + (f" (e.g. {', '.join(self.examples)})" if self.examples else ""))
        else:
            parts.append("every compute op in int8")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


def onnx_float_islands(path: str | Path, examples: int = 3) -> Int8Coverage:
    """Compute nodes of a Q/DQ ONNX that are not DequantizeLinear -> node -> QuantizeLinear."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    counts: Counter[str] = Counter()
    names: list[str] = []
    for node in graph.node:
        if node.op_type in QDQ or node.op_type in DATA_MOVEMENT:
            continue
        activations = [i for i in node.input if i and i not in constants
                       and getattr(producer.get(i), "op_type", None) != "Constant"]
        if not activations:
            continue
        dequantized = all(getattr(producer.get(i), "op_type", None) == "DequantizeLinear"
                          for i in activations)
        requantized = all(c.op_type == "QuantizeLinear"
                          for out in node.output for c in consumers.get(out, [])) and any(
            consumers.get(out) for out in node.output)
        if not (dequantized and requantized):
            counts[node.op_type] += 1
            if len(names) < examples:
                names.append(node.name or node.op_type)
    return Int8Coverage("onnxruntime", dict(counts), names)


def openvino_f32_layers(compiled: Any, examples: int = 3) -> Int8Coverage:
    """Layers the OpenVINO CPU plugin executes in f32, from the compiled model's runtime graph."""
    counts: Counter[str] = Counter()
    names: list[str] = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind in OPENVINO_COMPUTE and info["runtimePrecision"].astype(str) in ("f32", "bf16"):
            counts[kind] += 1
            if len(names) < examples:
                names.append(op.get_friendly_name())
    return Int8Coverage("openvino", dict(counts), names)


def tflite_coverage(path: str | Path, interpreter: Any, examples: int = 3) -> Int8Coverage:
    """XNNPACK partitions of the interpreter's graph and the file's float compute ops."""
    from edgecnn.backends.tflite_ops import inspect_ops

    partitions = sum(1 for op in interpreter._get_ops_details() if op["op_name"] == "DELEGATE")
    floats = inspect_ops(path).float_ops
    counts = Counter(op.op for op in floats)
    return Int8Coverage("tflite", dict(counts), [op.describe() for op in floats[:examples]],
                        partitions)

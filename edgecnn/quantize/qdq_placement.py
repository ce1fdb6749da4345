"""Where a Q/DQ ONNX quantizes: each node's inputs by role, and a per-op table of them.

What TensorRT fuses depends on which *input* of an op is quantized -- a residual Add with Q/DQ
on its skip input only fuses into the branch's convolution, a squeeze-excite Mul with both
inputs quantized runs in INT8 -- so placements are compared per op type and input role, not
by counting Q/DQ nodes. Used by tests/quantize/test_tensorrt_layout.py and
benchmarks/tensorrt_placement.py to compare the tensorrt target with a direct ModelOpt run.

Roles: Conv/Gemm/MatMul ``act``/``weight``/``bias``; an Add of two computed tensors ``skip``
(the input whose producer is an ancestor of the other input) and ``branch``, or, when neither
is (ResNet's projection blocks), ``proj.main`` (the input with more ancestors of its own) and
``proj.shortcut``; a Mul of x and a (Hard)Sigmoid gate ``swish.x``/``swish.gate`` (or
``hswish``) when the gate reads x, else ``se.x``/``se.gate`` (squeeze-excite); every other op
``in`` (or ``in0``, ``in1``, ...). An input is ``dq`` when a DequantizeLinear feeds it,
``const`` when it is a constant, else ``float``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

QDQ = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED = ("Conv", "Gemm", "MatMul", "ConvTranspose")
GATES = ("Sigmoid", "HardSigmoid")
Placement = dict[str, tuple[str, dict[str, str]]]  # node -> (op type, {role: kind})


class _Graph:
    def __init__(self, path: Path) -> None:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        self.nodes = list(graph.node)
        self.consts = {i.name for i in graph.initializer}
        self.consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        self.producer = {o: n for n in graph.node for o in n.output}
        self._ancestors: dict[str, set[str]] = {}

    def source(self, name: str) -> tuple[str, str]:
        """(the float tensor behind ``name``, kind): through DQ (and Q) to what was quantized."""
        node = self.producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            return name, "const" if name in self.consts else "float"
        quantized = node.input[0]
        q = self.producer.get(quantized)
        if q is not None and q.op_type == "QuantizeLinear":
            quantized = q.input[0]
        return quantized, "dq"

    def ancestors(self, name: str) -> set[str]:
        """Names of the compute nodes upstream of tensor ``name`` (Q/DQ looked through)."""
        node = self.producer.get(self.source(name)[0])
        if node is None:
            return set()
        if node.name not in self._ancestors:
            seen, stack = {node.name}, [node]
            while stack:
                for tensor in stack.pop().input:
                    up = self.producer.get(self.source(tensor)[0]) if tensor else None
                    if up is not None and up.name not in seen:
                        seen.add(up.name)
                        stack.append(up)
            self._ancestors[node.name] = seen
        return self._ancestors[node.name]


def _roles(g: _Graph, node) -> list[tuple[int, str]]:
    op = node.op_type
    if op in WEIGHTED:
        names = ("act", "weight", "bias")
        return [(k, names[k]) for k, name in enumerate(node.input[:3]) if name]
    var = [k for k, name in enumerate(node.input) if name and g.source(name)[1] != "const"]
    if op == "Add" and len(var) == 2:
        a, b = (node.input[k] for k in var)
        up_a, up_b = g.producer.get(g.source(a)[0]), g.producer.get(g.source(b)[0])
        if up_a is not None and up_a.name in g.ancestors(b):
            return [(var[0], "skip"), (var[1], "branch")]
        if up_b is not None and up_b.name in g.ancestors(a):
            return [(var[1], "skip"), (var[0], "branch")]
        own_a = len(g.ancestors(a) - g.ancestors(b))
        own_b = len(g.ancestors(b) - g.ancestors(a))
        main = 0 if own_a >= own_b else 1
        return [(var[main], "proj.main"), (var[1 - main], "proj.shortcut")]
    if op == "Mul" and len(var) == 2:
        for x, gate in ((var[0], var[1]), (var[1], var[0])):
            up = g.producer.get(g.source(node.input[gate])[0])
            if up is not None and up.op_type in GATES:
                reads_x = g.source(up.input[0])[0] == g.source(node.input[x])[0]
                kind = ("swish" if up.op_type == "Sigmoid" else "hswish") if reads_x else "se"
                return [(x, f"{kind}.x"), (gate, f"{kind}.gate")]
    if len(var) == 1:
        return [(var[0], "in")]
    return [(k, f"in{k}") for k in var]


def placement(path: Path) -> Placement:
    """node name -> (op type, {role: "dq" | "float" | "const"}) for every compute node."""
    g = _Graph(path)
    return {node.name: (node.op_type, {role: g.source(node.input[k])[1]
                                       for k, role in _roles(g, node)})
            for node in g.nodes if node.op_type not in (*QDQ, "Constant")}


def role_table(nodes: Placement) -> dict[tuple[str, str], tuple[int, int]]:
    """(op, role) -> (inputs fed by a DequantizeLinear, inputs of that role)."""
    dq, total = Counter(), Counter()
    for op, roles in nodes.values():
        for role, kind in roles.items():
            total[op, role] += 1
            dq[op, role] += kind == "dq"
    return {key: (dq[key], total[key]) for key in sorted(total)}


def format_table(tables: dict[str, dict[str, dict[tuple[str, str], tuple[int, int]]]]) -> str:
    """Markdown: one row per (model, op, role), one column per placement, ``dq/total``.
    ``tables`` is model -> column name -> role_table."""
    columns = list(next(iter(tables.values())))
    lines = ["| model | op | input | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for model, by_column in tables.items():
        keys = sorted({k for table in by_column.values() for k in table})
        for op, role in keys:
            cells = []
            for column in columns:
                dq, total = by_column[column].get((op, role), (0, 0))
                cells.append(f"{dq}/{total}")
            lines.append(f"| {model} | {op} | {role} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""Torch-side rewrites that make a model's full-INT8 LiteRT graph run inside XNNPACK, and fast.

Why MobileNet v3 ran SLOWER in full INT8 than in FP32 (the ``static_wi8_ai8`` recipe of
ai-edge-quantizer, now litert-quantizer; ai-edge-litert 2.3): litert-torch lowers
``nn.Hardswish`` to one TFLite ``HARD_SWISH`` op, and XNNPACK's TFLite delegate takes
``HARD_SWISH`` only in float (its ``VisitHardSwishNode`` checks for float tensors). The
quantized graph therefore left all 21 int8 ``HARD_SWISH`` ops of
MobileNet v3-Large on TFLite's own kernels and cut the network into 22 XNNPACK partitions, with
a hand-over between delegate and interpreter at every activation (what
:meth:`edgecnn.backends.tflite_backend.TFLiteRunner.delegation` reports). The squeeze-excite
gates were not the problem: ``nn.Hardsigmoid`` already lowers to a convolution with a fused
RELU6 and a MUL, int8 ops XNNPACK runs.

The rewrites express hard-swish, ``x * relu6(x + 3) / 6``, in ops XNNPACK runs in int8:

- :func:`fold_hardswish_scale` (where the hard-swish output reaches only convolution/linear
  layers, through pooling, flatten, dropout or a product with a gate): the activation becomes
  ``x * relu6(x + 3)`` — an ADD with a fused RELU6 and a MUL — and the ``1/6`` moves into the
  weights of those layers (exact: they are linear in that input; biases are untouched). In
  MobileNet v3 this covers every hard-swish but the stem's, whose output also feeds a residual
  ADD.
- :func:`decompose_hardswish` (every other one): ``(x * 1/6) * relu6(x + 3)``, three int8 ops.

The written order matters: ``x * relu6(x + 3) / 6`` and ``x * hardsigmoid(x)`` match the
converter's fusion pattern and fold back into ``HARD_SWISH``; these forms do not. In FP32 the
single ``HARD_SWISH`` op is faster, so the rewrites apply to the full-INT8 conversion only, on a
copy of the model. Both compute the same function as ``nn.Hardswish`` up to float rounding.

Measured on MobileNet v3-Large, 224x224, batch 1, 2 threads, INT8/FP32 p50 in one run
(benchmarks/tflite_latency.py -> results/tflite_latency.json, 2-core AVX-512 VNNI EPYC):
no rewrite 2.36 (22 partitions), three-op decomposition everywhere 0.61 (1 partition),
decomposition + 1/6 folded into the next layers 0.51 (1 partition, 20 of 21 folded).
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any

from edgecnn._optional import require

if TYPE_CHECKING:
    from torch import nn

HARDSWISH_SCALE = 6.0


@functools.cache  # one class each, so every rewritten model holds the same module types
def _modules() -> tuple[type, type]:
    torch = require("torch", "the LiteRT export")
    functional = torch.nn.functional

    class Int8FriendlyHardswish(torch.nn.Module):
        """hard-swish as MUL, ADD+RELU6, MUL: ops XNNPACK runs in int8 (module docstring)."""

        def forward(self, x):
            return (x * (1.0 / 6.0)) * functional.relu6(x + 3.0)

    class ScaledHardswish(torch.nn.Module):
        """6 x hard-swish as ADD+RELU6, MUL; the consumers' weights carry the 1/6."""

        def forward(self, x):
            return x * functional.relu6(x + 3.0)

    return Int8FriendlyHardswish, ScaledHardswish


def decompose_hardswish(model: nn.Module) -> int:
    """Replace every ``nn.Hardswish`` submodule of ``model`` in place; returns how many.

    Only modules are rewritten: a ``functional.hardswish`` call inside a ``forward`` stays a
    ``HARD_SWISH`` op, which :meth:`TFLiteRunner.delegation` then reports as left outside XNNPACK.
    """
    torch = require("torch", "the LiteRT export")
    replacement = _modules()[0]
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Hardswish):
                setattr(parent, name, replacement())
                count += 1
    return count


def fold_hardswish_scale(model: nn.Module) -> int:
    """Rewrite the hard-swish modules whose 1/6 can move into the next linear layers, in place.

    Returns how many were rewritten. A model torch.fx cannot trace is left as it is (0): the
    plain decomposition then handles its hard-swish modules.
    """
    torch = require("torch", "the LiteRT export")
    if not any(isinstance(m, torch.nn.Hardswish) for m in model.modules()):
        return 0
    try:
        plan = _fold_plan(model)
    except (torch.fx.proxy.TraceError, RuntimeError, TypeError, NotImplementedError):
        # torch.fx cannot trace shape-dependent Python (len(x.shape), data-dependent ifs):
        # nothing is changed, and decompose_hardswish handles every hard-swish instead.
        return 0
    modules = dict(model.named_modules())
    layers = [layer for targets in plan.values() for layer in targets]
    if len(layers) != len(set(layers)):
        return 0  # a layer reached from two hard-swish outputs: not folded (never seen)
    with torch.no_grad():
        for layer in layers:
            modules[layer].weight.div_(HARDSWISH_SCALE)
    scaled = _modules()[1]
    for name in plan:
        parent, _, attribute = name.rpartition(".")
        setattr(modules[parent] if parent else model, attribute, scaled())
    return len(plan)


def _fold_plan(model: nn.Module) -> dict[str, set[str]]:
    """{hard-swish module path: linear layers that absorb its 1/6} for the foldable ones.

    From each ``nn.Hardswish`` call in the traced graph, the scaled value is followed through
    ops that pass a scale through unchanged (pooling, flatten/reshape, dropout, identity, a
    product with an unscaled value); every path must end in a Conv2d/Linear module, which takes
    it as its only input. Anything else (a residual ADD, BatchNorm, another activation, the
    model output, a product of two scaled values) makes that hard-swish not foldable.
    """
    torch = require("torch", "the LiteRT export")
    functional = torch.nn.functional
    linear = (torch.nn.Conv2d, torch.nn.Linear)
    pass_modules = (torch.nn.AdaptiveAvgPool2d, torch.nn.AvgPool2d, torch.nn.Dropout,
                    torch.nn.Identity, torch.nn.Flatten)
    pass_functions = (torch.flatten, functional.adaptive_avg_pool2d, functional.avg_pool2d,
                      functional.dropout)
    pass_methods = ("flatten", "view", "reshape", "mean")
    multiply = (operator.mul, torch.mul)

    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())

    def module_of(node: Any) -> Any:
        return modules.get(node.target) if node.op == "call_module" else None

    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    plan: dict[str, set[str]] = {}
    for node in graph.nodes:
        if not isinstance(module_of(node), torch.nn.Hardswish):
            continue
        scaled, targets, frontier, foldable = {node}, set(), [node], True
        while frontier and foldable:
            value = frontier.pop()
            for user in value.users:
                passes = (isinstance(module_of(user), pass_modules)
                          or (user.op == "call_function" and user.target in pass_functions)
                          or (user.op == "call_method" and user.target in pass_methods))
                product = user.op == "call_function" and user.target in multiply
                if isinstance(module_of(user), linear):
                    targets.add(user.target)
                elif (passes and user.args[0] is value) or product:
                    if user not in scaled:
                        scaled.add(user)
                        frontier.append(user)
                else:
                    foldable = False
                    break
        # x * x (or x * pool(x)) would carry the scale twice
        products = [n for n in scaled if n.op == "call_function" and n.target in multiply]
        if any(sum(arg in scaled for arg in n.args) != 1 for n in products):
            foldable = False
        # a layer called twice (shared weights) would be rescaled for its other input too, and a
        # Hardswish module called twice is swapped for every call, foldable or not
        if (foldable and targets and calls[node.target] == 1
                and all(calls[t] == 1 for t in targets)):
            plan[node.target] = targets
    return plan

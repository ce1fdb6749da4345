"""ONNX Runtime's INT8 quantization simulated in torch, for quantization-aware training.

:class:`QATModel` turns an FP32 model into a ``torch.fx`` graph that fake-quantizes what ONNX
Runtime's ``quantize_static`` (as :func:`edgecnn.quantize.onnxruntime_static.quantize_static_onnx`
calls it) quantizes, the way it quantizes it; :mod:`edgecnn.quantize.qat` trains it. The scheme
is ONNX Runtime's QDQ U8S8, read from ``onnxruntime.quantization`` 1.32:

* weights: symmetric int8, scale ``max|w| / 127`` (``/ 64`` with ``reduce_range``: 7-bit),
  per output channel or per tensor, recomputed from the current weights at every step (ONNX
  Runtime's weight ranges are the weights' own min/max);
* BatchNorm is folded into the preceding convolution (ONNX Runtime quantizes the folded
  weights, which matters for per-tensor scales) and frozen as an identity-scale bias, so the
  trained forward is the deployed one and the state_dict keys stay the model's own;
* activations: asymmetric uint8 per tensor over ``[min(lo, 0), max(hi, 0)]``, lo and hi the
  global min/max of the FP32 model over the calibration set (the build's ``minmax``), measured
  by :meth:`QATModel.calibrate`;
* placement: ONNX Runtime's QDQ rules, applied to a ``torch.fx`` trace: the inputs and output
  of every Conv, Linear (Gemm), Add, Mul, Concat, Sigmoid, global average pool (int8 after
  ``quantize_static_onnx(tuned=True)``'s rewrite) and unfolded BatchNorm are quantized, one
  quantizer per tensor shared by its consumers. A ReLU/ReLU6 after a quantized tensor with no
  other consumer costs no quantizer of its own: ONNX Runtime removes it into the next Q's range
  (``QDQRemovableActivation``) or, as ``quantize_static_onnx`` now keeps it in the file
  (``QDQKeepRemovableActivations``), fuses it at run time with the same outputs. Reshape,
  Flatten, Pad, Slice and MaxPool reuse their input's quantizer, as ONNX Runtime gives them
  their input's parameters.

tests/quantize/test_qat.py checks this against real ``quantize_static_onnx`` output: the same
quantizers with the same scales, and logits within one output quantization step of ONNX
Runtime's. The fake quantization itself is torch's kernels (``torch.fake_quantize_per_*``,
straight-through gradients) through ``torch.nn.utils.parametrize`` and ``torch.fx``; written
here is only the scheme and the placement, which no library offers for ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:
    import torch
    from torch import nn

ACTIVATION_QMIN, ACTIVATION_QMAX = 0, 255  # uint8, as ONNX Runtime's QUInt8 activations


# -- the quantizers ---------------------------------------------------------------------------


def resolve_reduce_range(reduce_range: bool | None) -> bool:
    """``None`` = what ``quantize_static_onnx`` decides for this CPU (7-bit weights only on x86
    without VNNI), so the simulation and the final quantization always agree."""
    if reduce_range is not None:
        return bool(reduce_range)
    from edgecnn.quantize.cpu_features import choose_reduce_range

    return choose_reduce_range().reduce_range


def _weight_qmax(reduce_range: bool) -> int:
    # ONNX Runtime's symmetric int8 weight range: [-127, 127], or [-64, 64] with reduce_range.
    return 64 if reduce_range else 127


@functools.cache
def _module_classes():
    """The nn.Module classes, defined on first use so that importing this module needs no torch."""
    import torch
    from torch import nn

    class WeightFakeQuant(nn.Module):
        """Symmetric int8 fake quantization of a weight (a parametrization), scale max|w|/qmax."""

        def __init__(self, per_channel: bool, reduce_range: bool) -> None:
            super().__init__()
            self.per_channel, self.qmax = per_channel, _weight_qmax(reduce_range)
            self.enabled = True

        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                return weight
            w = weight.detach()
            if self.per_channel:
                absmax = w.abs().reshape(w.shape[0], -1).amax(dim=1)
            else:
                absmax = w.abs().amax().reshape(1)
            # As compute_scale_zp: (2 * absmax) / (qmax - qmin) in float64, then the stored dtype;
            # a range too small to represent gets scale 1 (the weight quantizes to zero).
            scale = (absmax.double() / self.qmax).float()
            scale = torch.where(scale < torch.finfo(torch.float32).tiny,
                                torch.ones_like(scale), scale)
            if self.per_channel:
                zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
                return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0,
                                                              -self.qmax, self.qmax)
            zero = torch.zeros(1, dtype=torch.int32, device=w.device)
            return torch.fake_quantize_per_tensor_affine(weight, scale, zero,
                                                         -self.qmax, self.qmax)

        def extra_repr(self) -> str:
            return f"per_channel={self.per_channel}, qmax={self.qmax}, enabled={self.enabled}"

    class ActivationFakeQuant(nn.Module):
        """Asymmetric uint8 fake quantization of one tensor, its range from calibration.

        ``observing`` = pass the tensor through and widen the observed [lo, hi] (a calibration
        pass); otherwise quantize with the scale and zero point ONNX Runtime derives from it.
        """

        def __init__(self, name: str) -> None:
            super().__init__()
            self.tensor_name = name
            self.register_buffer("lo", torch.tensor(math.inf))
            self.register_buffer("hi", torch.tensor(-math.inf))
            self.register_buffer("scale", torch.ones(1))
            self.register_buffer("zero_point", torch.zeros(1, dtype=torch.int32))
            self.observing, self.enabled, self.calibrated = False, True, False

        def reset(self) -> None:
            self.lo.fill_(math.inf)
            self.hi.fill_(-math.inf)

        def freeze_range(self) -> None:
            """Scale and zero point from the observed range, as ONNX Runtime's compute_scale_zp."""
            if not math.isfinite(float(self.lo)):
                raise EdgeCNNError(f"QAT: tensor {self.tensor_name} was never reached during "
                                   "calibration; the model's forward skips it")
            rmin = min(float(self.lo), 0.0)
            rmax = max(float(self.hi), 0.0)
            scale = np.float64(rmax - rmin) / (ACTIVATION_QMAX - ACTIVATION_QMIN)
            if np.float32(scale) < np.finfo(np.float32).tiny:
                scale_f32, zero = np.float32(1.0), 0
            else:
                zero = int(np.round(ACTIVATION_QMIN - rmin / scale))
                scale_f32 = np.float32(scale)
            self.scale.fill_(float(scale_f32))
            self.zero_point.fill_(zero)
            self.calibrated = True

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.observing:
                with torch.no_grad():
                    self.lo.copy_(torch.minimum(self.lo, x.detach().amin()))
                    self.hi.copy_(torch.maximum(self.hi, x.detach().amax()))
                return x
            if not self.enabled:
                return x
            return torch.fake_quantize_per_tensor_affine(
                x, self.scale, self.zero_point, ACTIVATION_QMIN, ACTIVATION_QMAX)

        def extra_repr(self) -> str:
            return (f"tensor={self.tensor_name}, scale={float(self.scale):.6g}, "
                    f"zero_point={int(self.zero_point)}")

    return WeightFakeQuant, ActivationFakeQuant


# -- graph analysis: where ONNX Runtime puts Q/DQ ---------------------------------------------


def _tracer():
    import torch.fx
    from torch import nn

    class LayerTracer(torch.fx.Tracer):
        """Keeps every Conv/Linear/BatchNorm as one call (subclasses such as TF-'SAME' convs)."""

        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            leaf = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)
            return isinstance(m, leaf) or super().is_leaf_module(m, qualname)

    return LayerTracer()


def _is_global_average_pool(node, modules: dict[str, nn.Module]) -> bool:
    import torch
    import torch.nn.functional as F
    from torch import nn

    if node.op == "call_module":
        m = modules[node.target]
        return isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        return size in (1, (1, 1))
    if (node.op == "call_function" and node.target is torch.mean) or (
            node.op == "call_method" and node.target == "mean"):
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return isinstance(dims, (tuple, list)) and sorted(d % 4 for d in dims) == [2, 3]
    return False


def _kind(node, modules: dict[str, nn.Module], tuned: bool) -> str:
    """'conv', 'linear', 'bn', 'relu' (removable by ONNX Runtime), 'op' (quantized in and out)
    or 'other' (left in float unless a neighbour quantizes its tensors)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    if tuned and _is_global_average_pool(node, modules):
        return "op"  # quantize_static_onnx(tuned=True) makes it an int8 GlobalAveragePool
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, nn.modules.conv._ConvNd):
            return "conv"
        if isinstance(m, nn.Linear):
            return "linear"
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "bn"
        if isinstance(m, nn.ReLU) or (isinstance(m, nn.Hardtanh) and m.min_val == 0.0):
            return "relu"  # ReLU6 is a Hardtanh(0, 6): exported as Clip(0, 6)
        if isinstance(m, (nn.Sigmoid, nn.LeakyReLU, nn.Softmax)):
            return "op"
        return "other"
    if node.op == "call_function":
        if node.target in (F.relu, torch.relu, F.relu6):
            return "relu"
        if node.target is F.hardtanh and node.kwargs.get("min_val", -1.0) == 0.0:
            return "relu"
        if node.target in (operator.add, operator.iadd, torch.add, operator.mul, operator.imul,
                           torch.mul, torch.cat, torch.concat, torch.sigmoid, F.sigmoid,
                           torch.matmul, operator.matmul, F.leaky_relu, F.softmax):
            return "op"
        return "other"
    if node.op == "call_method":
        if node.target in ("relu", "relu_"):
            return "relu"
        if node.target in ("add", "add_", "mul", "mul_", "sigmoid", "matmul", "softmax"):
            return "op"
    return "other"


def _passes_grid_through(node, modules: dict[str, nn.Module]) -> bool:
    """Ops whose output lies on their input's quantization grid: identity-like, shape and
    zero-padding ops, slicing and max pooling. ONNX Runtime quantizes them with their input's
    parameters (``QDQDirect8BitOp``, ``QDQPad``, ``QDQMaxPool``), so a consumer that quantizes
    their output is, in effect, quantizing their input."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    if node.op == "call_module":
        return isinstance(modules[node.target], (nn.Identity, nn.Flatten, nn.MaxPool2d,
                                                 nn.modules.dropout._DropoutNd))
    if node.op == "call_function":
        if node.target is operator.getitem:
            index = node.args[1]
            parts = index if isinstance(index, tuple) else (index,)
            return any(isinstance(p, slice) for p in parts)
        if node.target is F.pad:
            return node.kwargs.get("mode", "constant") == "constant" and not node.kwargs.get(
                "value") and (len(node.args) < 3 or node.args[2] == "constant") and (
                len(node.args) < 4 or not node.args[3])
        return node.target in (torch.flatten, torch.reshape, F.dropout, F.max_pool2d)
    if node.op == "call_method":
        return node.target in ("flatten", "reshape", "view", "contiguous")
    return False


def _source(node, modules: dict[str, nn.Module]):
    """The tensor a consumer's quantizer really sits on (see :func:`_passes_grid_through`)."""
    import torch.fx

    while _passes_grid_through(node, modules) and isinstance(node.args[0], torch.fx.Node):
        node = node.args[0]
    return node


def _tensor_inputs(node, kind: str, modules: dict[str, nn.Module]) -> list:
    import torch.fx

    if kind in ("conv", "linear", "bn", "relu"):
        first = node.args[0] if node.args else None
        inputs = [first] if isinstance(first, torch.fx.Node) else []
    else:
        inputs = [n for n in node.all_input_nodes if n.op != "get_attr"]
    return [_source(n, modules) for n in inputs]


def _quantized_tensors(graph, modules: dict[str, nn.Module],
                       tuned: bool) -> tuple[list, list[tuple]]:
    """The nodes whose outputs ONNX Runtime's QDQ quantizer quantizes, in graph order, and the
    (conv, batchnorm) pairs it sees folded."""
    kinds = {n: _kind(n, modules, tuned) for n in graph.nodes}
    folds = []
    for node in graph.nodes:
        if kinds[node] == "bn":
            src = node.args[0]
            if kinds.get(src) == "conv" and len(src.users) == 1:
                folds.append((src, node))
    folded_bn = {bn for _, bn in folds}
    conv_of = {bn: conv for conv, bn in folds}
    marked: dict = {}  # insertion-ordered set
    for node in graph.nodes:
        kind = kinds[node]
        if node in folded_bn:
            # the folded conv's output is this node's output
            if conv_of[node] in marked:
                del marked[conv_of[node]]
                marked[node] = True
            continue
        if kind in ("conv", "linear", "bn", "op"):
            for src in _tensor_inputs(node, kind, modules):
                marked[src] = True
            marked[node] = True
        elif kind == "relu":
            (src,) = _tensor_inputs(node, kind, modules) or (None,)
            if src is None or src not in marked:
                continue  # a ReLU on a float tensor stays float in ONNX Runtime too
            if len(src.users) == 1 and src.op != "placeholder":
                del marked[src]  # removed; its output's range replaces its input's
            marked[node] = True
    return [n for n in graph.nodes if n in marked], folds


# -- preparing, calibrating and undoing the simulation ----------------------------------------


def _fold_batchnorm(conv: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn`` (eval statistics) into ``conv``'s weight; leave ``bn`` an identity-scale
    bias (gamma 1, mean 0, var 1 - eps, frozen), so the state_dict keys stay the model's own."""
    import torch

    with torch.no_grad():
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
        factor = gamma / std
        bias = beta - bn.running_mean * factor
        if conv.bias is not None:
            bias = bias + conv.bias * factor
            conv.bias.zero_()
        shape = (-1,) + (1,) * (conv.weight.ndim - 1)
        if isinstance(conv, torch.nn.modules.conv._ConvTransposeNd):
            raise EdgeCNNError("QAT: a BatchNorm after a transposed convolution is not supported")
        conv.weight.mul_(factor.reshape(shape))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        if bn.weight is not None:
            bn.weight.fill_(1.0)
            bn.weight.requires_grad_(False)  # a per-channel scale the weight quantizer can't see
        if bn.bias is not None:
            bn.bias.copy_(bias)
        else:
            raise EdgeCNNError("QAT: a BatchNorm without affine parameters cannot hold the "
                               "folded bias")


def _bias_add_instead_of(graph, bn_node, ndim: int) -> None:
    """In the training graph, a folded BatchNorm (identity scale) becomes ``x + bias``: the same
    values (to an ulp), without batch_norm's backward, a fifth of a MobileNet v2 QAT step."""
    shape = (1, -1) + (1,) * (ndim - 2)
    with graph.inserting_before(bn_node):
        bias = graph.get_attr(f"{bn_node.target}.bias")
        shaped = graph.call_method("view", (bias, shape))
        added = graph.call_function(operator.add, (bn_node.args[0], shaped))
    bn_node.replace_all_uses_with(added)
    graph.erase_node(bn_node)


class QATModel:
    """A model prepared for QAT: the eager FP32 model (BatchNorm folded) and a ``torch.fx``
    graph of it that runs the ONNX Runtime fake quantization; both share the parameters."""

    def __init__(self, model: nn.Module, *, per_channel: bool = True,
                 reduce_range: bool | None = None, tuned: bool = True) -> None:
        import torch
        import torch.fx
        from torch import nn
        from torch.nn.utils import parametrize

        weight_fq, act_fq = _module_classes()
        reduce_range = resolve_reduce_range(reduce_range)
        self.per_channel, self.reduce_range, self.tuned = per_channel, reduce_range, tuned
        self.model = copy.deepcopy(model).cpu().eval()  # the caller's model stays as it is
        try:
            graph = _tracer().trace(self.model)
        except Exception as exc:  # torch.fx reports data-dependent control flow this way
            raise EdgeCNNError(f"QAT needs a model torch.fx can trace; "
                               f"{type(self.model).__name__} failed: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        modules = dict(self.model.named_modules())
        quantized, folds = _quantized_tensors(graph, modules, tuned)
        self.bn_modules = [m for m in self.model.modules()
                           if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for conv, bn in folds:
            _fold_batchnorm(modules[conv.target], modules[bn.target])
        for bn in self.bn_modules:
            bn.momentum = 0.0  # frozen statistics even if something puts it in train mode
        self.folded_batchnorms = len(folds)
        # In-place activations would overwrite a quantizer's output shared with other consumers.
        for m in self.model.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
        self.weight_quantizers = []
        for m in self.model.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                fq = weight_fq(per_channel, reduce_range)
                parametrize.register_parametrization(m, "weight", fq)
                self.weight_quantizers.append(fq)
        self.graph_module = torch.fx.GraphModule(self.model, graph)
        self.activation_quantizers = []
        for i, node in enumerate(quantized):
            name = f"act_fq_{i}"
            fq = act_fq(node.name)
            self.graph_module.add_submodule(name, fq)
            self.activation_quantizers.append(fq)
            with self.graph_module.graph.inserting_after(node):
                q = self.graph_module.graph.call_module(name, (node,))
            node.replace_all_uses_with(q, delete_user_cb=lambda user, q=q: user is not q)
        for conv, bn in folds:
            _bias_add_instead_of(self.graph_module.graph, bn, modules[conv.target].weight.ndim)
        self.graph_module.graph.lint()
        self.graph_module.recompile()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_module(x)

    def train(self) -> None:
        """Train mode, except BatchNorm: it is folded and must not take batch statistics."""
        self.graph_module.train()
        for bn in self.bn_modules:
            bn.eval()

    def eval(self) -> None:
        self.graph_module.eval()

    @contextlib.contextmanager
    def _float_forward(self) -> Iterator[None]:
        for fq in self.weight_quantizers:
            fq.enabled = False
        for fq in self.activation_quantizers:
            fq.observing = True
        try:
            yield
        finally:
            for fq in self.weight_quantizers:
                fq.enabled = True
            for fq in self.activation_quantizers:
                fq.observing = False

    def calibrate(self, calibration: np.ndarray, batch_size: int = 256) -> None:
        """Activation ranges = global min/max over ``calibration`` of the FP32 model (minmax)."""
        import torch

        if len(calibration) == 0:
            raise EdgeCNNError("QAT needs at least one calibration sample")
        was_training = self.graph_module.training
        device = next(self.graph_module.parameters()).device
        self.eval()
        for fq in self.activation_quantizers:
            fq.reset()
        with torch.no_grad(), self._float_forward():
            for start in range(0, len(calibration), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(
                    calibration[start:start + batch_size], dtype=np.float32)).to(device)
                self.graph_module(batch)
        for fq in self.activation_quantizers:
            fq.freeze_range()
        if was_training:
            self.train()

    def float_model(self) -> nn.Module:
        """A copy of the eager FP32 model with the trained weights, without the quantizers."""
        from torch.nn.utils import parametrize

        model = copy.deepcopy(self.model)
        for m in model.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        for bn in (m for m in model.modules() if hasattr(m, "running_var")):
            if bn.weight is not None:
                bn.weight.requires_grad_(True)
        return model.eval()


def fake_quant_model(model: nn.Module, calibration: np.ndarray, *, per_channel: bool = True,
                     reduce_range: bool | None = None, tuned: bool = True) -> QATModel:
    """``model`` under ONNX Runtime's simulated quantization, calibrated on ``calibration``:
    what ``quantize_static_onnx`` with the same options computes, in torch (eval mode)."""
    qat = QATModel(model, per_channel=per_channel, reduce_range=reduce_range, tuned=tuned)
    qat.calibrate(np.asarray(calibration, dtype=np.float32))
    qat.eval()
    return qat

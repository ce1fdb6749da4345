"""Torch -> LiteRT (.tflite): FP32, FP16 weights, dynamic-range INT8 or full INT8, checked.

The conversion is litert-torch's (torch.export, then its own lowering to the TFLite flatbuffer;
no TensorFlow), quantization is litert-quantizer's (:mod:`edgecnn.quantize.litert_quantize`,
which says why it and not PT2E), and the result is written whole or not at all with the
deployment facts in the file (:mod:`edgecnn.backends.tflite_metadata`).

- ``precision``: ``fp32``; ``fp16`` (FP16 weights, float compute); ``dynamic_int8`` (int8
  weights, activations quantized on the fly); ``int8`` (full INT8 from ``calibration``).
- ``io``: ``float`` (the model takes and returns float32; QUANTIZE/DEQUANTIZE at the ends) or
  ``int8`` (int8 tensors in and out, their scale/zero point in the file; full INT8 only).
- ``layout``: ``NCHW`` (torch's) or ``NHWC`` (channels-last input, what mobile camera pipelines
  hand over; litert-torch's ``to_channel_last_io`` wrapper, whose transpose the converter folds
  into the graph's own NCHW->NHWC transpose, so the NHWC model has none at all).
- Full INT8 is integer-only: an op left computing in float is an EdgeCNNError naming the op and
  the layer it came from, unless ``allow_float_ops=True`` (then they are listed in the result).
  Before quantizing, hard-swish is rewritten into ops XNNPACK runs in int8
  (:mod:`edgecnn.export.tflite_rewrites` says why: it made MobileNet v3 slower than FP32).
- ``check_samples``: the .tflite is run on them beside the torch model (max |logit difference|,
  top-1 agreement), recorded in the result.
- An op litert-torch cannot lower fails with the op's name and the torch layer it came from.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.atomic import atomic_write_bytes
from edgecnn.backends.tflite_ops import OpReport
from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:
    from torch import nn

PRECISIONS = ("fp32", "fp16", "dynamic_int8", "int8")
IO_TYPES = ("float", "int8")
LAYOUTS = ("NCHW", "NHWC")


@dataclass
class NumericCheck:
    """The .tflite against the torch FP32 model on the same samples."""

    samples: int
    max_abs_diff: float
    top1_agreement: float

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "max_abs_diff": self.max_abs_diff,
                "top1_agreement": self.top1_agreement}


@dataclass
class TFLiteExport:
    path: Path
    precision: str
    io: str
    layout: str
    size_bytes: int
    float_size_bytes: int  # the FP32 flatbuffer the quantizer started from
    converter: str
    quantizer: str | None
    metadata: dict[str, str]
    ops: OpReport = field(repr=False)
    rewrites: dict[str, int] = field(default_factory=dict)
    calibration_samples: int = 0
    check: NumericCheck | None = None

    @property
    def float_ops(self) -> list[str]:
        return [op.describe() for op in self.ops.float_ops]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "precision": self.precision, "io": self.io,
            "layout": self.layout, "size_bytes": self.size_bytes,
            "float_size_bytes": self.float_size_bytes,
            "size_ratio_vs_float": self.size_bytes / self.float_size_bytes,
            "converter": self.converter, "quantizer": self.quantizer, "metadata": self.metadata,
            "rewrites": self.rewrites, "calibration_samples": self.calibration_samples,
            "ops": self.ops.to_dict(), "check": self.check.to_dict() if self.check else None,
        }


def export_tflite(
    model: nn.Module, path: Path, resolution: int, *, precision: str = "fp32",
    calibration: np.ndarray | None = None, io: str = "float", layout: str = "NCHW",
    check_samples: np.ndarray | None = None, allow_float_ops: bool = False,
    xnnpack_rewrites: bool = True, threads: int | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> TFLiteExport:
    """Convert ``model`` to ``path`` (see the module docstring for every option).

    ``calibration`` and ``check_samples`` are normalised float32 NCHW images (what the torch
    model takes), whatever ``layout`` the .tflite gets. ``xnnpack_rewrites=False`` skips the
    full-INT8 graph rewrites (to measure what they buy). ``threads`` is for calibration and the
    numeric check.
    """
    from edgecnn.backends.tflite_metadata import with_metadata
    from edgecnn.backends.tflite_ops import inspect_ops
    from edgecnn.export.onnx_export import model_metadata

    _check_options(precision, io, layout, calibration)
    expected = (model.card.in_chans, resolution, resolution)
    for name, samples in (("calibration", calibration), ("check_samples", check_samples)):
        if samples is not None and (samples.dtype != np.float32 or samples.ndim != 4
                                    or tuple(samples.shape[1:]) != expected):
            raise EdgeCNNError(f"tflite {name} must be normalised float32 images of shape "
                               f"(N, {', '.join(map(str, expected))}) (NCHW), got "
                               f"{samples.dtype} {samples.shape}")
    path = Path(path)
    model = model.eval().cpu()
    converted, converter, rewrites = convert_float(model, resolution, layout,
                                                   int8_rewrites=precision == "int8"
                                                   and xnnpack_rewrites)
    quantizer, samples, data = None, 0, converted
    if precision != "fp32":
        from edgecnn.quantize.litert_quantize import quantize_litert

        if calibration is not None and layout == "NHWC":
            calibration = np.ascontiguousarray(calibration.transpose(0, 2, 3, 1))
        result = quantize_litert(converted, precision, calibration=calibration, io=io,
                                 threads=threads)
        data, quantizer, samples = result.model, result.quantizer, result.calibration_samples
    ops = inspect_ops(data)
    if precision == "int8" and not allow_float_ops and (ops.float_ops or ops.float_conversions):
        leftover = ops.float_ops or ops.float_conversions
        raise EdgeCNNError(
            f"full INT8 conversion of {model.card.name} left {len(leftover)} op(s) computing "
            f"in float, first {leftover[0].describe()}; the quantizer cannot run this op in "
            "int8. Pass allow_float_ops=True to keep them in float, or change that layer")
    meta = {**model_metadata(model, resolution), "layout": layout, "precision": precision,
            "io": io, "format": "tflite", "converter": converter,
            "batch_resizable": "true" if batch_resizes_correctly(converted) else "false",
            **({"quantizer": quantizer} if quantizer else {}),
            **{k: str(v) for k, v in (extra_metadata or {}).items()}}
    data = with_metadata(data, meta)
    atomic_write_bytes(path, data)
    result = TFLiteExport(path, precision, io, layout, len(data), len(converted), converter,
                          quantizer, meta, ops, rewrites, samples)
    if check_samples is not None:
        result.check = numeric_check(model, path, check_samples, threads=threads)
    return result


def _check_options(precision: str, io: str, layout: str, calibration: np.ndarray | None) -> None:
    if precision not in PRECISIONS:
        raise EdgeCNNError(f"tflite precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if io not in IO_TYPES:
        raise EdgeCNNError(f"tflite io {io!r} is not one of {', '.join(IO_TYPES)}")
    if layout not in LAYOUTS:
        raise EdgeCNNError(f"tflite layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if io == "int8" and precision != "int8":
        raise EdgeCNNError(f"tflite io 'int8' needs precision 'int8' (full INT8), got "
                           f"{precision!r}")
    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise EdgeCNNError("tflite precision 'int8' needs calibration samples (normalised "
                           "float32 NCHW images, e.g. 512 train images drawn with "
                           "edgecnn.data.calibration_indices)")


def convert_float(model: nn.Module, resolution: int, layout: str = "NCHW", *,
                  int8_rewrites: bool = False) -> tuple[bytes, str, dict[str, int]]:
    """(FP32 .tflite bytes, "litert-torch <version>", {rewrite: count}) for a batch-1 input.

    The model is converted for batch 1 (what an edge device runs; litert-torch cannot keep the
    batch dynamic through ``flatten``); the runner resizes the input for other batch sizes
    where :func:`batch_resizes_correctly` found that safe.
    """
    import litert_torch
    import torch

    rewrites: dict[str, int] = {}
    module: torch.nn.Module = model
    if int8_rewrites:
        from edgecnn.export.tflite_rewrites import decompose_hardswish, fold_hardswish_scale

        module = copy.deepcopy(model)
        rewrites["hardswish_scale_folded_into_next_layers"] = fold_hardswish_scale(module)
        rewrites["hardswish_as_mul_add_relu6_mul"] = decompose_hardswish(module)
    shape = (1, model.card.in_chans, resolution, resolution)
    if layout == "NHWC":
        module = litert_torch.to_channel_last_io(module, args=[0])
        shape = (1, resolution, resolution, model.card.in_chans)
    sample = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    try:
        with _quiet_litert():
            data = litert_torch.convert(module.eval(), (sample,)).model_content()
    except Exception as exc:  # litert-torch raises whatever its lowering or torch.export raise
        raise EdgeCNNError(_conversion_failure(model.card.name, exc)) from exc
    return bytes(data), f"litert-torch {litert_torch.__version__}", rewrites


def batch_resizes_correctly(model: bytes) -> bool:
    """Whether resizing the batch-1 input to 3 gives the three single-image results.

    It does not always: litert-torch bakes the traced batch into some constants (the end of a
    STRIDED_SLICE, e.g. ResNet-20's ``x[:, :, ::2, ::2]`` shortcut), and the resized graph then
    runs but silently computes images 2..N wrong. The FP32 graph is checked (quantization keeps
    every shape); the runner resizes only a model marked resizable and otherwise runs a batch
    image by image.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    detail, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = np.random.default_rng(0).standard_normal((3, *detail["shape"][1:]), dtype=np.float32)
    singles = []
    for i in range(3):
        interpreter.set_tensor(detail["index"], x[i:i + 1])
        interpreter.invoke()
        singles.append(interpreter.get_tensor(output["index"]).copy())
    try:
        interpreter.resize_tensor_input(detail["index"], list(x.shape), strict=False)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
    except (ValueError, RuntimeError):
        return False
    batched, expected = interpreter.get_tensor(output["index"]), np.concatenate(singles)
    scale = max(1.0, float(np.abs(expected).max()))
    if batched.shape != expected.shape:
        return False
    return float(np.abs(batched - expected).max()) < 1e-4 * scale


def numeric_check(model: nn.Module, path: Path, samples: np.ndarray, *,
                  threads: int | None = None, batch_size: int = 32) -> NumericCheck:
    """Run the .tflite and the torch model on ``samples`` (normalised NCHW float32)."""
    import torch

    from edgecnn.backends.tflite_backend import TFLiteRunner

    runner = TFLiteRunner(path, threads=threads)
    diffs, agree = [], 0
    for start in range(0, len(samples), batch_size):
        x = np.ascontiguousarray(samples[start:start + batch_size], dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = runner.run(x)
        diffs.append(float(np.abs(got - expected).max()))
        agree += int((got.argmax(1) == expected.argmax(1)).sum())
    return NumericCheck(len(samples), max(diffs), agree / len(samples))


@contextlib.contextmanager
def _quiet_litert() -> Iterator[None]:
    """litert-torch prints a progress line per phase through its own rich console; the build
    prints its own. Its switch is an environment variable, restored afterwards."""
    old = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = old


def _conversion_failure(arch: str, exc: BaseException) -> str:
    """One message naming the op and the torch layer where litert-torch stopped.

    The lowering runs as a torch.fx interpreter over the exported graph; the node it was
    executing when it failed is a local of the interpreter's frame, and its metadata carries
    the op (``target``) and the module path (``nn_module_stack``).
    """
    reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    node = _failing_node(exc)
    if node is None:
        return f"LiteRT conversion of {arch} failed: {reason}"
    return (f"LiteRT conversion of {arch} failed at op {_op_name(node.target)} in layer "
            f"{_layer_of_node(node)!r}: litert-torch cannot convert it ({reason})")


def _failing_node(exc: BaseException) -> Any:
    import torch

    node = None
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("node")
        if isinstance(candidate, torch.fx.Node) and candidate.op == "call_function":
            node = candidate  # keep the innermost
        tb = tb.tb_next
    return node


def _op_name(target: Any) -> str:
    # An ATen overload prints as "aten.i0.default"; a plain function by its name.
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return getattr(target, "__name__", str(target))


def _layer_of_node(node: Any) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "<top level>"
    path, _ = list(stack.values())[-1]
    path = str(path)
    for prefix in ("L['self'].", "L__self__.", "wrapped."):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path or "<top level>"


def read_tflite_metadata(path: str | Path) -> dict[str, str]:
    """The metadata :func:`export_tflite` stored in ``path`` (no TensorFlow, no litert)."""
    from edgecnn.backends.tflite_metadata import read_metadata

    return read_metadata(path)


def export_summary(result: TFLiteExport) -> str:
    """One line for a build log."""
    ratio = result.size_bytes / result.float_size_bytes
    parts = [f"{result.path.name}: {result.precision}, io {result.io}, {result.layout}, "
             f"{result.size_bytes / 1e6:.2f} MB ({ratio:.2f}x the FP32 file)"]
    if result.precision == "int8":
        parts.append(f"{len(result.ops.float_ops)} float op(s)")
    if result.check:
        parts.append(f"vs torch on {result.check.samples} samples: max |diff| "
                     f"{result.check.max_abs_diff:.3g}, top-1 agreement "
                     f"{result.check.top1_agreement:.2%}")
    return ", ".join(parts)

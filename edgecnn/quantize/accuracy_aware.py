"""Accuracy-aware PTQ for the ONNX layouts: keep the most sensitive layers in float until the
top-1 drop fits ``max_accuracy_drop``.

ONNX Runtime has no accuracy-aware quantizer (NNCF's ``quantize_with_accuracy_control`` serves
the openvino target, openvino_nncf.py), so this loop is written here on top of
``quantize_static``'s ``nodes_to_exclude``:

1. full PTQ from one calibration table; evaluate; done if within budget;
2. rank the quantized weighted layers (Conv/Gemm/MatMul) by sensitivity: for each, the model
   is quantized with that one layer in float and run on a few calibration images, and the
   score is how much of the INT8 model's output error (mean squared difference from the FP32
   logits) that removes. This costs one quantization from the table (no recalibration) and one
   small inference per layer — seconds for CIFAR models — and, unlike a local per-tensor
   SQNR, it measures each layer's error where it matters: at the logits, after propagating
   through the rest of the network. A one-layer-in-float *accuracy* per layer would be the
   same idea with a noisier signal (a few hundred images move top-1 by whole points) at the
   price of a full evaluation per layer;
3. return layers to float in that order, one at a time, evaluating after each, until the drop
   is within budget; EdgeCNNError (budget and best reached) when even every candidate in
   float does not get there, and nothing is written.

The evaluation callback maps an ONNX file to top-1 (percent) on the caller's evaluation split,
so the same loop serves any split and either ONNX target (the tensorrt target's ModelOpt Q/DQ
ONNX evaluated by ONNX Runtime is a proxy for the engine). For ``layout="tensorrt"`` the layers
are those of the FP32 export, which ModelOpt quantizes (its ``nodes_to_exclude``), each model
built with the table's scales (modelopt_tensorrt.py); ModelOpt calibrates again on every
build (one run per ranked layer, in its worker process), so that layout's search takes longer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file
from edgecnn.quantize.calibration_table import (
    CalibrationTable,
    calibrate_prepared,
    load_calibration_table,
)
from edgecnn.quantize.onnxruntime_static import (
    QuantizeInfo,
    calibration_op_types,
    prepare_for_quantization,
    quantize_prepared,
)

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class FallbackStep:
    layer: str
    top1: float
    drop: float


@dataclass
class AccuracyAwareResult:
    path: Path
    budget: float
    fp32_top1: float
    ptq_top1: float
    top1: float
    fallback_layers: list[str]
    steps: list[FallbackStep]
    sensitivity: list[tuple[str, float]]
    info: QuantizeInfo
    notes: list[str] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)  # layer -> its weight tensor's name

    @property
    def drop(self) -> float:
        return self.fp32_top1 - self.top1

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "max_accuracy_drop": self.budget,
                "fp32_top1": self.fp32_top1, "ptq_top1": self.ptq_top1,
                "ptq_drop": self.fp32_top1 - self.ptq_top1, "top1": self.top1,
                "drop": self.drop, "fallback_layers": self.fallback_layers,
                "fallback_layer_weights": [self.weights.get(n, "") for n in self.fallback_layers],
                "steps": [asdict(s) for s in self.steps],
                "sensitivity": [{"layer": n, "error_removed": s} for n, s in self.sensitivity],
                "quantize": self.info.to_dict(), "notes": self.notes}


def quantize_with_accuracy_budget(
    fp32_path: Path, int8_path: Path, calibration: np.ndarray | None,
    evaluate: Callable[[Path], float], *, max_accuracy_drop: float,
    fp32_top1: float | None = None, table: CalibrationTable | str | Path | None = None,
    method: str = "minmax", per_channel: bool = True, reduce_range: bool | None = None,
    layout: str = "onnxruntime", sensitivity_samples: int = 64,
    max_fallbacks: int | None = None, batch_size: int = 16,
    progress: Callable[[str], None] | None = None,
) -> AccuracyAwareResult:
    """PTQ of ``fp32_path`` whose top-1 (by ``evaluate``) is at most ``max_accuracy_drop``
    points below FP32, written to ``int8_path``; see the module docstring. ``calibration``
    (normalised float32 NCHW) is needed for the sensitivity ranking even with a ``table``."""
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    say = progress or (lambda message: None)
    if max_accuracy_drop < 0:
        raise EdgeCNNError(f"quantize.max_accuracy_drop must be >= 0, got {max_accuracy_drop}")
    if calibration is None or len(calibration) == 0:
        raise EdgeCNNError("accuracy-aware quantization needs calibration images (also for "
                           "ranking layers by sensitivity)")
    if table is not None and not isinstance(table, CalibrationTable):
        table = load_calibration_table(table)
    if layout == "tensorrt":
        from edgecnn.quantize.modelopt_tensorrt import require_modelopt

        require_modelopt()
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=int8_path.parent, prefix=".accuracy-aware-"))
    try:
        prepared = work / "prepared.onnx"
        rewrites = prepare_for_quantization(fp32_path, prepared)
        model_sha = sha256_file(fp32_path)
        if table is None:
            table = calibrate_prepared(prepared, calibration, method=method,
                                       op_types=calibration_op_types(), model_sha256=model_sha,
                                       chunk=batch_size)
        else:
            table.check_model(model_sha, sha256_file(prepared), str(fp32_path))

        # the graph whose node names the quantizer excludes
        graph = _named_export(fp32_path, work) if layout == "tensorrt" else prepared
        groups = layer_groups(graph)

        def build(name: str, layers: list[str]) -> QuantizeInfo:
            nodes = [n for layer in layers for n in groups[layer]]
            if layout == "tensorrt":
                from edgecnn.quantize.modelopt_tensorrt import quantize_modelopt

                return quantize_modelopt(fp32_path, work / name, calibration, table=table,
                                         exclude_nodes=nodes)
            return quantize_prepared(prepared, work / name, table, layout=layout,
                                     per_channel=per_channel, reduce_range=reduce_range,
                                     exclude_nodes=nodes, metadata_from=fp32_path)

        if fp32_top1 is None:
            fp32_top1 = float(evaluate(fp32_path))
        info = build("ptq.onnx", [])
        ptq_top1 = float(evaluate(info.path))
        say(f"full PTQ: top-1 {ptq_top1:.2f}% (FP32 {fp32_top1:.2f}%, drop "
            f"{fp32_top1 - ptq_top1:.2f}, budget {max_accuracy_drop})")
        final, final_top1, excluded, steps = info, ptq_top1, [], []
        sensitivity: list[tuple[str, float]] = []
        if not _within(fp32_top1 - ptq_top1, max_accuracy_drop):
            sample = np.ascontiguousarray(calibration[:sensitivity_samples], dtype=np.float32)
            sensitivity = rank_layers(list(groups), fp32_path, info.path, sample, build)
            say("most sensitive layers: " + ", ".join(
                f"{n} ({s:.3g})" for n, s in sensitivity[:5]))
            limit = len(sensitivity) if max_fallbacks is None else max_fallbacks
            best_top1 = ptq_top1
            for layer, _ in sensitivity[:limit]:
                excluded.append(layer)
                candidate = build(f"fallback{len(excluded)}.onnx", list(excluded))
                top1 = float(evaluate(candidate.path))
                steps.append(FallbackStep(layer, top1, fp32_top1 - top1))
                say(f"  {layer} in float: top-1 {top1:.2f}% (drop {fp32_top1 - top1:.2f})")
                best_top1 = max(best_top1, top1)
                if _within(fp32_top1 - top1, max_accuracy_drop):
                    final, final_top1 = candidate, top1
                    break
            else:
                raise EdgeCNNError(
                    f"accuracy-aware PTQ could not meet quantize.max_accuracy_drop "
                    f"{max_accuracy_drop} points for {fp32_path.name}: FP32 {fp32_top1:.2f}%, "
                    f"full INT8 {ptq_top1:.2f}%, best {best_top1:.2f}% (drop "
                    f"{fp32_top1 - best_top1:.2f}) with up to {len(excluded)} layers in float")
        os.replace(final.path, int8_path)
        final.path = int8_path
        final.rewrites = rewrites + final.rewrites
        return AccuracyAwareResult(int8_path, max_accuracy_drop, fp32_top1, ptq_top1, final_top1,
                                   list(excluded), steps, sensitivity, final,
                                   weights=_weight_names(graph))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _named_export(fp32_path: Path, work: Path) -> Path:
    """The FP32 export with its nodes named as ModelOpt's run names them (modelopt_tensorrt)."""
    from edgecnn.quantize.modelopt_tensorrt import named_copy

    path = work / "named.onnx"
    named_copy(fp32_path, path, ())
    return path


def _weight_names(prepared: Path) -> dict[str, str]:
    """Weighted node -> its weight initializer (``blocks.6.0.conv_pw.weight`` says more in a
    report than ``node_Conv_865``)."""
    import onnx

    graph = onnx.load(str(prepared), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return {n.name: n.input[1] for n in graph.node
            if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in inits}


def _within(drop: float, budget: float) -> bool:
    """drop <= budget, ignoring float noise: 87.4 - 87.1 is 0.30000000000000426."""
    return round(drop, 6) <= budget


def rank_layers(layers: list[str], fp32_path: Path, int8_path: Path, sample: np.ndarray,
                build: Callable[[str, list[str]], QuantizeInfo]) -> list[tuple[str, float]]:
    """(layer, share of the INT8 output error removed by keeping it in float), most sensitive
    first. The error is the mean squared difference from the FP32 logits, relative to their
    mean square, on ``sample``."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

    reference = OnnxRuntimeRunner(fp32_path).run(sample).astype(np.float64)
    scale = float(np.mean(reference ** 2)) or 1.0

    def error(path: Path) -> float:
        out = OnnxRuntimeRunner(path).run(sample).astype(np.float64)
        return float(np.mean((out - reference) ** 2)) / scale

    full = error(int8_path)
    scores = []
    for layer in layers:
        candidate = build("sensitivity.onnx", [layer])
        scores.append((layer, full - error(candidate.path)))
        candidate.path.unlink()
    return sorted(scores, key=lambda item: item[1], reverse=True)


ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSwish")
GATES = ("Sigmoid", "HardSigmoid")


def layer_groups(prepared: Path) -> dict[str, list[str]]:
    """Weighted layer -> the nodes that go to float with it: the op and the pointwise
    activations between it and the op before (Relu, Clip, HardSwish, or SiLU/h-swish written
    as x * gate(x)) that feed only it. A layer's quantization is that of its *inputs* (and
    weights): for the layer's input to be float, the activation computing it must be float
    too, or its own input Q/DQ stays. Measured on ResNet-20 with an outlier channel planted
    after layer2.1's first ReLU: the Conv reading that tensor alone in float recovered 1 of 27
    points of agreement, Conv + ReLU all of them."""
    import onnx

    graph = onnx.load(str(prepared), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inputs = {i.name for i in graph.input}
    groups = {}
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        group, tensor = [node.name], node.input[0]
        while tensor not in inputs and len(consumers.get(tensor, [])) == 1:
            source = producer.get(tensor)
            if source is None:
                break
            if source.op_type in ACTIVATIONS:
                group.append(source.name)
                tensor = source.input[0]
                continue
            if source.op_type == "Mul" and len(source.input) == 2:  # x * gate(x)
                gates = [producer.get(i) for i in source.input]
                gate = next((g for g in gates if g is not None and g.op_type in GATES), None)
                other = [i for i in source.input if gate is None or i != gate.output[0]]
                if gate is not None and other == [gate.input[0]] and \
                        len(consumers.get(gate.output[0], [])) == 1:
                    group += [source.name, gate.name]
                    tensor = gate.input[0]
                    continue
            break
        groups[node.name] = group
    # Quantized ops outside those units (pooling, reshapes, shortcut pads, a squeeze-excite
    # gate's Mul) are candidates of their own: the pooling before a classifier alone moved
    # ResNet-20's logits by 0.7 with every Conv in float.
    grouped = {n for group in groups.values() for n in group}
    quantizable = set(calibration_op_types())
    for node in graph.node:
        if node.name not in grouped and node.op_type in quantizable:
            groups[node.name] = [node.name]
    return groups

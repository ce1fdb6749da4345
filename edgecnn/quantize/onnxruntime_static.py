"""Post-training static INT8 of an ONNX model as Q/DQ ONNX, laid out for ONNX Runtime's CPU kernels.

The model comes from ONNX Runtime's own quantizer (``quantize_static``, QDQ format) on a graph
prepared by its ``quant_pre_process`` (shape inference; graph optimisation, which also folds any
BatchNormalization left in the export into the convolutions — torch's exporter with onnxslim
already folds them). Activation ranges come from a :class:`CalibrationTable` — measured here
from the calibration array, or loaded from a file — so a run can be repeated without the data,
byte for byte.

``layout="onnxruntime"`` (ONNX Runtime's CPU kernels): uint8 activations, int8 per-channel
weights, every op ONNX Runtime's Q/DQ fusions turn into an int8 kernel quantized (QLinearConv,
QGemm, QLinearAdd/Mul, QLinearSigmoid, QLinearGlobalAveragePool, ...). ``tuned=True`` adds two
rewrites (graph_rewrites.py) for what those fusions leave in float: spatial ``ReduceMean``
becomes ``GlobalAveragePool`` before quantizing, and after it every HardSigmoid (h-swish,
which ONNX Runtime expands into x * HardSigmoid(x), and MobileNetV3's squeeze-excite gates)
becomes an int8 Add whose saturation is the clip. Recorded side by side
(benchmarks/results/int8_latency.json, batch 1, 2 threads, 224x224), INT8/FP32 p50 stock ->
tuned: EfficientNet-B0 1.05 -> 0.81, MobileNetV3-Large 0.98 -> 0.72, MobileNetV2 0.46 -> 0.45,
ResNet-50 0.33 -> 0.33; ``tuned=False`` is the stock layout for that comparison.

``reduce_range`` (7-bit weights) defaults to what this CPU needs (cpu_features.py): on for x86
without VNNI, where ONNX Runtime's U8S8 kernels saturate, off with VNNI or on ARM.

The ``tensorrt`` target's Q/DQ ONNX is NVIDIA ModelOpt's (modelopt_tensorrt.py), not a layout
of this module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file
from edgecnn.quantize.calibration_table import (
    CALIBRATION_METHODS,
    DEFAULT_PERCENTILE,
    CalibrationTable,
    calibrate_prepared,
    load_calibration_table,
)

__all__ = ["CALIBRATION_METHODS", "LAYOUTS", "QuantizeInfo", "calibrate_onnx",
           "prepare_for_quantization", "quantize_prepared", "quantize_static_onnx"]

LAYOUTS = ("onnxruntime",)


@dataclass
class QuantizeInfo:
    path: Path
    method: str
    samples: int
    per_channel: bool
    reduce_range: bool
    quantizer: str
    layout: str = "onnxruntime"
    reduce_range_reason: str = ""
    rewrites: list[str] = field(default_factory=list)
    excluded_nodes: list[str] = field(default_factory=list)
    table: CalibrationTable | None = None
    # tensorrt target: how many activation scales came from the table / ModelOpt's calibration
    activation_scales: dict[str, int] | None = None
    # the calibration data's manifest hash where no table records it (NNCF calibrates itself)
    calibration_manifest_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "table"
               and not (k == "activation_scales" and v is None)}  # tensorrt target only
        out["path"] = str(self.path)
        if self.table is not None:
            out["calibration_table_sha256"] = self.table.sha256
            out["calibration_manifest_sha256"] = self.table.calibration.get("sha256")
        return out


def calibration_op_types() -> list[str]:
    """Every op type ONNX Runtime's quantizer can quantize (its QLinear and QDQ registries):
    the calibrator measures their inputs and outputs, so one table serves every layout and any
    set of excluded nodes."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def prepare_for_quantization(fp32_path: Path, prepared_path: Path, *,
                             tuned: bool = True) -> list[str]:
    """ONNX Runtime's ``quant_pre_process`` (+ the int8-friendly rewrites when ``tuned``);
    returns the rewrites made. Unnamed nodes get names, since nodes are excluded by name."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path = Path(fp32_path)
    if not fp32_path.is_file():
        raise EdgeCNNError(f"ONNX model {fp32_path} does not exist")
    try:
        quant_pre_process(str(fp32_path), str(prepared_path), skip_symbolic_shape=True)
    except Exception as exc:  # onnx/ORT raise their own types for files they cannot read
        raise EdgeCNNError(f"cannot prepare {fp32_path} for quantization: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    model = onnx.load(str(prepared_path))
    rewrites = []
    if tuned:
        from edgecnn.quantize.graph_rewrites import reduce_mean_to_global_average_pool

        count = reduce_mean_to_global_average_pool(model)
        if count:
            rewrites.append(f"ReduceMean->GlobalAveragePool x{count}")
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    onnx.save(model, str(prepared_path))
    return rewrites


def calibrate_onnx(
    fp32_path: Path, calibration: np.ndarray, *, method: str = "minmax", tuned: bool = True,
    manifest: dict[str, Any] | None = None, chunk: int = 16,
    percentile: float = DEFAULT_PERCENTILE,
) -> CalibrationTable:
    """Calibrate once, without quantizing: the table to save and pass as ``table=`` later."""
    fp32_path = Path(fp32_path)
    with tempfile.TemporaryDirectory(prefix="edgecnn-prepare-") as work:
        prepared = Path(work) / "prepared.onnx"
        prepare_for_quantization(fp32_path, prepared, tuned=tuned)
        return calibrate_prepared(prepared, calibration, method=method,
                                  op_types=calibration_op_types(),
                                  model_sha256=sha256_file(fp32_path), manifest=manifest,
                                  chunk=chunk, percentile=percentile)


def quantize_static_onnx(
    fp32_path: Path, int8_path: Path, calibration: np.ndarray | None = None, *,
    method: str = "minmax", per_channel: bool = True, reduce_range: bool | None = None,
    batch_size: int = 16, layout: str = "onnxruntime",
    table: CalibrationTable | str | Path | None = None, tuned: bool = True,
    exclude_nodes: Sequence[str] = (), manifest: dict[str, Any] | None = None,
    percentile: float = DEFAULT_PERCENTILE,
) -> QuantizeInfo:
    """FP32 ONNX -> Q/DQ INT8 ONNX for ``layout`` (see the module docstring), written
    atomically. Ranges come from ``table`` (a table or its JSON file: no calibration runs, and
    its method wins) or are measured on ``calibration`` (normalised float32 NCHW, ``batch_size``
    images per calibrator pass) with ``method``; ``info.table`` holds them either way.
    ``reduce_range=None`` decides from this CPU. ``exclude_nodes`` stay in float (accuracy-aware
    fallback). Raises EdgeCNNError for a bad option, a missing file, calibration data of the
    wrong shape, or a table measured on another model."""
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if layout not in LAYOUTS:
        raise EdgeCNNError(f"quantization layout {layout!r} is not valid; use one of "
                           f"{', '.join(LAYOUTS)} (the tensorrt target quantizes with ModelOpt: "
                           "edgecnn.quantize.modelopt_tensorrt)")
    if table is None and method not in CALIBRATION_METHODS:
        raise EdgeCNNError(f"quantize.calibration.method {method!r} is not valid; use one of "
                           f"{', '.join(CALIBRATION_METHODS)}")
    if table is None and (calibration is None or len(calibration) == 0):
        raise EdgeCNNError("quantization needs at least one calibration sample (or a "
                           "calibration table)")
    if batch_size < 1:
        raise EdgeCNNError(f"calibration batch size must be >= 1, got {batch_size}")
    if table is not None and not isinstance(table, CalibrationTable):
        table = load_calibration_table(table)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=int8_path.parent, prefix=".quantize-") as work:
        prepared = Path(work) / "prepared.onnx"
        rewrites = prepare_for_quantization(fp32_path, prepared, tuned=tuned)
        model_sha = sha256_file(fp32_path)
        if table is None:
            table = calibrate_prepared(prepared, calibration, method=method,
                                       op_types=calibration_op_types(), model_sha256=model_sha,
                                       manifest=manifest, chunk=batch_size,
                                       percentile=percentile)
        else:
            table.check_model(model_sha, sha256_file(prepared), str(fp32_path))
        info = quantize_prepared(prepared, int8_path, table, layout=layout,
                                 per_channel=per_channel, reduce_range=reduce_range,
                                 exclude_nodes=exclude_nodes, metadata_from=fp32_path,
                                 tuned=tuned)
    info.rewrites = rewrites + info.rewrites
    return info


def quantize_prepared(
    prepared: Path, int8_path: Path, table: CalibrationTable, *, layout: str = "onnxruntime",
    per_channel: bool = True, reduce_range: bool | None = None,
    exclude_nodes: Sequence[str] = (), metadata_from: Path | None = None, tuned: bool = True,
) -> QuantizeInfo:
    """Quantize an already prepared graph from a table (no calibration): the step the
    accuracy-aware search repeats with different ``exclude_nodes``. ``tuned`` (onnxruntime
    layout) computes HardSigmoid in int8 afterwards (graph_rewrites.py)."""
    import onnx
    from onnxruntime import __version__ as ort_version
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    from edgecnn.quantize.cpu_features import choose_reduce_range

    if layout not in LAYOUTS:
        raise EdgeCNNError(f"quantization layout {layout!r} is not valid; use one of "
                           f"{', '.join(LAYOUTS)}")
    model = onnx.load(str(prepared), load_external_data=False)
    names = {n.name for n in model.graph.node}
    unknown = [n for n in exclude_nodes if n not in names]
    if unknown:
        raise EdgeCNNError(f"nodes to keep in float {unknown[:3]} are not in the prepared "
                           f"graph of {metadata_from or prepared}")
    if reduce_range is None:
        choice = choose_reduce_range()
        reduce_range, reason = choice.reduce_range, choice.reason
    else:
        reason = "set explicitly"
    # Relu/Clip stay in the graph (ONNX Runtime would fold them into the following Q's range
    # and give their output name to the Conv): at run time ONNX Runtime fuses them just the
    # same — identical outputs and kernels, checked on ResNet-20 and MobileNet v2 — but every
    # tensor keeps its float meaning, so a layer returned to float can read its real input.
    options: dict[str, Any] = {"QDQKeepRemovableActivations": True}
    int8_path = Path(int8_path)
    work = Path(tempfile.mkdtemp(dir=int8_path.parent, prefix=".quantize-"))
    try:
        cache = work / "ranges.json"
        save_tensors_data(table.tensors_data(), cache)
        output = work / "int8.onnx"
        try:
            quantize_static(
                str(prepared), str(output), None, calibration_cache_path=str(cache),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=per_channel,
                reduce_range=reduce_range,
                calibrate_method=table.tensors_data().calibration_method,
                nodes_to_exclude=list(exclude_nodes),
                extra_options=options)
        except (ValueError, RuntimeError) as exc:  # what ORT's quantizer raises for a graph
            # it cannot handle: name the model instead of a traceback deep inside it
            raise EdgeCNNError(f"ONNX Runtime cannot quantize {metadata_from or prepared}: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        if exclude_nodes:  # a layer returned to float reads its inputs in float too
            _unshare_float_consumers(output, set(exclude_nodes))
        rewrites = _int8_rewrites(output) if tuned else []
        _copy_metadata(metadata_from or prepared, output, layout)
        os.chmod(output, 0o644)
        os.replace(output, int8_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    weights = "7-bit weights" if reduce_range else "8-bit weights"
    return QuantizeInfo(int8_path, table.method, int(table.options.get("samples", 0)),
                        per_channel, reduce_range,
                        f"onnxruntime {ort_version} quantize_static (QDQ, U8S8, {weights})",
                        layout, reason, rewrites, list(exclude_nodes), table)


def _int8_rewrites(path: Path) -> list[str]:
    import onnx

    from edgecnn.quantize.graph_rewrites import hard_sigmoid_to_int8_add

    model = onnx.load(str(path))
    count = hard_sigmoid_to_int8_add(model)
    if not count:
        return []
    onnx.save(model, str(path))
    return [f"HardSigmoid->int8 Add x{count}"]


def _unshare_float_consumers(path: Path, float_nodes: set[str]) -> None:
    """Give ``float_nodes`` their float inputs back.

    ONNX Runtime's quantizer rewires *every* consumer of a quantized tensor to the
    DequantizeLinear output, even with DedicatedQDQPair and even for excluded nodes (so does
    ModelOpt, which calls it: modelopt_tensorrt.py uses this too). For the accuracy-aware
    fallback, a layer "in float" would still see a quantized input, which measured on
    ResNet-20 left most of the error in place (top-1 agreement with FP32 98.4% with every Conv
    excluded). The float tensor still exists (the QuantizeLinear's input), so those consumers
    read it, and pairs left without consumers are removed. No ONNX Runtime option does this.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.name not in float_nodes:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and \
                dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
    outputs = {o.name for o in graph.output}
    while True:  # drop Q/DQ nodes nothing reads any more
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.save(model, str(path))


def _copy_metadata(source: Path, target: Path, layout: str) -> None:
    import onnx

    src = onnx.load(str(source), load_external_data=False)
    dst = onnx.load(str(target))
    existing = {p.key for p in dst.metadata_props}
    for prop in src.metadata_props:
        if prop.key not in existing and not prop.key.startswith("onnx.quant"):
            dst.metadata_props.add(key=prop.key, value=prop.value)
    dst.metadata_props.add(key="precision", value="int8")
    dst.metadata_props.add(key="int8_layout", value=layout)
    onnx.save(dst, str(target))

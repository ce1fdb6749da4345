"""The ``tensorrt`` target's INT8 Q/DQ ONNX, made by NVIDIA TensorRT Model Optimizer's ONNX PTQ.

TensorRT (explicit quantization) runs a layer in INT8 where Q/DQ say so, and where they sit
decides which fusions it can make. NVIDIA's own answer to "where" is ModelOpt's
``modelopt.onnx.quantization.quantize(quantize_mode="int8")``, so this module calls it rather
than keeping a placement of our own (the hand-written layout it replaces quantized both inputs
of residual Adds and the classifier Gemm, and left squeeze-excite Muls and pooling float; see
tests/quantize/test_tensorrt_layout.py for the placement, op by op).

What edgecnn adds around the call:

* ModelOpt runs on the raw FP32 export (the graph TensorRT parses), not on ONNX Runtime's
  prepared graph: ``quant_pre_process`` expands HardSwish into x * HardSigmoid(x) and turns
  ReduceMean into GlobalAveragePool, which ModelOpt then quantizes differently (22 more Q/DQ on
  MobileNetV3-Large). Tensor names survive the preparation, so every activation ModelOpt
  quantizes on MobileNetV2/V3-Large, EfficientNet-B0 and ResNet-50 is also in the build's
  calibration table.
* Activation scales come from that table where it holds the tensor (symmetric int8: amax =
  max(|lo|, |hi|), scale = amax / 127, ModelOpt's own formula), so TensorRT and ONNX Runtime
  get the same ranges and ``edgecnn build --calibration TABLE`` the same TensorRT scales.
  ModelOpt's calibration of the same images (``max`` for minmax and percentile -- ModelOpt's
  int8 has no percentile -- ``entropy`` for entropy) serves the tensors the table lacks; the
  counts of both are in the summary (``activation_scales``).
* ``high_precision_dtype="fp32"``: the default ``"fp16"`` writes an FP16 Q/DQ graph that ONNX
  Runtime's CPU graph optimisations compute wrongly (cosine 0.82 to FP32 on MobileNetV2, 1.0 with
  optimisations off), and ONNX Runtime is where edgecnn evaluates the file. The price: built
  as a strongly typed network, the layers ModelOpt leaves unquantized (the classifier, the
  residual Adds' float branch, ...) run in FP32, where ModelOpt's default would run them in
  FP16 -- what that costs on a GPU is not measured.
* ModelOpt runs in a worker process (modelopt_worker.py): it patches ONNX Runtime's quantizer
  for the whole process it runs in, which broke the onnxruntime target's calibration after it.
* ``exclude_nodes`` (the accuracy-aware fallback) become ModelOpt's ``nodes_to_exclude``, and
  an excluded node reads its inputs in float (ModelOpt, like ONNX Runtime, rewires every
  consumer of a quantized tensor to its DequantizeLinear).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.calibration_table import (
    CALIBRATION_METHODS,
    CalibrationTable,
    load_calibration_table,
)
from edgecnn.quantize.onnxruntime_static import QuantizeInfo

INSTALL = "pip install 'edgecnn[tensorrt]'"
# recipe calibration.method -> ModelOpt's int8 calibration_method (it has max and entropy)
MODELOPT_METHOD = {"minmax": "max", "entropy": "entropy", "percentile": "max"}
LAYOUT = "tensorrt"


def require_modelopt() -> str:
    """ModelOpt's version; one EdgeCNNError naming the missing package when its ONNX PTQ
    cannot be imported (it needs onnx-graphsurgeon, lief and onnxscript besides itself)."""
    try:
        import modelopt.onnx.quantization  # what quantize() needs: graphsurgeon, lief, ...
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise EdgeCNNError(
            f"the tensorrt target's int8 ONNX is made by NVIDIA ModelOpt's ONNX PTQ "
            f"(nvidia-modelopt), which cannot be imported here ({missing} is missing): "
            f"{INSTALL}") from exc
    return modelopt.__version__  # (the submodule import bound the package name)


def quantize_modelopt(
    fp32_path: Path, int8_path: Path, calibration: np.ndarray | None, *,
    method: str = "minmax", table: CalibrationTable | str | Path | None = None,
    exclude_nodes: Sequence[str] = (),
) -> QuantizeInfo:
    """FP32 ONNX -> TensorRT Q/DQ INT8 ONNX by ModelOpt (see the module docstring), written
    atomically. ``calibration`` (normalised float32 NCHW) is needed even with a ``table``:
    ModelOpt calibrates the tensors the table does not hold. With a table, its method wins."""
    version = require_modelopt()
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if not fp32_path.is_file():
        raise EdgeCNNError(f"ONNX model {fp32_path} does not exist")
    if table is not None and not isinstance(table, CalibrationTable):
        table = load_calibration_table(table)
    if table is not None:
        from edgecnn.hashing import sha256_file

        if table.model_sha256 != sha256_file(fp32_path):
            raise EdgeCNNError(f"calibration table for model sha256 {table.model_sha256[:12]}… "
                               f"does not match {fp32_path}; calibrate this model again")
        method = table.method
    if method not in CALIBRATION_METHODS:
        raise EdgeCNNError(f"quantize.calibration.method {method!r} is not valid; use one of "
                           f"{', '.join(CALIBRATION_METHODS)}")
    if calibration is None or len(calibration) == 0:
        raise EdgeCNNError("the tensorrt target needs calibration images (ModelOpt calibrates "
                           "the tensors a calibration table does not hold)")
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    # ModelOpt writes intermediate files beside its input and output: keep them in here
    work = Path(tempfile.mkdtemp(dir=int8_path.parent, prefix=".modelopt-"))
    try:
        source = work / "fp32.onnx"
        named_copy(fp32_path, source, exclude_nodes)
        output = work / "int8.onnx"
        run_modelopt(source, output, calibration, MODELOPT_METHOD[method], exclude_nodes)
        if not output.is_file():
            raise EdgeCNNError(f"ModelOpt wrote no quantized model for {fp32_path}")
        import onnx

        model = onnx.load(str(output))
        from_table, from_modelopt = apply_table_scales(model.graph, table)
        onnx.save(model, str(output))
        if exclude_nodes:  # a layer returned to float reads its inputs in float too
            from edgecnn.quantize.onnxruntime_static import _unshare_float_consumers

            _unshare_float_consumers(output, set(exclude_nodes))
        from edgecnn.quantize.onnxruntime_static import _copy_metadata

        _copy_metadata(fp32_path, output, LAYOUT)
        os.chmod(output, 0o644)
        os.replace(output, int8_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scales = {"from_table": from_table, "from_modelopt": from_modelopt}
    samples = int(table.options.get("samples", 0)) if table is not None else len(calibration)
    return QuantizeInfo(
        int8_path, method, samples, True, False,
        f"ModelOpt {version} ONNX PTQ (int8, {MODELOPT_METHOD[method]} calibration; activation "
        f"scales: {from_table} from the calibration table, {from_modelopt} from ModelOpt)",
        LAYOUT, "TensorRT: 8-bit symmetric weights", [], list(exclude_nodes), table,
        activation_scales=scales)


def named_copy(fp32_path: Path, out: Path, exclude_nodes: Sequence[str]) -> None:
    """The model with every node named (nodes are excluded by name), checked against
    ``exclude_nodes``. The names are those prepare_for_quantization gives."""
    import onnx

    model = onnx.load(str(fp32_path))
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    names = {n.name for n in model.graph.node}
    unknown = [n for n in exclude_nodes if n not in names]
    if unknown:
        raise EdgeCNNError(f"nodes to keep in float {unknown[:3]} are not in {fp32_path}")
    onnx.save(model, str(out))


def run_modelopt(source: Path, output: Path, calibration: np.ndarray, method: str,
                 exclude_nodes: Sequence[str] = ()) -> None:
    """ModelOpt's ``quantize`` (int8, CPU calibration, FP32 elsewhere) of ``source`` into
    ``output``, in a worker process: it patches ONNX Runtime's quantizer process-wide
    (modelopt_worker.py). EdgeCNNError when ModelOpt refuses the graph."""
    from edgecnn.quantize import modelopt_worker

    data = output.with_name(output.stem + ".calibration.npy")
    np.save(data, np.ascontiguousarray(calibration, dtype=np.float32))
    job = {"source": str(source), "output": str(output), "calibration": str(data),
           "method": method, "exclude": list(exclude_nodes)}
    try:
        modelopt_worker.run(job)
    except EdgeCNNError as exc:
        raise EdgeCNNError(f"ModelOpt cannot quantize {source.name}: {exc}") from exc
    finally:
        data.unlink(missing_ok=True)


def symmetric_scale(lo: float, hi: float) -> np.float32:
    """ModelOpt's (and ONNX Runtime's) symmetric int8 scale of a range: amax / 127, and 1 for
    an empty range."""
    amax = max(abs(lo), abs(hi))
    return np.float32(amax / 127.0) if amax > 0 else np.float32(1.0)


def apply_table_scales(graph, table: CalibrationTable | None) -> tuple[int, int]:
    """Set each activation QuantizeLinear's scale (shared with its DequantizeLinear) from
    ``table`` where it holds the quantized tensor; -> (from the table, left as ModelOpt
    calibrated). Tensors ModelOpt groups to share one scale (the inputs of a Concat) take the
    largest of their table ranges, and ModelOpt's scale unless the table holds them all."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    quantizers = [n for n in graph.node if n.op_type == "QuantizeLinear"
                  and n.input[0] not in inits]  # float weights -> Q are weights
    if table is None:
        return 0, len(quantizers)
    by_output = {q.output[0]: q for q in quantizers}
    dq_of = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"
             and n.input[0] in by_output}
    group_of = {q.input[0]: [q.input[0]] for q in quantizers}
    for node in graph.node:
        if node.op_type == "Concat":
            members = [by_output[dq_of[i].input[0]].input[0] for i in node.input if i in dq_of]
            for name in members:
                group_of[name] = sorted(set(group_of[name]) | set(members))
    users: dict[str, set[str]] = {}
    for q in quantizers:
        users.setdefault(q.input[1], set()).add(q.input[0])
    from_table = 0
    for q in quantizers:
        group = group_of[q.input[0]]
        shared = len(users[q.input[1]]) > 1  # one scale initializer for two tensors
        if shared or any(name not in table.ranges for name in group):
            continue
        scale = max(symmetric_scale(*table.ranges[name]) for name in group)
        old = inits[q.input[1]]
        inits[q.input[1]].CopyFrom(numpy_helper.from_array(
            np.asarray(scale, dtype=numpy_helper.to_array(old).dtype).reshape(old.dims),
            old.name))
        dq = next((d for d in dq_of.values() if d.input[0] == q.output[0]), None)
        if dq is not None and dq.input[1] != q.input[1]:  # ModelOpt shares it; make sure
            raise EdgeCNNError(f"ModelOpt's DequantizeLinear {dq.name} has its own scale; "
                               "edgecnn cannot set it from the calibration table")
        from_table += 1
    return from_table, len(quantizers) - from_table


def quantized_tensors(path: Path) -> dict[str, float]:
    """Activation tensor -> its QuantizeLinear scale in a Q/DQ ONNX (what the tests compare)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name: i for i in graph.initializer}
    return {n.input[0]: float(numpy_helper.to_array(inits[n.input[1]]).reshape(-1)[0])
            for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


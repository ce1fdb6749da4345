"""One entry point: quantize an FP32 ONNX for the backend that will run it.

=============  =========================================  ==================================
target         quantizer                                  artifact (what its runner loads)
=============  =========================================  ==================================
onnxruntime    ONNX Runtime quantize_static, CPU layout   Q/DQ .onnx (OnnxRuntimeRunner)
tensorrt       NVIDIA ModelOpt ONNX PTQ (int8)            Q/DQ .onnx (TensorRT builds it)
openvino       NNCF quantize on the OpenVINO model        IR .xml + .bin (OpenVINORunner)
=============  =========================================  ==================================

All three take the same normalised float32 NCHW calibration array and the same method name
(minmax / entropy / percentile; see openvino_nncf.py and modelopt_tensorrt.py for what each
maps to in NNCF and ModelOpt). The ONNX targets take their activation ranges from one
calibration table (ModelOpt calibrates only what the table lacks). Quantizing
for one backend and running on another is what made INT8 slower than FP32 (DESIGN.md), so the
artifact records its layout (ONNX metadata ``int8_layout`` / IR rt_info).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.onnxruntime_static import QuantizeInfo

TARGETS = ("onnxruntime", "tensorrt", "openvino")
SUFFIX = {"onnxruntime": ".onnx", "tensorrt": ".onnx", "openvino": ".xml"}


def artifact_name(target: str, stem: str = "model") -> str:
    """The file name a build writes for ``target`` (model.int8.onnx, model.int8.tensorrt.onnx,
    model.int8.xml)."""
    check_target(target)
    middle = ".int8.tensorrt" if target == "tensorrt" else ".int8"
    return f"{stem}{middle}{SUFFIX[target]}"


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise EdgeCNNError(f"quantization target {target!r} is not valid; use one of "
                           f"{', '.join(TARGETS)}")
    return target


def quantize_for_target(
    target: str, fp32_path: Path, out_path: Path, calibration: np.ndarray | None, *,
    method: str = "minmax", per_channel: bool = True, reduce_range: bool | None = None,
    table: Any = None, exclude_nodes: tuple[str, ...] = (),
    manifest: dict[str, Any] | None = None, percentile: float | None = None,
) -> QuantizeInfo:
    """INT8 artifact of ``fp32_path`` for ``target`` at ``out_path`` (suffix per the table
    above). ``table`` (a CalibrationTable or its file) applies to the ONNX targets only;
    ``reduce_range`` becomes NNCF's overflow fix for openvino; ``per_channel`` is fixed by the
    TensorRT and NNCF layouts (per-channel weights); ``percentile`` is the percentile method's
    cut for openvino and for the table the tensorrt target calibrates when given none (the
    onnxruntime target takes its cut from the table)."""
    check_target(target)
    out_path = Path(out_path)
    if out_path.suffix != SUFFIX[target]:
        raise EdgeCNNError(f"the {target} target writes a {SUFFIX[target]} file, not "
                           f"{out_path.name}")
    if target == "openvino":
        from edgecnn.quantize.openvino_nncf import quantize_openvino

        if table is not None:
            raise EdgeCNNError("a calibration table holds ONNX Runtime ranges; the openvino "
                               "target calibrates with NNCF and needs calibration images")
        from edgecnn.quantize.calibration_table import DEFAULT_PERCENTILE

        return quantize_openvino(fp32_path, out_path, calibration, method=method,
                                 percentile=percentile or DEFAULT_PERCENTILE,
                                 overflow_fix=reduce_range, ignored_nodes=exclude_nodes,
                                 manifest=manifest)
    if target == "tensorrt":
        return _quantize_tensorrt(fp32_path, out_path, calibration, method=method, table=table,
                                  exclude_nodes=exclude_nodes, manifest=manifest,
                                  percentile=percentile)
    from edgecnn.quantize.onnxruntime_static import quantize_static_onnx

    return quantize_static_onnx(fp32_path, out_path, calibration, method=method,
                                per_channel=per_channel, reduce_range=reduce_range,
                                layout=target, table=table, exclude_nodes=exclude_nodes,
                                manifest=manifest)


def _quantize_tensorrt(fp32_path: Path, out_path: Path, calibration: np.ndarray | None, *,
                       method: str, table: Any, exclude_nodes: tuple[str, ...],
                       manifest: dict[str, Any] | None,
                       percentile: float | None) -> QuantizeInfo:
    """ModelOpt's Q/DQ ONNX with the scales of ``table``, calibrated here when none is given
    (as the onnxruntime target does), so both ONNX targets get the same ranges either way."""
    from edgecnn.quantize.calibration_table import DEFAULT_PERCENTILE
    from edgecnn.quantize.modelopt_tensorrt import quantize_modelopt, require_modelopt
    from edgecnn.quantize.onnxruntime_static import calibrate_onnx

    require_modelopt()  # before a calibration that would be wasted
    if table is None and calibration is not None and len(calibration):
        table = calibrate_onnx(fp32_path, calibration, method=method, manifest=manifest,
                               percentile=percentile or DEFAULT_PERCENTILE)
    return quantize_modelopt(fp32_path, out_path, calibration, method=method, table=table,
                             exclude_nodes=exclude_nodes)

"""INT8 for OpenVINO: NNCF's post-training quantization of the OpenVINO model, saved as IR.

NNCF lays Q/DQ (FakeQuantize) out the way OpenVINO's CPU plugin fuses them; the same network
quantized by NNCF ran 3-5x slower than FP32 in ONNX Runtime and at 0.58x in OpenVINO
(DESIGN.md), so this artifact is for the ``openvino`` backend only (edgecnn/backends/
openvino_backend.py runs the .xml it writes).

Calibration method, mapped onto NNCF's activation range estimators:

* ``minmax`` -> ``RangeEstimatorParametersSet.MINMAX`` (global min/max over the samples, the
  same statistic as ONNX Runtime's MinMax calibrator);
* ``percentile`` -> per-sample (100 - p) / p percentiles (``StatisticsType.QUANTILE``,
  ``quantile_outlier_prob = 1 - p/100``), the lowest / highest over the samples. Not NNCF's
  ``MEAN_QUANTILE`` (the *mean* over samples): on the demo's MobileNet v2 that clipped so much
  that CIFAR-10 top-1 fell from 80.1% to 72.5%, against 80.0% with MIN/MAX aggregation;
* ``entropy`` -> ``RangeEstimatorParametersSet.HISTOGRAM``: NNCF has no KL-divergence
  estimator; its histogram estimator searches the range that minimises the quantization error
  over a histogram of the activations (PyTorch's HistogramObserver), the closest it offers;
* ``nncf-default`` -> NNCF's own default estimator (mean over samples of per-sample
  min/max).

Every Multiply stays in float (see ``_nncf_options``): OpenVINO fuses it into the int8
convolution before it, which made EfficientNet-B0 and MobileNetV3 INT8 faster than FP32 where
NNCF's default layout was not.

Samples go to NNCF one image at a time (its per-sample statistics assume batch 1), all of them
(``subset_size`` = the number of samples). The ``performance`` preset (symmetric activations)
is NNCF's default for CNNs and the fastest on CPU. ``overflow_fix`` (NNCF's 7-bit answer to the
same int16 saturation as ONNX Runtime's reduce_range) follows this CPU unless given: disabled
with VNNI/AMX, NNCF's default (first layer) without. NNCF computes its own ranges: the ONNX
calibration tables (calibration_table.py) do not apply here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file
from edgecnn.quantize.calibration_table import (
    DEFAULT_PERCENTILE,
    calibration_manifest,
)
from edgecnn.quantize.onnxruntime_static import QuantizeInfo

NNCF_METHODS = ("minmax", "entropy", "percentile", "nncf-default")
PRESETS = ("performance", "mixed")
TARGET_DEVICES = ("CPU", "ANY")


@dataclass
class AccuracyControlResult:
    """What NNCF's accuracy control did: the metric before and after, in top-1 points, and the
    layers it returned to float."""

    info: QuantizeInfo
    fp32_top1: float
    int8_top1: float
    fallback_layers: list[str] = field(default_factory=list)

    @property
    def drop(self) -> float:
        return self.fp32_top1 - self.int8_top1


def _nncf_options(method: str, percentile: float, overflow_fix: bool | None,
                  preset: str, target_device: str, ignored_nodes: Sequence[str],
                  keep_multiply_float: bool = True):
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )

    from edgecnn.quantize.cpu_features import choose_reduce_range

    if method not in NNCF_METHODS:
        raise EdgeCNNError(f"quantize.calibration.method {method!r} is not valid for openvino; "
                           f"use one of {', '.join(NNCF_METHODS)}")
    if preset not in PRESETS:
        raise EdgeCNNError(f"NNCF preset {preset!r} is not valid; use one of "
                           f"{', '.join(PRESETS)}")
    if target_device not in TARGET_DEVICES:
        raise EdgeCNNError(f"NNCF target device {target_device!r} is not valid; use one of "
                           f"{', '.join(TARGET_DEVICES)}")
    if not 0 < percentile <= 100:
        raise EdgeCNNError(f"calibration percentile must be in (0, 100], got {percentile}")
    if overflow_fix is None:
        choice = choose_reduce_range()
        overflow_fix, reason = choice.reduce_range, choice.reason
    else:
        reason = "set explicitly"
    estimator = None
    if method == "minmax":
        estimator = RangeEstimatorParametersSet.MINMAX
    elif method == "entropy":
        estimator = RangeEstimatorParametersSet.HISTOGRAM
    elif method == "percentile":
        outlier = 1.0 - percentile / 100.0
        estimator = RangeEstimatorParameters(
            min=StatisticsCollectorParameters(StatisticsType.QUANTILE, AggregatorType.MIN,
                                              quantile_outlier_prob=outlier),
            max=StatisticsCollectorParameters(StatisticsType.QUANTILE, AggregatorType.MAX,
                                              quantile_outlier_prob=outlier))
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.FIRST_LAYER if overflow_fix else OverflowFix.DISABLE,
        activations_range_estimator_params=estimator)
    kwargs: dict[str, Any] = {
        "preset": nncf.QuantizationPreset.PERFORMANCE if preset == "performance"
        else nncf.QuantizationPreset.MIXED,
        "target_device": nncf.TargetDevice[target_device],
    }
    # Multiply stays float (SiLU/Swish's x * sigmoid(x), squeeze-excite scaling): OpenVINO
    # fuses a float Multiply into the int8 convolution before it as a post-op, while NNCF's
    # default FakeQuantize on both its inputs splits that fusion. Recorded side by side
    # (benchmarks/results/int8_latency.json, batch 1, 2 threads), INT8/FP32 p50 NNCF default
    # -> this: EfficientNet-B0 0.94 -> 0.67, MobileNetV3-Large 0.76 -> 0.57; models without
    # Multiply (ResNet-50, MobileNetV2) get the same placement as the default.
    kwargs["ignored_scope"] = nncf.IgnoredScope(
        names=list(ignored_nodes), types=["Multiply"] if keep_multiply_float else [],
        validate=False)
    return kwargs, advanced, bool(overflow_fix), reason


def _dataset(calibration: np.ndarray):
    import nncf

    if calibration is None or len(calibration) == 0:
        raise EdgeCNNError("quantization needs at least one calibration sample")
    array = np.ascontiguousarray(calibration, dtype=np.float32)
    return nncf.Dataset([array[i:i + 1] for i in range(len(array))])


def _read_fp32(fp32_path: Path, calibration: np.ndarray):
    from edgecnn._optional import require

    ov = require("openvino", "quantization for the openvino target")
    require("nncf", "quantization for the openvino target")
    fp32_path = Path(fp32_path)
    if not fp32_path.is_file():
        raise EdgeCNNError(f"ONNX model {fp32_path} does not exist")
    try:
        model = ov.Core().read_model(str(fp32_path))
    except Exception as exc:
        raise EdgeCNNError(f"OpenVINO cannot read {fp32_path}: "
                           f"{str(exc).strip().splitlines()[0]}") from exc
    want = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
    if calibration is not None and (calibration.ndim != len(want) or any(
            w is not None and w != s for w, s in zip(want[1:], calibration.shape[1:],
                                                    strict=True))):
        raise EdgeCNNError(f"calibration data has shape {calibration.shape}; {fp32_path.name} "
                           f"takes {['N' if w is None else w for w in want]}")
    return ov, model


def _save_ir(ov, model, xml_path: Path, source: Path, method: str) -> None:
    """Write .bin then .xml through temporary names in the same folder (the .xml is what a
    runner opens, so it appears last); FP32 weights stay FP32 (no fp16 compression)."""
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model.set_rt_info("int8", ["framework", "precision"])
    model.set_rt_info(f"openvino-nncf ({method})", ["framework", "int8_layout"])
    model.set_rt_info(sha256_file(source), ["framework", "fp32_onnx_sha256"])
    with tempfile.TemporaryDirectory(dir=xml_path.parent, prefix=".quantize-") as work:
        tmp_xml = Path(work) / "model.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.chmod(tmp_xml, 0o644)
        os.chmod(tmp_xml.with_suffix(".bin"), 0o644)
        # an old .xml must not be left pointing at the new weights if this stops in between
        xml_path.unlink(missing_ok=True)
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        # the .xml names its weights file by the .xml's own stem, so both keep one stem
        os.replace(tmp_xml, xml_path)


def quantize_openvino(
    fp32_path: Path, xml_path: Path, calibration: np.ndarray, *, method: str = "minmax",
    preset: str = "performance", target_device: str = "CPU", overflow_fix: bool | None = None,
    ignored_nodes: Sequence[str] = (), fast_bias_correction: bool = True,
    percentile: float = DEFAULT_PERCENTILE, manifest: dict[str, Any] | None = None,
    keep_multiply_float: bool = True,
) -> QuantizeInfo:
    """FP32 ONNX -> NNCF-quantized OpenVINO IR at ``xml_path`` (+ .bin), calibrated on every
    sample of ``calibration`` (normalised float32 NCHW). ``ignored_nodes`` (OpenVINO op names)
    stay in float, and so does every Multiply unless ``keep_multiply_float=False``."""
    import nncf

    xml_path = Path(xml_path)
    if xml_path.suffix != ".xml":
        raise EdgeCNNError(f"the openvino target writes an IR .xml, not {xml_path.name}")
    kwargs, advanced, fix, reason = _nncf_options(method, percentile, overflow_fix, preset,
                                                  target_device, ignored_nodes,
                                                  keep_multiply_float)
    ov, model = _read_fp32(fp32_path, calibration)
    names = {op.get_friendly_name() for op in model.get_ops()}
    unknown = [n for n in ignored_nodes if n not in names]
    if unknown:
        raise EdgeCNNError(f"nodes to keep in float {unknown[:3]} are not in {fp32_path} as "
                           "OpenVINO reads it")
    dataset = _dataset(calibration)
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration),
                              fast_bias_correction=fast_bias_correction,
                              advanced_parameters=advanced, **kwargs)
    _save_ir(ov, quantized, xml_path, Path(fp32_path), method)
    manifest = manifest or calibration_manifest(calibration)
    info = QuantizeInfo(xml_path, method, len(calibration), True, fix,
                        f"nncf {nncf.__version__} quantize ({preset} preset, target "
                        f"{target_device}, overflow fix {'first layer' if fix else 'off'}"
                        f"{', Multiply in float' if keep_multiply_float else ''}), OpenVINO IR",
                        "openvino", reason, [], list(ignored_nodes), None)
    info.calibration_manifest_sha256 = manifest.get("sha256")
    return info


def quantize_openvino_with_accuracy_control(
    fp32_path: Path, xml_path: Path, calibration: np.ndarray,
    validation: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], *,
    max_accuracy_drop: float, method: str = "minmax", preset: str = "performance",
    target_device: str = "CPU", overflow_fix: bool | None = None,
    percentile: float = DEFAULT_PERCENTILE, max_iterations: int | None = None,
) -> AccuracyControlResult:
    """NNCF's own accuracy-aware PTQ (``nncf.quantize_with_accuracy_control``): quantize, then
    rank layers and return them to float until top-1 on ``validation`` (a callable giving
    (normalised batch, labels) pairs each time it is called) is within ``max_accuracy_drop``
    points of FP32. NNCF stops when it cannot get there; that raises EdgeCNNError with the
    budget and the best it reached, and nothing is written."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    xml_path = Path(xml_path)
    if max_accuracy_drop < 0:
        raise EdgeCNNError(f"quantize.max_accuracy_drop must be >= 0, got {max_accuracy_drop}")
    kwargs, advanced, fix, reason = _nncf_options(method, percentile, overflow_fix, preset,
                                                  target_device, ())
    ov, model = _read_fp32(fp32_path, calibration)
    batches = list(validation())
    if not batches:
        raise EdgeCNNError("accuracy control needs validation images")

    def top1(compiled, items) -> float:
        # fraction in [0, 1]: NNCF compares drops in the metric's own units
        output = compiled.outputs[0]
        correct = total = 0
        for x, y in items:
            logits = compiled(x)[output]
            correct += int((np.asarray(logits).argmax(1) == y).sum())
            total += len(y)
        return correct / total

    restorer = AdvancedAccuracyRestorerParameters(
        **({"max_num_iterations": max_iterations} if max_iterations else {}))
    fp32_top1 = 100.0 * top1(ov.Core().compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32"}), batches)
    quantized = nncf.quantize_with_accuracy_control(
        model, _dataset(calibration), nncf.Dataset(batches), top1,
        max_drop=max_accuracy_drop / 100.0, drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calibration), advanced_quantization_parameters=advanced,
        advanced_accuracy_restorer_parameters=restorer, **kwargs)
    compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    int8_top1 = 100.0 * top1(compiled, batches)
    fallback = _float_layers(quantized)
    if round(fp32_top1 - int8_top1, 6) > max_accuracy_drop:
        raise EdgeCNNError(
            f"NNCF accuracy control could not keep the top-1 drop within "
            f"quantize.max_accuracy_drop {max_accuracy_drop} points: best reached "
            f"{fp32_top1 - int8_top1:.2f} points ({int8_top1:.2f}% vs FP32 {fp32_top1:.2f}%)")
    _save_ir(ov, quantized, xml_path, Path(fp32_path), method)
    info = QuantizeInfo(xml_path, method, len(calibration), True, fix,
                        f"nncf {nncf.__version__} quantize_with_accuracy_control "
                        f"({preset} preset, max drop {max_accuracy_drop} points), OpenVINO IR",
                        "openvino", reason, [], fallback, None)
    return AccuracyControlResult(info, fp32_top1, int8_top1, fallback)


def _float_layers(model) -> list[str]:
    """Convolutions / MatMuls whose inputs no FakeQuantize feeds: what accuracy control
    reverted (NNCF logs them but does not return them)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        sources = [op.input_value(i).get_node() for i in range(op.get_input_size())]
        if not any(_quantizer_source(s).get_type_name() == "FakeQuantize" for s in sources):
            names.append(op.get_friendly_name())
    return names


# Ops between a FakeQuantize and the layer it feeds that change neither values nor precision:
# weight decompression (Convert, Subtract, Multiply) and shape-only ops.
PASS_THROUGH = ("Convert", "Multiply", "Subtract", "Reshape", "Squeeze", "Unsqueeze",
                "Transpose")


def _quantizer_source(node):
    while node.get_type_name() in PASS_THROUGH and node.get_input_size():
        node = node.input_value(0).get_node()
    return node

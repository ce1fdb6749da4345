"""Portable calibration tables: the activation ranges of one model, computed once, reusable.

A table is what ONNX Runtime's calibrator (``create_calibrator`` -> ``TensorsData``) measured,
kept as plain JSON: tensor name -> [lowest, highest] (float32 values written exactly), the
method and its options, the sha256 of the FP32 ONNX it was measured on and of the prepared
graph whose tensor names it uses, a manifest of the calibration data (with its own sha256) and
the ONNX Runtime version. ``quantize_static`` accepts ranges through its
``calibration_cache_path`` (ONNX Runtime >= 1.25 reads the ``TensorsData`` JSON it names
instead of calibrating), so quantizing from a table runs no calibration and gives the same
scales, byte for byte, as the run that measured it (tests/quantize/test_calibration_table.py).

Only the range is kept: it is the only part of ``TensorData`` the int8 quantizer reads
(``qdq_quantizer.calc_quant_params`` uses ``range_value``; histograms serve calibration only).
Ranges are measured asymmetric for every method; the tensorrt target makes them symmetric
(amax = max(|lo|, |hi|)) when it sets ModelOpt's scales from them (modelopt_tensorrt.py), so one
table serves both ONNX targets. NNCF (the ``openvino`` target) computes
its own statistics and does not read these tables.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.atomic import atomic_write_bytes
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file

TABLE_FORMAT = "edgecnn-calibration-table/1"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_PERCENTILE = 99.999  # ONNX Runtime's default for its percentile calibrator


def _canonical_sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


def indices_sha256(indices: np.ndarray) -> str:
    """Which images of a split were drawn, as a hash a manifest records (int64, in order)."""
    return hashlib.sha256(np.asarray(indices).astype(np.int64).tobytes()).hexdigest()


def calibration_manifest(calibration: np.ndarray, **describe: Any) -> dict[str, Any]:
    """What the calibration data was: the caller's description (dataset, split, indices hash,
    normalisation, ...) plus the shape and sha256 of the exact float32 array, and a ``sha256``
    of all of it. Two runs calibrated on the same data have the same manifest hash."""
    array = np.ascontiguousarray(calibration, dtype=np.float32)
    manifest = {**describe, "shape": list(array.shape), "dtype": "float32",
                "array_sha256": hashlib.sha256(array.tobytes()).hexdigest()}
    return {**manifest, "sha256": _canonical_sha256(manifest)}


@dataclass
class CalibrationTable:
    method: str
    ranges: dict[str, tuple[float, float]]
    model_sha256: str
    prepared_sha256: str
    calibration: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    onnxruntime: str = ""

    def to_dict(self) -> dict[str, Any]:
        # float(np.float32) is exact in a float64, and json writes a float64 so that it reads
        # back to the same value: the table round-trips bit for bit.
        return {"format": TABLE_FORMAT, "method": self.method, "options": self.options,
                "model_sha256": self.model_sha256, "prepared_sha256": self.prepared_sha256,
                "calibration": self.calibration, "onnxruntime": self.onnxruntime,
                "tensors": {k: [float(lo), float(hi)] for k, (lo, hi) in
                            sorted(self.ranges.items())}}

    def save(self, path: Path) -> Path:
        atomic_write_bytes(Path(path), (json.dumps(self.to_dict(), indent=1) + "\n").encode())
        return Path(path)

    @property
    def sha256(self) -> str:
        return _canonical_sha256(self.to_dict())

    def check_model(self, model_sha256: str, prepared_sha256: str, source: str) -> None:
        """EdgeCNNError unless this table was measured on this FP32 model, prepared the same
        way (same graph, so the same tensor names)."""
        if model_sha256 != self.model_sha256:
            raise EdgeCNNError(
                f"calibration table for model sha256 {self.model_sha256[:12]}… does not match "
                f"{source} (sha256 {model_sha256[:12]}…); calibrate this model again instead")
        if prepared_sha256 != self.prepared_sha256:
            raise EdgeCNNError(
                f"calibration table was measured on a graph prepared differently from {source} "
                f"(prepared sha256 {self.prepared_sha256[:12]}… vs {prepared_sha256[:12]}…, "
                f"ONNX Runtime {self.onnxruntime or '?'} then); calibrate again")

    def tensors_data(self):
        """The table as ONNX Runtime's ``TensorsData`` (what its quantizer consumes)."""
        from onnxruntime.quantization.calibrate import TensorData, TensorsData

        return TensorsData(_ort_method(self.method), {
            # shape (1,) float32, as ONNX Runtime's calibrators return them
            name: TensorData(lowest=np.array([lo], np.float32), highest=np.array([hi], np.float32))
            for name, (lo, hi) in self.ranges.items()})


def load_calibration_table(path: str | Path) -> CalibrationTable:
    """A table written by :meth:`CalibrationTable.save`; EdgeCNNError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"calibration table {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeCNNError(f"calibration table {path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
        raise EdgeCNNError(f"{path} is not an edgecnn calibration table (expected "
                           f"\"format\": \"{TABLE_FORMAT}\")")
    try:
        method = data["method"]
        ranges = {str(k): (float(v[0]), float(v[1])) for k, v in data["tensors"].items()}
        table = CalibrationTable(method, ranges, str(data["model_sha256"]),
                                 str(data["prepared_sha256"]), dict(data["calibration"]),
                                 dict(data.get("options", {})), str(data.get("onnxruntime", "")))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise EdgeCNNError(f"calibration table {path} is incomplete or malformed ({exc!r}); "
                           "it needs method, tensors, model_sha256, prepared_sha256, "
                           "calibration") from exc
    if method not in CALIBRATION_METHODS:
        raise EdgeCNNError(f"calibration table {path} has method {method!r}; valid: "
                           f"{', '.join(CALIBRATION_METHODS)}")
    bad = [k for k, (lo, hi) in ranges.items()
           if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi]
    if bad:
        raise EdgeCNNError(f"calibration table {path} has invalid ranges for {bad[:3]}")
    return table


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


def calibrate_prepared(
    prepared_path: Path, calibration: np.ndarray, *, method: str, op_types: list[str],
    model_sha256: str, manifest: dict[str, Any] | None = None, chunk: int = 16,
    percentile: float = DEFAULT_PERCENTILE,
) -> CalibrationTable:
    """Run ONNX Runtime's calibrator for ``method`` over ``calibration`` (normalised float32
    NCHW) on a prepared graph. The data goes through in chunks of ``chunk`` images, one
    ``collect_data`` call each: the calibrators keep every intermediate output of a call in
    memory (tens of MB per 224x224 image), and the chunking is recorded because histogram
    binning depends on it."""
    import contextlib
    import io
    import tempfile

    import onnx
    from onnxruntime import __version__ as ort_version
    from onnxruntime.quantization.calibrate import create_calibrator

    if method not in CALIBRATION_METHODS:
        raise EdgeCNNError(f"quantize.calibration.method {method!r} is not valid; use one of "
                           f"{', '.join(CALIBRATION_METHODS)}")
    if calibration is None or len(calibration) == 0:
        raise EdgeCNNError("quantization needs at least one calibration sample (or a "
                           "calibration table)")
    if not 0 < percentile <= 100:
        raise EdgeCNNError(f"calibration percentile must be in (0, 100], got {percentile}")
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    prepared = onnx.load(str(prepared_path), load_external_data=False)
    input_name = prepared.graph.input[0].name
    want = [d.dim_value or None for d in prepared.graph.input[0].type.tensor_type.shape.dim]
    if calibration.ndim != len(want) or any(
            w is not None and w != s for w, s in zip(want[1:], calibration.shape[1:],
                                                    strict=True)):
        raise EdgeCNNError(f"calibration data has shape {calibration.shape}; the model takes "
                           f"{['N' if w is None else w for w in want]}")
    # Asymmetric ranges for every method (ORT's percentile calibrator defaults to symmetric,
    # which would spend half of a uint8 range on values a ReLU output never takes).
    options: dict[str, Any] = {"symmetric": False}
    if method == "minmax":
        options["moving_average"] = False
    elif method == "percentile":
        options.update(percentile=percentile, num_bins=2048)
    else:
        options.update(num_bins=128, num_quantized_bins=128)
    # The histogram calibrators print progress lines to stdout; the build prints its own.
    with tempfile.TemporaryDirectory(prefix="edgecnn-calibrate-") as work, \
            contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(
            Path(prepared_path), op_types, augmented_model_path=str(Path(work) / "aug.onnx"),
            calibrate_method=_ort_method(method), extra_options=options)
        for start in range(0, len(calibration), chunk):
            calibrator.collect_data(_OneBatch(input_name, calibration[start:start + chunk]))
        tensors = calibrator.compute_data()
        del calibrator
    ranges = {}
    for name, data in tensors.items():
        lo, hi = (np.asarray(v, dtype=np.float32).reshape(-1) for v in data.range_value)
        if lo.size != 1 or hi.size != 1:
            raise EdgeCNNError(f"calibrator returned a per-channel range for {name}; "
                               "only per-tensor activation ranges are supported")
        ranges[name] = (float(lo[0]), float(hi[0]))
    manifest = manifest or calibration_manifest(calibration)
    if "sha256" not in manifest:
        manifest = calibration_manifest(calibration, **manifest)
    return CalibrationTable(method, ranges, model_sha256, sha256_file(prepared_path), manifest,
                            {**options, "chunk": chunk, "samples": len(calibration)},
                            ort_version)


class _OneBatch:
    """ONNX Runtime's CalibrationDataReader protocol over one array (one inference run)."""

    def __init__(self, input_name: str, batch: np.ndarray) -> None:
        self.input_name, self.batch, self.done = input_name, batch, False

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.done:
            return None
        self.done = True
        return {self.input_name: self.batch}

    def rewind(self) -> None:
        self.done = False

"""The OpenVINO runner: CPU plugin, latency hint, a fixed number of threads; .onnx or IR .xml.

OpenVINO reads an ONNX file directly (its ONNX frontend) or the IR (.xml + .bin) that NNCF's
quantization writes (edgecnn/quantize/openvino_nncf.py). The ONNX frontend copies the file's
``metadata_props`` into the model's ``rt_info["framework"]``, and the IR keeps them, so
``.metadata`` gives what the export recorded (arch, mean/std, resolution, ...) for either.

Precision: on a CPU with native bf16 (AVX512_BF16 or AMX — the build machine has AVX512_BF16),
OpenVINO's CPU plugin runs an FP32 model in bf16 by default (``INFERENCE_PRECISION_HINT``
reported ``bfloat16`` here). The runner asks for ``f32`` unless told otherwise, so an FP32
artifact is evaluated and timed as FP32 and an INT8 model's float parts stay FP32, as on ONNX
Runtime; ``inference_precision="bf16"`` opts in to the faster, less exact mode.

The model keeps its dynamic batch dimension: OpenVINO's CPU plugin compiles it once and runs
any batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.backends.base import InputSpec, Runner, run_failure
from edgecnn.errors import EdgeCNNError

SUFFIXES = (".onnx", ".xml")
PRECISIONS = ("f32", "bf16", "f16")


class OpenVINORunner(Runner):
    backend = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, *,
                 inference_precision: str | None = "f32") -> None:
        from edgecnn._optional import require

        ov = require("openvino", "the openvino backend")
        path = Path(path)
        if not path.is_file():
            raise EdgeCNNError(f"OpenVINO model {path} does not exist")
        if path.suffix not in SUFFIXES:
            raise EdgeCNNError(f"OpenVINO runs .onnx or IR .xml files, not {path.name}")
        if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
            raise EdgeCNNError(f"OpenVINO IR {path} has no weights file "
                               f"{path.with_suffix('.bin').name} beside it")
        if threads is not None and threads < 1:
            raise EdgeCNNError(f"threads must be >= 1, got {threads}")
        if inference_precision is not None and inference_precision not in PRECISIONS:
            raise EdgeCNNError(f"OpenVINO inference precision {inference_precision!r} is not "
                               f"valid; use one of {', '.join(PRECISIONS)}")
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if inference_precision:
            config["INFERENCE_PRECISION_HINT"] = inference_precision
        try:
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise EdgeCNNError(f"OpenVINO cannot load {path}: "
                               f"{str(exc).strip().splitlines()[0]}") from exc
        if len(model.inputs) != 1:
            raise EdgeCNNError(f"{path.name} has {len(model.inputs)} inputs; edgecnn models "
                               "take one image batch")
        port = model.inputs[0]
        # an IR from another tool may leave its tensors unnamed; inference feeds by index
        self.input_name = port.get_any_name() if port.get_names() else "input"
        self._spec = InputSpec(self.input_name, tuple(
            d.get_length() if d.is_static else None for d in port.get_partial_shape()))
        self.request = self.compiled.create_infer_request()
        self.path = path
        self.threads = threads
        self.inference_precision = self.compiled.get_property(
            "INFERENCE_PRECISION_HINT").get_type_name()
        self.metadata = _framework_metadata(model)

    def input_spec(self) -> InputSpec:
        return self._spec

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._check_open(self.path.name)
        self._spec.check(batch, self.path.name)
        try:
            self.request.infer({0: np.ascontiguousarray(batch, np.float32)})
        except RuntimeError as exc:  # OpenVINO's shape inference of a corrupt IR, at run time
            raise run_failure(self.path.name, "OpenVINO", exc) from exc
        # The output tensor's memory is reused by the next inference: copy it out.
        return self.request.get_output_tensor(0).data.copy()

    def _release(self) -> None:
        self.request = self.compiled = None  # the compiled model's memory goes with them


def _framework_metadata(model) -> dict[str, str]:
    """ONNX metadata_props as the ONNX frontend stored them (rt_info['framework'])."""
    if not model.has_rt_info(["framework"]):
        return {}
    keys = model.get_rt_info()["framework"]
    return {str(k): str(model.get_rt_info(["framework", k]).astype(str)) for k in keys}

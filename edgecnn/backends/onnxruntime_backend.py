"""The ONNX Runtime runner (CPU execution provider; CUDA/TensorRT providers where installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.backends.base import InputSpec, Runner, run_failure
from edgecnn.errors import EdgeCNNError


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        from edgecnn._optional import require

        ort = require("onnxruntime", "the onnxruntime backend")
        path = Path(path)
        if not path.is_file():
            raise EdgeCNNError(f"ONNX model {path} does not exist")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise EdgeCNNError(f"ONNX Runtime cannot load {path}: "
                               f"{str(exc).splitlines()[0]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._spec = InputSpec(inp.name, tuple(d if isinstance(d, int) else None
                                               for d in inp.shape))
        self.path = path
        # What the export wrote into the file (arch, mean/std, resolution, ...): enough to
        # evaluate the artifact without the model's code.
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def input_spec(self) -> InputSpec:
        return self._spec

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._check_open(self.path.name)
        self._spec.check(batch, self.path.name)
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(batch,
                                                                                np.float32)})[0]
        except Exception as exc:  # ORT's own Fail/RuntimeException types, for a corrupt graph
            raise run_failure(self.path.name, "ONNX Runtime", exc) from exc

    def _release(self) -> None:
        self.session = None  # ONNX Runtime frees the session's arena with the last reference

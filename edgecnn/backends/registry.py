"""Backends by name: which artifacts each runs and how to open a runner on one."""

from __future__ import annotations

from pathlib import Path

from edgecnn.backends.base import Runner
from edgecnn.errors import EdgeCNNError

BACKENDS = {
    "onnxruntime": "ONNX Runtime, CPU execution provider (.onnx)",
    "torch": "PyTorch eager, CPU or CUDA (a model built by edgecnn, in memory)",
    "tensorrt": "TensorRT engine built by edgecnn on this device (.plan + sidecar)",
    "tflite": "LiteRT (TensorFlow Lite) interpreter with XNNPACK, CPU (.tflite)",
    "openvino": "OpenVINO runtime, CPU (.onnx or OpenVINO IR .xml)",
}


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise EdgeCNNError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return name


def open_runner(backend: str, artifact: str | Path, threads: int | None = None) -> Runner:
    """A runner of ``backend`` on an artifact file."""
    check_backend(backend)
    if backend == "onnxruntime":
        from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

        return OnnxRuntimeRunner(artifact, threads=threads)
    if backend == "tensorrt":
        from edgecnn.backends.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(artifact)
    if backend == "tflite":
        from edgecnn.backends.tflite_backend import TFLiteRunner

        return TFLiteRunner(artifact, threads=threads)
    if backend == "openvino":
        from edgecnn.backends.openvino_backend import OpenVINORunner

        return OpenVINORunner(artifact, threads=threads)
    raise EdgeCNNError(f"the {backend} backend runs models in memory, not the file {artifact}; "
                       "open it with TorchRunner(model)")

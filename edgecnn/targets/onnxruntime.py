"""ONNX Runtime on the CPU: the FP32 ONNX every build exports (the reference of every accuracy)
and the INT8 Q/DQ ONNX of the quantize stage, laid out for ONNX Runtime's int8 kernels."""

from __future__ import annotations

from pathlib import Path

from edgecnn.targets.base import Target


def open_runner(path: str | Path, threads: int | None):
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, threads=threads)


def int8_coverage(runner):
    from edgecnn.bench.int8_coverage import onnx_float_islands

    return onnx_float_islands(runner.path)


TARGET = Target(
    name="onnxruntime", title="ONNX Runtime, CPU execution provider (.onnx)",
    suffixes=(".onnx",), packages=("onnxruntime",), modules=("onnxruntime",),
    extra="runtime", open_runner=open_runner, int8_coverage=int8_coverage, always_built=True,
    runs_fp32_onnx=True)

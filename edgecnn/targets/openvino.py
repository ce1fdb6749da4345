"""OpenVINO on x86 CPUs: the FP32 ONNX read by OpenVINO, and NNCF's INT8 IR (.xml + .bin) of
the quantize stage."""

from __future__ import annotations

from pathlib import Path

from edgecnn.targets.base import Target


def open_runner(path: str | Path, threads: int | None):
    from edgecnn.backends.openvino_backend import OpenVINORunner

    return OpenVINORunner(path, threads=threads)


def int8_coverage(runner):
    from edgecnn.bench.int8_coverage import openvino_f32_layers

    return openvino_f32_layers(runner.compiled)


TARGET = Target(
    name="openvino", title="OpenVINO runtime, CPU (.onnx or OpenVINO IR .xml)",
    # .onnx too, but a bare .onnx file is ONNX Runtime's unless --backend says openvino
    suffixes=(".xml", ".onnx"), packages=("openvino", "nncf"), modules=("openvino", "nncf"),
    extra="openvino", open_runner=open_runner, int8_coverage=int8_coverage, runs_fp32_onnx=True)

"""TensorRT on NVIDIA GPUs (desktop and Jetson): engines built on the device that runs them,
from the FP32 ONNX, an FP16 copy of it, or ModelOpt's Q/DQ ONNX (the recipe's compile stage,
:mod:`edgecnn.recipe.tensorrt_target`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgecnn.errors import EdgeCNNError
from edgecnn.sections import MAX_BATCH, Section
from edgecnn.targets.base import BuildInputs, Target


class TensorRTSection(Section):
    """Engines built on the device that runs them (see edgecnn/backends/tensorrt)."""

    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(
        default_factory=lambda: ["fp16", "int8"], min_length=1,
        description="one engine each; int8 from the Q/DQ ONNX (needs quantize.method ptq)")
    fp16_mode: Literal["graph", "flag"] = Field(
        "graph", description="graph: an FP16 ONNX, strongly typed (TensorRT 10 and 11); flag: "
                             "the FP32 ONNX with the FP16 builder flag (TensorRT 10 only)")
    opt_batch: int | None = Field(None, ge=1, le=MAX_BATCH,
                                  description="profile's opt batch; default: the largest "
                                              "benchmark batch")
    workspace_mib: int = Field(1024, ge=1, le=1 << 20, description="builder workspace limit")
    dla_core: int | None = Field(None, ge=0, le=15, description="Jetson DLA core, GPU fallback on")
    sparse_weights: bool = Field(False, description="2:4 sparse weights on sparse tensor cores")
    timing_cache: str | None = Field(
        None, description="timing cache file; default: one per GPU and TensorRT version in "
                          "the edgecnn cache, reused by every build")
    cuda_graph: bool = Field(False, description="replay each inference as a CUDA graph")


def open_runner(path: str | Path, threads: int | None):
    from edgecnn.backends.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path)


def open_build_runner(build: BuildInputs, key: str, path: Path):
    """The engine with the sha256 of the ONNX it was built from: a stale engine is refused."""
    from edgecnn.backends.tensorrt.runner import TensorRTRunner
    from edgecnn.hashing import sha256_file

    source = build.run_dir / build.done["compile"]["targets"]["tensorrt"]["onnx"][key]
    return TensorRTRunner(path, onnx_sha256=sha256_file(source),
                          cuda_graph=build.recipe.export.tensorrt.cuda_graph)


def check_recipe(recipe: Any) -> None:
    """INT8 engines are built from the Q/DQ ONNX of PTQ, which ModelOpt makes: both are
    refused before training, not at the quantize stage."""
    if "tensorrt" not in recipe.export.targets or "int8" not in recipe.export.tensorrt.precisions:
        return
    if recipe.quantize.method != "ptq":
        raise EdgeCNNError("export.tensorrt.precisions has int8, which is built from the Q/DQ "
                           "ONNX of quantize.method: ptq; set it or drop int8")
    from edgecnn.quantize.modelopt_tensorrt import require_modelopt

    require_modelopt()


def unavailable_reason() -> str | None:
    from edgecnn.backends.tensorrt.availability import unavailable_reason as reason

    return reason()


TARGET = Target(
    name="tensorrt", title="TensorRT engine built by edgecnn on this device (.plan + sidecar)",
    suffixes=(".plan",), packages=("tensorrt",), modules=("tensorrt", "polygraphy"),
    extra="tensorrt", open_runner=open_runner, cpu=False, section=TensorRTSection,
    open_build_runner=open_build_runner, check_recipe=check_recipe,
    unavailable_reason=unavailable_reason)

"""LiteRT (TensorFlow Lite) for ARM CPUs: .tflite files converted from the torch model
(litert-torch), run by the LiteRT interpreter with XNNPACK.

The files are converted from the torch model of each variant, not from the ONNX, so the target
has a build stage of its own; full INT8 calibrates on the same images as the ONNX quantizers.
Every file is compared with its torch model on the export's check images; an FP32 file that
differs by more than ``export.tflite.max_abs_diff`` stops the build, as the ONNX export does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgecnn.artifacts import ArtifactKey, file_stem, suffix
from edgecnn.errors import EdgeCNNError
from edgecnn.sections import Section
from edgecnn.targets.base import BuildInputs, Target, TargetStage


class TFLiteSection(Section):
    """LiteRT (TensorFlow Lite) files for ARM CPUs, converted from the torch model."""

    precisions: list[Literal["fp32", "fp16", "dynamic_int8", "int8"]] = Field(
        default_factory=lambda: ["fp32", "int8"], min_length=1,
        description="one .tflite each: fp32; fp16 weights; dynamic_int8 (int8 weights, "
                    "activations quantized at run time); int8 (full INT8, calibrated on the "
                    "quantize section's calibration images)")
    io: Literal["float", "int8"] = Field(
        "float", description="full INT8 models' input and output: float32, or int8 with the "
                             "scale and zero point in the file")
    layout: Literal["NCHW", "NHWC"] = Field(
        "NCHW", description="input layout; NHWC is what mobile camera pipelines hand over")
    max_abs_diff: float = Field(1e-3, gt=0, le=1e6,
                                description="tolerance of the FP32 file's numeric check against "
                                            "torch")


def run_tflite(build: BuildInputs, folder: Path) -> dict[str, Any]:
    from edgecnn.export.tflite_export import export_summary, export_tflite

    cfg = build.recipe.export.tflite
    checks = build.check_images()
    calibration = build.calibration_array() if "int8" in cfg.precisions else None
    artifacts, runs, files = {}, {}, {}
    for variant in build.variants():
        model = build.load_model(variant)
        for precision in cfg.precisions:
            path = folder / f"{file_stem(variant)}.{precision}.tflite"
            result = export_tflite(
                model, path, build.resolution(), precision=precision,
                calibration=calibration if precision == "int8" else None,
                io=cfg.io if precision == "int8" else "float", layout=cfg.layout,
                check_samples=checks, threads=build.recipe.benchmark.threads)
            build.console.print(f"  {export_summary(result)}")
            if precision == "fp32" and not result.check.max_abs_diff <= cfg.max_abs_diff:
                raise EdgeCNNError(
                    f"{path.name} differs from the torch model by "
                    f"{result.check.max_abs_diff:.3e} (> export.tflite.max_abs_diff "
                    f"{cfg.max_abs_diff})")
            name = f"tflite_{precision}{suffix(variant)}"
            key = str(ArtifactKey("tflite", precision, variant))
            artifacts[name], runs[key] = build.rel(path), name
            summary = {k: v for k, v in result.to_dict().items() if k != "ops"}
            files[key] = {**summary, "path": build.rel(path), "float_ops": result.float_ops}
    return {"files": files, "artifacts": artifacts, "runs": runs}


def open_runner(path: str | Path, threads: int | None):
    from edgecnn.backends.tflite_backend import TFLiteRunner

    return TFLiteRunner(path, threads=threads)


def calibrates(recipe: Any) -> bool:
    return "int8" in recipe.export.tflite.precisions


def int8_coverage(runner):
    from edgecnn.bench.int8_coverage import tflite_coverage

    return tflite_coverage(runner.path, runner.interpreter)


TARGET = Target(
    name="tflite", title="LiteRT (TensorFlow Lite) interpreter with XNNPACK, CPU (.tflite)",
    suffixes=(".tflite",), packages=("ai-edge-litert", "litert-torch", "litert-quantizer"),
    modules=("litert_torch", "litert_quantizer", "ai_edge_litert"), extra="tflite",
    open_runner=open_runner, int8_coverage=int8_coverage, section=TFLiteSection,
    calibrates=calibrates,
    # the conversion reads the check images (export.onnx.check_samples), the calibration
    # (quantize) and the threads its numeric check runs on
    stage=TargetStage("tflite", ("model", "data", "prune", "quantize", "export.targets",
                                 "export.onnx", "export.tflite", "benchmark.threads"),
                      run_tflite))

"""The ``tflite`` export target inside ``edgecnn build``: LiteRT models for ARM CPUs.

LiteRT files are converted from the torch model (litert-torch), not from the ONNX, so this stage
reads the model of each variant as the export stage does, and calibrates full INT8 on the same
images as the ONNX quantizers (:func:`edgecnn.recipe.inputs.calibration_images`). Every
file is compared with its torch model on the export's check images; an FP32 file that differs by
more than ``export.tflite.max_abs_diff`` stops the build, as the ONNX export does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.artifacts import ArtifactKey, file_stem, suffix
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.inputs import (
    calibration_images,
    check_images,
    load_model,
    rel,
    resolution,
)
from edgecnn.recipe.variants import variants

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext


def run_tflite(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    from edgecnn.export.tflite_export import export_summary, export_tflite

    cfg = ctx.recipe.export.tflite
    checks = check_images(ctx)
    calibration = calibration_images(ctx).images if "int8" in cfg.precisions else None
    artifacts, runs, files = {}, {}, {}
    for variant in variants(ctx.recipe):
        model = load_model(ctx, variant)
        for precision in cfg.precisions:
            path = folder / f"{file_stem(variant)}.{precision}.tflite"
            result = export_tflite(
                model, path, resolution(ctx), precision=precision,
                calibration=calibration if precision == "int8" else None,
                io=cfg.io if precision == "int8" else "float", layout=cfg.layout,
                check_samples=checks, threads=ctx.recipe.benchmark.threads)
            ctx.console.print(f"  {export_summary(result)}")
            if precision == "fp32" and not result.check.max_abs_diff <= cfg.max_abs_diff:
                raise EdgeCNNError(
                    f"{path.name} differs from the torch model by "
                    f"{result.check.max_abs_diff:.3e} (> export.tflite.max_abs_diff "
                    f"{cfg.max_abs_diff})")
            name = f"tflite_{precision}{suffix(variant)}"
            key = str(ArtifactKey("tflite", precision, variant))
            artifacts[name], runs[key] = rel(ctx, path), name
            summary = {k: v for k, v in result.to_dict().items() if k != "ops"}
            files[key] = {**summary, "path": rel(ctx, path), "float_ops": result.float_ops}
    return {"files": files, "artifacts": artifacts, "runs": runs}

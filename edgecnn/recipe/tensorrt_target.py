"""The ``tensorrt`` export target inside ``edgecnn build``: engines in the compile stage.

Where TensorRT cannot run (not installed, no CUDA GPU -- as on the machines edgecnn is
developed on), the target stops with the reason, the build goes on with its other targets, and
the report says which target stopped and why. Where it can, one engine per precision of
``export.tensorrt`` is built from the matching ONNX: the FP32 export, an FP16 copy of it
(precision in the graph, by ModelOpt's AutoCast), or the ModelOpt Q/DQ ONNX of the quantize stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.artifacts import DENSE, PRUNED, ArtifactKey, file_stem, suffix
from edgecnn.backends.tensorrt.availability import unavailable_reason
from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.modelopt_fp16 import fp16_onnx
from edgecnn.recipe.variants import variants
from edgecnn.settings import cache_dir

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext

def environment(ctx: BuildContext) -> dict[str, Any]:
    """What a tensorrt compile depends on beyond its inputs: the device's facts."""
    if "tensorrt" not in ctx.recipe.export.targets:
        return {}
    from edgecnn.backends.tensorrt.device import device_facts

    return device_facts().to_dict()


def _timing_cache(ctx: BuildContext, facts) -> Path:
    configured = ctx.recipe.export.tensorrt.timing_cache
    if configured:
        return Path(configured).expanduser()
    gpu = (facts.gpu_name or "gpu").replace(" ", "_")
    return cache_dir() / "tensorrt" / f"{gpu}-trt{facts.tensorrt_version}.timing.cache"


def onnx_for(ctx: BuildContext, precision: str, fp16_mode: str, folder: Path,
             variant: str = DENSE) -> Path:
    """The ONNX an engine of ``precision`` is built from."""
    fp32 = ctx.artifact("export", f"fp32{suffix(variant)}")
    if precision == "fp32" or (precision == "fp16" and fp16_mode == "flag"):
        return fp32
    if precision == "int8":
        name = f"int8_tensorrt{suffix(variant)}"
        if name not in ctx.done.get("quantize", {}).get("artifacts", {}):
            raise EdgeCNNError("a TensorRT int8 engine is built from the Q/DQ ONNX of the "
                               "quantize stage; set quantize.method: ptq or drop int8 from "
                               "export.tensorrt.precisions")
        return ctx.artifact("quantize", name)
    return fp16_onnx(fp32, folder / f"{file_stem(variant)}.fp16.onnx")


def compile_tensorrt(ctx: BuildContext, folder: Path) -> dict[str, Any]:
    """{"status": "built" | "stopped", "reason", "engines": {artifact key: path},
    "onnx": {artifact key: the ONNX it was built from}, ...}; one engine per precision and
    model variant. A 2:4-pruned variant sets the sparse-weights flag."""
    from rich.markup import escape

    reason = unavailable_reason()
    if reason is not None:
        ctx.console.print(f"  [yellow]tensorrt target stopped[/yellow]: TensorRT "
                          f"{escape(reason)}; the other targets and the report go on")
        return {"status": "stopped", "reason": f"TensorRT {reason}", "engines": {}}
    from edgecnn.backends.tensorrt.build import build_engine
    from edgecnn.backends.tensorrt.device import device_facts
    from edgecnn.backends.tensorrt.settings import builder_settings, profile_for
    from edgecnn.hashing import sha256_file

    cfg = ctx.recipe.export.tensorrt
    facts = device_facts()
    profile = profile_for(ctx.recipe.benchmark.batch_sizes, opt=cfg.opt_batch,
                          dynamic_batch=ctx.recipe.export.onnx.dynamic_batch)
    cache = _timing_cache(ctx, facts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    engines, onnx_files = {}, {}
    for variant in variants(ctx.recipe):
        sparse = cfg.sparse_weights or (variant == PRUNED
                                        and ctx.recipe.prune.method == "two_four")
        for precision in cfg.precisions:
            source = onnx_for(ctx, precision, cfg.fp16_mode, folder, variant)
            settings = builder_settings(
                precision, tensorrt_version=facts.tensorrt_version, profile=profile,
                fp16_mode=cfg.fp16_mode, workspace_mib=cfg.workspace_mib,
                dla_core=cfg.dla_core, sparse_weights=sparse, timing_cache=str(cache))
            engine = folder / f"{file_stem(variant)}.{precision}.plan"
            build_engine(source, engine, settings, sha256_file(source))
            key = str(ArtifactKey("tensorrt", precision, variant))
            engines[key], onnx_files[key] = engine, source
            ctx.console.print(f"  tensorrt {precision}: {engine.name} from {source.name} on "
                              f"{facts.gpu_name}, TensorRT {facts.tensorrt_version}"
                              + (", sparse weights" if sparse else ""))
    return {"status": "built", "reason": None, "device": facts.to_dict(),
            "engines": engines, "onnx": onnx_files}

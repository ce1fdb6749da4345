"""The ``tensorrt`` export target inside ``edgecnn build``: engines in the compile stage.

Where TensorRT cannot run (not installed, no CUDA GPU -- as on the machines edgecnn is
developed on), the target stops with the reason, the build goes on with its other targets, and
the report says which target stopped and why. Where it can, one engine per precision of
``export.tensorrt`` is built from the matching ONNX: the FP32 export, an FP16 copy of it
(precision in the graph, by ModelOpt's AutoCast), or the ModelOpt Q/DQ ONNX of the quantize stage.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.variants import DENSE, PRUNED, ArtifactKey, file_stem, suffix, variants
from edgecnn.settings import cache_dir

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext

# Python packages the target needs, with what provides them.
NEEDED = {"tensorrt": "TensorRT (JetPack, or pip install tensorrt)",
          "polygraphy": "pip install 'edgecnn[tensorrt]'",
          "cuda.bindings": "cuda-python: pip install 'edgecnn[tensorrt]'"}


def unavailable_reason() -> str | None:
    """Why TensorRT engines cannot be built here, or None when they can."""
    missing = []
    for module, source in NEEDED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package (cuda) is absent
            found = False
        if not found:
            missing.append(f"{module} ({source})")
    if missing:
        return f"not importable here: {', '.join(missing)}"
    from edgecnn.backends.tensorrt.device import cuda_device

    if cuda_device()[0] is None:
        return "no CUDA GPU is visible"
    return None


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


def fp16_onnx(fp32: Path, out: Path) -> Path:
    """An FP16 copy of the FP32 ONNX with float32 input and output, for TensorRT's strongly
    typed networks (precision in the graph): NVIDIA ModelOpt's AutoCast.

    AutoCast runs the model once on CPU (ONNX Runtime, random inputs: the compile stage has no
    images at hand) and keeps a node FP32 when an input or output there exceeds 512 in
    magnitude (``data_max``: FP16 tops out at 65504, and the margin leaves room for what the
    next layer accumulates) or an initializer exceeds 65504 (``init_max``, FP16's largest
    value). ONNX Runtime's ``convert_float_to_float16``, used before, converts every node and
    clips such initializers. On MobileNetV2 and EfficientNet-B0 (random weights) both keep
    nothing in FP32 and give the same graph but for Cast names and opset (AutoCast writes 19).
    """
    from edgecnn.atomic import atomic_write_bytes
    from edgecnn.quantize.modelopt_tensorrt import INSTALL

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision
        from modelopt.onnx.autocast.logging_config import configure_logging
    except ImportError as exc:
        raise EdgeCNNError(f"the FP16 ONNX for TensorRT is made by NVIDIA ModelOpt's AutoCast "
                           f"(nvidia-modelopt, polygraphy), which cannot be imported here "
                           f"({exc.name or exc} is missing): {INSTALL}") from None
    if not Path(fp32).is_file():
        raise EdgeCNNError(f"ONNX model {fp32} does not exist")
    configure_logging("WARNING")  # its per-node INFO lines; the build prints its own
    model = convert_to_mixed_precision(str(fp32), low_precision_type="fp16",
                                       keep_io_types=True, providers=["cpu"])
    for prop in model.metadata_props:
        if prop.key == "precision":
            prop.value = "fp16"
            break
    else:
        model.metadata_props.add(key="precision", value="fp16")
    atomic_write_bytes(out, model.SerializeToString())
    return out


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

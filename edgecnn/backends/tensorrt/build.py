"""ONNX -> TensorRT engine, on the device that will run it.

Thin on purpose: the decisions (precision, flags, profile, refusals) are made in
:mod:`.settings`; this module hands them to Polygraphy's loaders, which carry the TensorRT
plumbing (ONNX parsing, builder config, timing cache), and writes the engine, its sidecar and the
build log (each layer's precision and tactic, from TensorRT's engine inspector) atomically.
Not run on the machines edgecnn is developed on (no TensorRT there): see README, "TensorRT".
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn._optional import require
from edgecnn.atomic import atomic_write_bytes
from edgecnn.backends.tensorrt.device import device_facts
from edgecnn.backends.tensorrt.settings import BuilderSettings
from edgecnn.backends.tensorrt.sidecar import Sidecar, make_sidecar, write_sidecar
from edgecnn.errors import EdgeCNNError


def build_engine(onnx_path: Path, engine_path: Path, settings: BuilderSettings,
                 onnx_sha256: str) -> Sidecar:
    """Build, write ``engine_path`` + its sidecar + ``<engine>.log.json``; the sidecar."""
    trt = require("tensorrt", "building TensorRT engines")
    require("polygraphy", "building TensorRT engines")
    from polygraphy.exception import PolygraphyException

    try:
        engine = _build(trt, onnx_path, settings)
    except PolygraphyException as exc:  # Polygraphy raises (never returns None) on failure
        raise EdgeCNNError(f"TensorRT could not build an engine from {onnx_path}: "
                           f"{str(exc).strip().splitlines()[-1]}") from exc
    sidecar = make_sidecar(device_facts(), settings, onnx_sha256)
    atomic_write_bytes(engine_path, bytes(engine.serialize()))
    inspector = engine.create_engine_inspector()
    layers = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    atomic_write_bytes(engine_path.with_name(engine_path.name + ".log.json"), json.dumps(
        {"settings": settings.to_dict(), "layers": json.loads(layers)}, indent=1).encode())
    write_sidecar(engine_path, sidecar)
    return sidecar


def _build(trt, onnx_path: Path, settings: BuilderSettings):
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineFromNetwork,
        NetworkFromOnnxPath,
        PostprocessConfig,
        Profile,
    )

    builder, network, parser = NetworkFromOnnxPath(
        str(onnx_path), strongly_typed=settings.strongly_typed)()
    if network.num_inputs != 1:
        raise EdgeCNNError(f"{onnx_path} has {network.num_inputs} inputs; edgecnn engines take one")
    tensor = network.get_input(0)
    min_shape, opt_shape, max_shape = settings.profile.shapes(tuple(tensor.shape)[1:])
    profile = Profile().add(tensor.name, min=min_shape, opt=opt_shape, max=max_shape)
    config = CreateConfig(
        fp16="FP16" in settings.flags, profiles=[profile],
        sparse_weights="SPARSE_WEIGHTS" in settings.flags,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: settings.workspace_bytes},
        load_timing_cache=settings.timing_cache,
        use_dla=settings.dla_core is not None,
        allow_gpu_fallback="GPU_FALLBACK" in settings.flags,
        # per-layer precision and tactic in the build log
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
    )
    if settings.dla_core:  # Polygraphy selects DLA core 0; pick the recipe's core instead
        config = PostprocessConfig(config, lambda _b, _n, cfg: setattr(cfg, "DLA_core",
                                                                        settings.dla_core))
    return EngineFromNetwork((builder, network, parser), config,
                             save_timing_cache=settings.timing_cache)()

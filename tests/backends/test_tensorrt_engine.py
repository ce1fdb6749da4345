"""Real TensorRT engines: build, sidecar, run and time. Skips (with the reason) without
TensorRT + cuda-python + a CUDA GPU, which is the case on edgecnn's development machines."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.backends.tensorrt.availability import unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"TensorRT {REASON}")


@pytest.fixture(scope="module")
def resnet20_onnx(tmp_path_factory, shared):
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    model = create_model("resnet20", pretrained=str(
        shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th"))
    path = tmp_path_factory.mktemp("trt") / "resnet20.onnx"
    export_onnx(model, path, 32)
    return path


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime_and_times_like_trtexec(resnet20_onnx, tmp_path, precision):
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.backends.tensorrt.build import build_engine
    from edgecnn.backends.tensorrt.device import device_facts
    from edgecnn.backends.tensorrt.runner import TensorRTRunner
    from edgecnn.backends.tensorrt.settings import Profile, builder_settings
    from edgecnn.bench.gpu_timing import summarize_gpu_timings
    from edgecnn.hashing import sha256_file
    from edgecnn.quantize.modelopt_fp16 import fp16_onnx

    source = resnet20_onnx if precision == "fp32" else fp16_onnx(resnet20_onnx,
                                                                 tmp_path / "fp16.onnx")
    settings = builder_settings(precision, tensorrt_version=device_facts().tensorrt_version,
                                profile=Profile(1, 8, 8),
                                timing_cache=str(tmp_path / "timing.cache"))
    engine = tmp_path / f"model.{precision}.plan"
    sidecar = build_engine(source, engine, settings, sha256_file(source))
    assert sidecar.precision == precision and (tmp_path / "timing.cache").is_file()
    runner = TensorRTRunner(engine, onnx_sha256=sha256_file(source))
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)
    reference = OnnxRuntimeRunner(resnet20_onnx).run(x)
    got = runner.run(x)
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    assert np.abs(got - reference).max() < tolerance * max(1.0, np.abs(reference).max())
    timings, stats = summarize_gpu_timings(**vars(runner.time_batch(8, iterations=20,
                                                                    warmup=5)))
    assert timings.iterations == 20 and stats.p50_ms > 0 and timings.compute_ms.median > 0
    runner.close()

"""TensorRT decisions that need no TensorRT: builder settings, profiles, sidecar checks, L4T.

(TensorRT itself cannot be installed on the development machines; the build and runner modules
are exercised by tests/backends/test_tensorrt_engine.py where it is importable.)
"""

from __future__ import annotations

import dataclasses

import pytest

from edgecnn.backends.tensorrt.device import DeviceFacts, parse_l4t_release
from edgecnn.backends.tensorrt.settings import Profile, builder_settings, profile_for
from edgecnn.backends.tensorrt.sidecar import (
    EngineMismatch,
    check_engine,
    make_sidecar,
    write_sidecar,
)
from edgecnn.errors import EdgeCNNError

PROFILE = Profile(1, 8, 8)
ORIN = DeviceFacts("Orin", "8.7", "10.3.0", "36.4.0")


# -- precision -> builder settings ------------------------------------------------------------

@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
def test_precision_in_the_graph_is_strongly_typed_without_flags(version):
    for precision in ("fp32", "fp16", "int8"):
        s = builder_settings(precision, tensorrt_version=version, profile=PROFILE)
        assert s.strongly_typed and s.flags == () and s.onnx_precision == precision


def test_fp16_flag_is_tensorrt_10_only():
    s = builder_settings("fp16", tensorrt_version="10.3.0", profile=PROFILE, fp16_mode="flag")
    assert s.flags == ("FP16",) and not s.strongly_typed and s.onnx_precision == "fp32"
    with pytest.raises(EdgeCNNError, match=r"removed in TensorRT 11.*fp16_mode: graph"):
        builder_settings("fp16", tensorrt_version="11.0.1", profile=PROFILE, fp16_mode="flag")


def test_dla_sparse_workspace_and_refusals():
    s = builder_settings("int8", tensorrt_version="10.3.0", profile=PROFILE, dla_core=1,
                         sparse_weights=True, workspace_mib=256, timing_cache="t.cache")
    assert s.flags == ("GPU_FALLBACK", "SPARSE_WEIGHTS")
    assert s.dla_core == 1 and s.workspace_bytes == 256 * 2**20 and s.timing_cache == "t.cache"
    with pytest.raises(EdgeCNNError, match="DLA runs FP16 and INT8 only"):
        builder_settings("fp32", tensorrt_version="10.3.0", profile=PROFILE, dla_core=0)
    with pytest.raises(EdgeCNNError, match="too old"):
        builder_settings("fp16", tensorrt_version="8.6.1", profile=PROFILE)
    with pytest.raises(EdgeCNNError, match="not one of fp32, fp16, int8"):
        builder_settings("bf16", tensorrt_version="10.3.0", profile=PROFILE)


# -- optimisation profiles from the recipe ----------------------------------------------------

def test_profile_covers_the_benchmarked_batches():
    assert profile_for([1, 8]) == Profile(1, 8, 8)
    assert profile_for([8, 1, 64], opt=8) == Profile(1, 8, 64)
    assert Profile(1, 8, 64).shapes((3, 224, 224)) == ((1, 3, 224, 224), (8, 3, 224, 224),
                                                       (64, 3, 224, 224))
    with pytest.raises(EdgeCNNError, match=r"outside the benchmarked batch sizes 1\.\.8"):
        profile_for([1, 8], opt=16)


def test_fixed_batch_onnx_admits_only_its_batch():
    assert profile_for([4], dynamic_batch=False, onnx_batch=4) == Profile(4, 4, 4)
    with pytest.raises(EdgeCNNError, match=r"fixed batch of 1.*dynamic_batch: true"):
        profile_for([1, 8], dynamic_batch=False, onnx_batch=1)


# -- sidecars: the engine runs only where it was built ----------------------------------------

@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "model.plan"
    path.write_bytes(b"engine bytes")
    settings = builder_settings("fp16", tensorrt_version="10.3.0", profile=PROFILE)
    write_sidecar(path, make_sidecar(ORIN, settings, onnx_sha256="a" * 64))
    return path


def test_same_device_passes(engine):
    sidecar = check_engine(engine, ORIN, onnx_sha256="a" * 64)
    assert sidecar.jetpack == "6.1/6.2" and sidecar.profile == {"min": 1, "opt": 8, "max": 8}
    assert sidecar.settings["precision"] == "fp16"


@pytest.mark.parametrize(("change", "message"), [
    ({"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}, "built for Orin"),
    ({"tensorrt_version": "10.7.0"}, "TensorRT 10.3.0 built it"),
    ({"l4t_release": "36.3.0"}, "built on L4T 36.4.0"),
    ({"tensorrt_version": None}, "this device has no TensorRT"),
])
def test_other_device_or_tensorrt_is_refused_with_the_rebuild_message(engine, change, message):
    with pytest.raises(EngineMismatch, match=message) as info:
        check_engine(engine, dataclasses.replace(ORIN, **change))
    assert "rebuild it on this device" in str(info.value)


def test_changed_onnx_is_refused(engine):
    with pytest.raises(EngineMismatch, match="built from ONNX sha256 aaaaaaaaaaaa"):
        check_engine(engine, ORIN, onnx_sha256="b" * 64)


def test_missing_or_corrupt_sidecar_is_refused(engine):
    sidecar = engine.with_name("model.plan.json")
    sidecar.write_text("{not json")
    with pytest.raises(EngineMismatch, match=r"unreadable.*rebuild"):
        check_engine(engine, ORIN)
    sidecar.unlink()
    with pytest.raises(EngineMismatch, match="has no sidecar"):
        check_engine(engine, ORIN)


def test_l4t_release_parsing():
    text = ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
            "DATE: Fri Sep 13 04:36:44 UTC 2024\n")
    assert parse_l4t_release(text) == "36.4.0"
    assert DeviceFacts(None, None, None, "36.4.0").jetpack == "6.1/6.2"
    assert parse_l4t_release("not a tegra release") is None
    assert DeviceFacts(None, None, None, None).jetpack is None

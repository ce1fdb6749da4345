"""ONNX export of every family: dynamic batch, metadata, checker, same function as torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_export import export_onnx, read_metadata
from edgecnn.models import create_model

# One model of each family, including TF-'SAME' padding (Lite) and a separable rewrite.
CASES = [
    ("resnet20", {}), ("resnet18", {"cifar_stem": True}), ("densenet_bc_100_k12", {}),
    ("mobilenet_v2", {"cifar_stem": True}), ("mobilenet_v3_small", {"cifar_stem": True}),
    ("efficientnet_lite0", {"cifar_stem": True}),
    ("efficientnet_b0", {"cifar_stem": True, "separable": "depthwise"}),
]


@pytest.mark.parametrize(("name", "options"), CASES, ids=[c[0] for c in CASES])
def test_export_matches_torch_at_two_batch_sizes(tmp_path, name, options):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **options).eval()
    info = export_onnx(model, tmp_path / f"{name}.onnx", 32)
    runner = OnnxRuntimeRunner(info.path)
    assert runner.input_spec().shape == (None, 3, 32, 32)
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)
        expected = model(torch.from_numpy(x)).detach().numpy()
        # Relative to the logits' scale: an untrained DenseNet's logits reach 1e5.
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(runner.run(x) - expected).max() / scale < 1e-5
    meta = read_metadata(info.path)
    assert meta["arch"] == name and meta["resolution"] == "32"


def test_low_opset_is_refused(tmp_path):
    with pytest.raises(EdgeCNNError, match="opset must be >= 17"):
        export_onnx(create_model("resnet20"), tmp_path / "m.onnx", 32, opset=13)


def test_runner_rejects_a_wrong_shape(tmp_path):
    path = export_onnx(create_model("resnet20"), tmp_path / "m.onnx", 32).path
    with pytest.raises(EdgeCNNError, match=r"takes input \(None, 3, 32, 32\), got \(1, 3, 64"):
        OnnxRuntimeRunner(path).run(np.zeros((1, 3, 64, 64), np.float32))


def test_corrupt_onnx_file_is_named(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EdgeCNNError, match=r"ONNX Runtime cannot load .*bad.onnx"):
        OnnxRuntimeRunner(bad)

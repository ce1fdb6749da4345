"""A full-INT8 LiteRT model with a ReLU that never fires still loads in XNNPACK.

After one epoch of the CIFAR-10 zoo, the 1-channel squeeze of an SE-ResNet-20 block was dead
(calibrated range [0, ~0], scale 4e-12): XNNPACK refused the requantization ratio and the file
did not load at all. The model here plants the same dead squeeze (a bias far below zero)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("litert_torch", reason="the LiteRT export needs litert-torch (tflite extra)")
pytest.importorskip("litert_quantizer", reason="LiteRT quantization needs litert-quantizer")
pytest.importorskip("ai_edge_litert", reason="the tflite runner needs ai-edge-litert")

from edgecnn.errors import EdgeCNNError
from edgecnn.export.tflite_export import export_tflite
from edgecnn.models import create_model
from edgecnn.quantize import litert_quantize
from edgecnn.quantize.litert_quantize import widen_empty_ranges


def dead_squeeze_model() -> nn.Module:
    """SE-ResNet-20 whose first SE squeeze (16 -> 1 channel) never fires."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, se_reduction=16).eval()
    with torch.no_grad():
        model.layer1[0].se.fc1.bias.fill_(-1e3)  # ReLU(squeeze) == 0 on every image
    return model


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.standard_normal((48, 3, 32, 32)).astype(np.float32)


def _export(path, images):
    return export_tflite(dead_squeeze_model(), path, 32, precision="int8",
                         calibration=images[:32], check_samples=images[32:], threads=1)


def test_a_dead_relu_leaves_the_int8_model_loadable(images, tmp_path):
    result = _export(tmp_path / "dead.int8.tflite", images)  # loads, runs and is checked
    assert result.check.top1_agreement >= 0.9
    assert result.ops.float_ops == []


def test_without_widening_xnnpack_refuses_the_file(images, tmp_path, monkeypatch):
    # the failure the widening prevents, so the test above cannot pass by luck
    monkeypatch.setattr(litert_quantize, "MIN_ACTIVATION_RANGE", 0.0)
    with pytest.raises(EdgeCNNError, match="XNNPACK"):
        _export(tmp_path / "dead.int8.tflite", images)


def test_only_ranges_narrower_than_the_floor_are_widened():
    qsvs = {"dead": {"min": np.zeros(1, np.float32), "max": np.full(1, 1e-12, np.float32)},
            "alive": {"min": np.full(1, -2.0, np.float32), "max": np.full(1, 3.0, np.float32)},
            "weights": {}}
    assert widen_empty_ranges(qsvs) == ["dead"]
    assert qsvs["dead"]["max"][0] == pytest.approx(litert_quantize.MIN_ACTIVATION_RANGE)
    assert qsvs["alive"]["max"][0] == 3.0

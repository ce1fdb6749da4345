"""Real models for the quantization tests: CIFAR ResNet-20 with its published weights, and a
real calibration set (CIFAR-10 JPEG copy train images), exported once per session."""

from __future__ import annotations

import pytest

RESNET20 = "weights/cifar10-resnet/resnet20-12fca82f.th"


@pytest.fixture(scope="session")
def resnet20_fp32(shared, tmp_path_factory):
    """(FP32 ONNX path, torch model) of the real CIFAR ResNet-20, 32x32, dynamic batch."""
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    model = create_model("resnet20", pretrained=str(shared / RESNET20), num_classes=10)
    path = tmp_path_factory.mktemp("resnet20") / "fp32.onnx"
    export_onnx(model, path, 32)
    return path, model


@pytest.fixture(scope="session")
def resnet20_calibration(resnet20_fp32, cifar_test_split):
    """128 normalised CIFAR-10 images (from the test split: the train split takes a minute to
    decode, and these tests check mechanics, not accuracy claims)."""
    from edgecnn.data.eval_batches import normalize_nchw

    card = resnet20_fp32[1].card
    return normalize_nchw(cifar_test_split.images[:128], card.mean, card.std)

"""Structured channel pruning over every family: consistent graphs, real forward passes, ONNX."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.models import create_model, get_spec, list_models
from edgecnn.prune.structured import prune_channels

# One model of every family, and of every block type within a family (bottleneck, grouped,
# squeeze-excitation, DenseNet concatenation, inverted residual with SE and h-swish, MBConv).
# DenseNet-121 is left to DenseNet-BC-100: the same bottleneck-and-transition blocks, 18 s less.
REPRESENTATIVES = ["resnet18", "resnext50_32x4d", "se_resnext50_32x4d", "resnet20",
                   "densenet_bc_100_k12", "mobilenet_v1", "mobilenet_v2",
                   "mobilenet_v3_small", "efficientnet_b0", "efficientnet_lite0",
                   "searchable_mbconv"]


def test_representatives_cover_every_family():
    families = {get_spec(n).family for n in list_models()}
    assert families == {get_spec(n).family for n in REPRESENTATIVES}


@pytest.mark.parametrize("arch", REPRESENTATIVES)
def test_thirty_percent_channel_pruning_keeps_a_valid_model_and_onnx(arch, tmp_path):
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.export.onnx_export import export_onnx

    torch.manual_seed(0)
    resolution = 32 if get_spec(arch).family == "cifar_resnet" or arch.startswith(
        "densenet_bc") else 64
    model = create_model(arch, num_classes=10)
    result = prune_channels(model, resolution, ratio=0.3)
    assert result.params_after < 0.8 * result.params_before
    assert result.macs_after < 0.8 * result.macs_before
    model.eval()
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 10)  # the classifier's outputs were not pruned
    path = tmp_path / f"{arch}.onnx"
    export_onnx(model, path, resolution, simplify=False)
    onnx_logits = OnnxRuntimeRunner(path).run(x.numpy())
    assert np.abs(onnx_logits - logits.numpy()).max() < 1e-3


def test_macs_target_is_reached():
    model = create_model("resnet20")
    result = prune_channels(model, 32, macs_fraction=0.5)
    assert 0.4 < result.macs_fraction <= 0.5 and result.steps > 1
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("importance", ["l2", "bn_scale", "taylor"])
def test_importance_criteria(importance):
    torch.manual_seed(0)
    model = create_model("resnet20")
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    result = prune_channels(model, 32, ratio=0.25, importance=importance, taylor_batch=batch)
    assert result.macs_after < result.macs_before and result.importance == importance


def test_bad_requests_name_the_field():
    model = create_model("resnet20")
    both = re.escape("exactly one of prune.ratio and prune.macs_fraction")
    with pytest.raises(EdgeCNNError, match=both):
        prune_channels(model, 32, ratio=0.3, macs_fraction=0.5)
    with pytest.raises(EdgeCNNError, match=re.escape("prune.ratio must be in")):
        prune_channels(model, 32, ratio=0.95)
    with pytest.raises(EdgeCNNError, match="taylor importance needs a batch"):
        prune_channels(model, 32, ratio=0.3, importance="taylor")
    with pytest.raises(EdgeCNNError, match=re.escape("prune.importance 'l3'")):
        prune_channels(model, 32, ratio=0.3, importance="l3")

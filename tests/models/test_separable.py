"""The separable rewrite, for every family: what it replaces, what it keeps, what it costs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecnn.models import create_model, list_models
from edgecnn.models.separable import is_full_spatial_conv
from edgecnn.profile import profile_model


def _full_convs(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if is_full_spatial_conv(m)]


@pytest.mark.parametrize("mode", ["depthwise", "spatial"])
@pytest.mark.parametrize("name", list_models())
def test_rewrite_leaves_only_the_stem_full_and_never_costs_more(name, mode):
    plain = create_model(name, device="meta")
    rewritten = create_model(name, separable=mode, device="meta")
    stem = next(n for n, m in plain.named_modules() if isinstance(m, nn.Conv2d))
    assert _full_convs(rewritten) in ([stem], [])  # [] when the stem uses TF 'SAME' padding
    res = 64  # small, but large enough for every network's downsampling
    before, after = profile_model(plain, res), profile_model(rewritten, res)
    assert after.macs <= before.macs
    assert after.layers[-1].output_shape == before.layers[-1].output_shape
    if len(_full_convs(plain)) > 1:
        assert after.macs < before.macs and after.params < before.params


def test_separable_conv_mobilenet_costs_exactly_what_mobilenet_v1_costs():
    # Factorising each full 3x3 of Conv MobileNet gives MobileNet v1's dw + pw convolutions.
    rewritten = create_model("conv_mobilenet_v1", separable="depthwise", device="meta")
    mobilenet = create_model("mobilenet_v1", device="meta")
    assert profile_model(rewritten, 224).macs == profile_model(mobilenet, 224).macs


def test_spatial_factorisation_cost_of_one_layer():
    model = create_model("resnet18", separable="spatial", device="meta")
    layer = model.layer2[0].conv1  # was 3x3, 64 -> 128, stride 2, 56 -> 28
    assert [type(m) for m in layer] == [nn.Conv2d, nn.Conv2d]
    assert layer.vertical.kernel_size == (3, 1) and layer.horizontal.kernel_size == (1, 3)
    profile = profile_model(model, 224)
    macs = {row.name: row.macs for row in profile.layers}
    # The vertical factor takes only the vertical stride, so it works on 28 x 56.
    assert macs["layer2.0.conv1.vertical"] == 28 * 56 * 128 * 64 * 3
    assert macs["layer2.0.conv1.horizontal"] == 28 * 28 * 128 * 128 * 3


def test_depthwise_rewrite_runs_and_trains_on_real_tensors():
    model = create_model("densenet_bc_100_k12", separable="depthwise")
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    dw = model.features.denseblock1.denselayer1.conv2.dw
    assert dw.groups == dw.in_channels and dw.weight.grad is not None

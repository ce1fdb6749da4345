"""Every registered model, without per-model code: a new registration is tested automatically."""

from __future__ import annotations

import pytest
import torch

from edgecnn.models import create_model, get_spec, list_models

ALL = list_models()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def test_registry_is_large_enough():
    assert len(ALL) >= 35


@pytest.mark.parametrize("name", ALL)
def test_forward_at_default_resolution(name):
    spec = get_spec(name)
    model = create_model(name, num_classes=7).eval()
    res = model.card.resolution
    assert res == spec.resolution or spec.name == "efficientnet"
    with torch.no_grad():
        out = model(torch.randn(1, 3, res, res))
    assert out.shape == (1, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_forward_with_cifar_stem_at_32(name):
    model = create_model(name, num_classes=10, cifar_stem=True, in_chans=1).eval()
    assert model.card.resolution == 32
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_model_card(name):
    spec = get_spec(name)
    model = create_model(name, device="meta")
    card = model.card
    assert (card.family, card.mean, card.num_classes) == (spec.family, spec.mean, spec.num_classes)
    assert card.params == sum(p.numel() for p in model.parameters()) > 0
    assert card.macs() > card.params  # every CNN here reuses each weight many times


def test_any_resolution_works():
    model = create_model("efficientnet_b0").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 131)).shape == (1, 1000)


def test_cifar_stem_keeps_early_resolution():
    from edgecnn.profile import profile_model

    plain = profile_model(create_model("resnet18", device="meta"), 32)
    cifar = profile_model(create_model("resnet18", cifar_stem=True, device="meta"), 32)
    # ImageNet stem: 32 -> 8 before layer1; CIFAR stem: layer1 sees 32x32.
    first = next(layer for layer in plain.layers if layer.name == "layer1.0.conv1")
    first_cifar = next(layer for layer in cifar.layers if layer.name == "layer1.0.conv1")
    assert first.output_shape[-1] == 8 and first_cifar.output_shape[-1] == 32


def test_efficientnet_compound_scaling_by_phi():
    from edgecnn.models.efficientnet import compound_coefficients

    width, depth, res = compound_coefficients(2)
    assert (width, depth, res) == (pytest.approx(1.21), pytest.approx(1.44), 296)
    scaled = create_model("efficientnet", phi=2, device="meta")
    base = create_model("efficientnet", device="meta")
    assert scaled.card.resolution == 296 and base.card.resolution == 224
    assert scaled.card.params > base.card.params
    custom = create_model("efficientnet", width_mult=1.0, depth_mult=1.0, device="meta")
    b0 = create_model("efficientnet_b0", device="meta")
    assert [v.shape for v in custom.state_dict().values()] == [
        v.shape for v in b0.state_dict().values()
    ]


def test_efficientnet_lite_has_no_se_and_fixed_stem_and_head():
    lite4 = create_model("efficientnet_lite4", device="meta")
    names = [n for n, _ in lite4.named_modules()]
    assert not any(n.endswith("fc1") for n in names)
    assert lite4.features[0][0].out_channels == 32
    assert lite4.features[-1][0].out_channels == 1280
    # First and last stages keep their single block; the others are scaled by depth 1.8.
    assert len(lite4.features[1]) == 1 and len(lite4.features[7]) == 1
    assert len(lite4.features[6]) == 8  # ceil(4 * 1.8)


def test_unknown_name_and_option_are_clear_errors():
    from edgecnn.errors import EdgeCNNError

    with pytest.raises(EdgeCNNError, match=r"unknown architecture 'mobilenet_v4'.*mobilenet_v"):
        create_model("mobilenet_v4")
    with pytest.raises(EdgeCNNError, match=r"unknown option.*width_mult"):
        create_model("mobilenet_v2", widht_mult=0.5)
    with pytest.raises(EdgeCNNError, match="separable"):
        create_model("resnet18", separable="pointwise")

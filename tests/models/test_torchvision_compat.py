"""Every architecture in ../shared/reference has torchvision's exact state_dict keys, shapes and
parameter count, so a torchvision checkpoint loads with strict=True."""

from __future__ import annotations

import pytest

from edgecnn.models import create_model, get_spec, list_models

REFERENCE_NAMES = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "densenet121", "densenet161",
    "densenet169", "densenet201", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
]


def test_reference_file_lists_the_24_models(torchvision_reference):
    assert sorted(torchvision_reference) == sorted(REFERENCE_NAMES)


def test_registry_marks_exactly_the_reference_models_compatible():
    marked = sorted(n for n in list_models() if get_spec(n).torchvision_name)
    assert marked == sorted(REFERENCE_NAMES)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_state_dict_keys_shapes_and_params_match(name, torchvision_reference):
    ref = torchvision_reference[name]
    model = create_model(name, device="meta")
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == ref["state_dict"]  # same keys, same shapes, same order
    assert model.card.params == ref["num_params"]

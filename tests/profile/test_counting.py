"""The counting functions against the lecture's worked example, exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecnn.profile import conv2d_macs, depthwise_separable_macs, linear_macs, profile_model


def test_full_5x5_convolution_of_the_worked_example():
    # 12x12x3 -> 8x8x256 with 5x5 kernels (no padding): 8*8*256 outputs of 5*5*3 products each.
    assert conv2d_macs(3, 256, 5, 8) == 1_228_800


def test_depthwise_separable_version_of_the_worked_example():
    depthwise, pointwise = depthwise_separable_macs(3, 256, 5, 8)
    assert (depthwise, pointwise) == (4_800, 49_152)
    assert depthwise + pointwise == 53_952


def test_groups_divide_the_cost():
    assert conv2d_macs(64, 64, 3, (10, 20), groups=4) == 10 * 20 * 64 * 16 * 9
    with pytest.raises(ValueError):
        conv2d_macs(6, 8, 3, 4, groups=4)


def test_profiler_agrees_with_the_counting_functions_on_real_layers():
    model = nn.Sequential(nn.Conv2d(3, 256, 5), nn.ReLU(), nn.Flatten(), nn.Linear(256 * 64, 10))
    profile = profile_model(model, 12)
    assert [layer.macs for layer in profile.layers if layer.macs] == [
        1_228_800, linear_macs(256 * 64, 10)
    ]
    assert profile.layers[0].output_shape == (1, 256, 8, 8)


def test_profiler_counts_the_separable_pair_of_the_worked_example():
    model = nn.Sequential(nn.Conv2d(3, 3, 5, groups=3, bias=False), nn.Conv2d(3, 256, 1))
    profile = profile_model(model, 12)
    assert profile.macs == 53_952
    assert profile.params == 3 * 25 + 3 * 256 + 256


def test_profile_runs_on_real_tensors_and_restores_training_mode():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
    model.train()
    profile = profile_model(model, 16)
    assert model.training
    assert profile.macs == 16 * 16 * 8 * 27
    assert profile.buffer_elements == 16  # running mean and var, not the batch counter
    assert profile.weight_bytes == (8 * 27 + 8 + 16 + 16) * 4
    assert profile.activation_bytes == 2 * (8 * 16 * 16) * 4


def test_input_that_does_not_fit_is_a_clear_error():
    from edgecnn.errors import EdgeCNNError

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 14 * 14, 2))
    with pytest.raises(EdgeCNNError, match="does not fit"):
        profile_model(model, 32)
    assert torch.is_grad_enabled()

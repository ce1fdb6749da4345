"""The explicit-padding workaround for tiny-map depthwise convolutions changes speed, not maths."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from edgecnn.models import create_model
from edgecnn.models.onednn_workarounds import (
    explicit_padding_on_tiny_depthwise,
    tiny_map_depthwise_convs,
)


def _loss_and_grads(model, x, y):
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_finds_the_2x2_depthwise_layers_of_cifar_mobilenet_v2():
    model = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.5)
    found = tiny_map_depthwise_convs(model, (1, 3, 32, 32))
    # the last two blocks of the 160-channel stage and the 320-channel block run on 2x2 maps
    assert [c.in_channels for c in found] == [480, 480, 480]
    # at 224 with the ImageNet stem the smallest map is 7x7: nothing to patch
    assert tiny_map_depthwise_convs(create_model("mobilenet_v2"), (1, 3, 224, 224)) == []
    assert tiny_map_depthwise_convs(create_model("resnet20"), (1, 3, 32, 32)) == []


def test_same_outputs_and_gradients_and_undone_afterwards():
    torch.manual_seed(0)
    # no dropout: its random masks would differ between the two forward passes
    plain = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.5,
                         dropout=0.0)
    patched = copy.deepcopy(plain)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    plain.train(), patched.train()
    out_plain, grads_plain = _loss_and_grads(plain, x, y)
    paddings = [m.padding for m in patched.modules() if isinstance(m, torch.nn.Conv2d)]
    with explicit_padding_on_tiny_depthwise(patched, tuple(x.shape)) as count:
        assert count == 3
        out_patched, grads_patched = _loss_and_grads(patched, x, y)
    torch.testing.assert_close(out_patched, out_plain, rtol=1e-5, atol=1e-5)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_patched[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    # the detection pass left BatchNorm statistics and the mode alone; the patch is gone
    assert patched.training
    assert [m.padding for m in patched.modules() if isinstance(m, torch.nn.Conv2d)] == paddings
    assert all(not m._forward_pre_hooks for m in patched.modules())
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(patched.state_dict()[key], value, msg=key)

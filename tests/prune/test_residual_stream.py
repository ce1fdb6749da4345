"""ResNet-20's residual stream is prunable: zero-padding shortcuts as 1x1 selection convolutions."""

from __future__ import annotations

import pytest
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.models import create_model
from edgecnn.models.cifar_resnet import ChannelSelection, ZeroPadShortcut
from edgecnn.prune.iterative import apply_step, step_targets
from edgecnn.prune.persistence import load_pruned, save_pruned
from edgecnn.prune.structured import count, make_prunable, prune_channels


def _trained_looking_resnet20() -> torch.nn.Module:
    """Random weights and non-trivial BatchNorm statistics, so equal outputs mean something."""
    torch.manual_seed(0)
    model = create_model("resnet20")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_selection_form_computes_the_same_function_and_only_adds_its_own_macs():
    model = _trained_looking_resnet20()
    selected = create_model("resnet20").eval()
    selected.load_state_dict(model.state_dict())
    params, macs = count(model, 32)
    make_prunable(selected)
    shortcuts = [m for m in selected.modules() if isinstance(m, ChannelSelection)]
    assert len(shortcuts) == 2 and not any(isinstance(m, ZeroPadShortcut)
                                          for m in selected.modules())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), selected(x))
    # the 16->32 selection at 16x16 and the 32->64 one at 8x8, counted like any convolution
    assert count(selected, 32) == (params + 16 * 32 + 32 * 64, macs + 16 * 32 * 256 + 32 * 64 * 64)


def test_half_the_channels_prunes_stages_two_and_three_streams_and_keeps_selections_constant():
    model = _trained_looking_resnet20()
    result = prune_channels(model, 32, ratio=0.5, round_to=16)
    widths = {name: m.out_channels for name, m in model.named_modules()
              if isinstance(m, torch.nn.Conv2d)}
    # stage 1 is 16 wide, the NCHWc block: rounding to 16 keeps it; stages 2 and 3 halve
    assert widths["layer1.0.conv2"] == 16
    assert widths["layer2.2.conv2"] == 16 and widths["layer3.2.conv2"] == 32
    assert 0.45 < result.macs_fraction < 0.56
    for shortcut in (m for m in model.modules() if isinstance(m, ChannelSelection)):
        weight = shortcut.weight
        assert not weight.requires_grad
        assert set(weight.unique().tolist()) <= {0.0, 1.0}
        assert int(weight.sum(dim=1).max()) <= 1  # each output still copies at most one input
    model.train()
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(m.weight.grad is None for m in model.modules() if isinstance(m, ChannelSelection))


def test_pruned_resnet20_checkpoint_round_trips(tmp_path):
    model = _trained_looking_resnet20()
    prune_channels(model, 32, ratio=0.5, round_to=16)
    model.eval()
    path = tmp_path / "pruned.safetensors"
    save_pruned(model, path)
    loaded = load_pruned(create_model("resnet20"), path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not any(p.requires_grad for m in loaded.modules() if isinstance(m, ChannelSelection)
                   for p in m.parameters())


def test_unstructured_resnet20_checkpoint_keeps_the_zero_padding_shortcuts(tmp_path):
    model = _trained_looking_resnet20()
    apply_step(model, step_targets("unstructured", 1, amount=0.5)[0], 32, dense_macs=0)
    path = tmp_path / "sparse.safetensors"
    save_pruned(model, path)
    loaded = load_pruned(create_model("resnet20"), path).eval()
    assert not any(isinstance(m, ChannelSelection) for m in loaded.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_keep_layers_holds_the_residual_stream_and_names_a_pattern_that_matches_nothing():
    model = _trained_looking_resnet20()
    prune_channels(model, 32, ratio=0.5, round_to=8, keep_layers=["conv1", "layer*.conv2"])
    widths = {name: (m.in_channels, m.out_channels) for name, m in model.named_modules()
              if isinstance(m, torch.nn.Conv2d)}
    assert [widths[f"layer{i}.2.conv2"][1] for i in (1, 2, 3)] == [16, 32, 64]
    assert [widths[f"layer{i}.2.conv1"][1] for i in (1, 2, 3)] == [8, 16, 32]
    with pytest.raises(EdgeCNNError, match=r"prune.keep_layers pattern 'stage\*' matches no"):
        prune_channels(_trained_looking_resnet20(), 32, ratio=0.5, keep_layers=["stage*"])

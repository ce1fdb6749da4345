"""Step targets of iterative pruning, sparse masks kept through training, pruned checkpoints."""

from __future__ import annotations

import pytest
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.models import create_model
from edgecnn.prune.iterative import apply_step, step_targets
from edgecnn.prune.masks import reapply_masks
from edgecnn.prune.persistence import load_pruned, save_pruned
from edgecnn.prune.structured import count


def test_step_targets_are_geometric_and_end_on_the_target():
    macs = [t.macs_fraction for t in step_targets("channels", 3, macs_fraction=0.125)]
    assert macs == pytest.approx([0.5, 0.25, 0.125])
    # torch-pruning's ratio applies to the channels left: half of them twice keeps a quarter
    ratios = [t.ratio for t in step_targets("channels", 2, ratio=0.75)]
    assert ratios == pytest.approx([0.5, 0.5])
    amounts = [t.amount for t in step_targets("unstructured", 2, amount=0.75)]
    assert amounts == pytest.approx([0.5, 0.75])
    with pytest.raises(EdgeCNNError, match="two_four is one step"):
        step_targets("two_four", 2)


def test_unstructured_masks_keep_zeros_through_an_optimizer_step():
    torch.manual_seed(0)
    model = create_model("resnet20")
    done = apply_step(model, step_targets("unstructured", 1, amount=0.5)[0], 32,
                      dense_macs=0, keep_masks=True)
    assert done["sparsity"] == pytest.approx(0.5, abs=0.01) and "no dense speed-up" in done["note"]
    zeros = {n: (p == 0) for n, p in model.named_parameters() if p.ndim == 4}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    optimizer.step()
    reapply_masks(model)
    params = dict(model.named_parameters())
    assert all(bool((params[n][z] == 0).all()) for n, z in zeros.items())


def test_channel_step_reaches_the_dense_relative_target():
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.5)
    dense = count(model, 32)[1]
    for target in step_targets("channels", 2, macs_fraction=0.5):
        apply_step(model, target, 32, dense_macs=dense, round_to=8)
    assert count(model, 32)[1] <= 0.5 * dense
    assert all(m.out_channels % 8 == 0 for m in model.modules()
               if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.out_channels != 10)


def test_pruned_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", num_classes=10)
    apply_step(model, step_targets("channels", 1, ratio=0.3)[0], 64, dense_macs=0, round_to=8)
    model.eval()
    path = tmp_path / "pruned.safetensors"
    save_pruned(model, path)
    loaded = load_pruned(create_model("efficientnet_b0", num_classes=10), path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(EdgeCNNError, match="names layers"):
        load_pruned(create_model("resnet20"), path)
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(EdgeCNNError, match="not a pruned checkpoint"):
        load_pruned(create_model("resnet20"), plain)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 16)
    with pytest.raises(EdgeCNNError, match="not a readable safetensors file"):
        load_pruned(create_model("resnet20"), corrupt)
    with pytest.raises(EdgeCNNError, match="does not exist"):
        load_pruned(create_model("resnet20"), tmp_path / "missing.safetensors")

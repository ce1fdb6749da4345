"""2:4 sparsity: exactly 2 non-zeros in every group of 4 inputs, kept through fine-tuning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgecnn.models import create_model
from edgecnn.prune.masks import reapply_masks
from edgecnn.prune.semistructured import apply_two_four, is_two_four, two_four_mask


def test_mask_keeps_the_two_largest_of_each_group_of_four():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 4.0, 0.0, -1.0, 0.2]])
    assert two_four_mask(w).tolist() == [[0, 1, 1, 0, 1, 0, 1, 0]]
    conv = torch.randn(8, 16, 3, 3)
    mask = two_four_mask(conv)
    # along the input channels at every output channel and kernel position
    assert (mask.permute(0, 2, 3, 1).reshape(-1, 4).sum(1) == 2).all()


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "resnet20"])
def test_every_pruned_layer_holds_the_pattern_and_the_rest_is_listed(arch):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10)
    result = apply_two_four(model)
    assert result.pruned
    modules = dict(model.named_modules())
    for name in result.pruned:
        assert is_two_four(modules[name].weight), name
    # the 3-channel stem and the depthwise convolutions cannot hold 2:4: they stay dense
    assert all(why for why in result.skipped.values())
    assert any("multiple of 4" in why for why in result.skipped.values())
    if arch == "mobilenet_v2":
        assert any(why == "grouped or depthwise convolution" for why in result.skipped.values())


def test_pattern_survives_fine_tuning_steps():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    result = apply_two_four(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        reapply_masks(model)
    modules = dict(model.named_modules())
    assert all(is_two_four(modules[name].weight) for name in result.pruned)


def test_unstructured_magnitude_pruning_zeroes_weights_and_only_compression_gains(tmp_path):
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.prune.unstructured import compressed_bytes, prune_magnitude, sparsity_of

    torch.manual_seed(0)
    dense = create_model("resnet20")
    sparse = create_model("resnet20")
    sparse.load_state_dict(dense.state_dict())
    report = prune_magnitude(sparse, 0.6)
    assert 0.59 < report.sparsity < 0.61 and sparsity_of(dense).zeros == 0
    assert sum(p.numel() for p in sparse.parameters()) == sum(p.numel() for p in dense.parameters())
    export_onnx(dense, tmp_path / "dense.onnx", 32, simplify=False)
    export_onnx(sparse, tmp_path / "sparse.onnx", 32, simplify=False)
    raw = [(tmp_path / f"{n}.onnx").stat().st_size for n in ("dense", "sparse")]
    packed = [compressed_bytes(tmp_path / f"{n}.onnx") for n in ("dense", "sparse")]
    assert abs(raw[1] - raw[0]) < 0.01 * raw[0]       # the same file size...
    assert packed[1] < 0.75 * packed[0]                # ...smaller only when compressed

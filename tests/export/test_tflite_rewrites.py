"""The full-INT8 hard-swish rewrites compute what ``nn.Hardswish`` computes, and fold the 1/6
only where every path from the activation ends in a linear layer."""

from __future__ import annotations

import copy

import torch

from edgecnn.export.tflite_rewrites import decompose_hardswish, fold_hardswish_scale
from edgecnn.models import create_model


def _with_real_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm statistics from data, so activations are not the vanishing ones of a fresh init."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def test_decomposed_hardswish_is_hardswish():
    x = torch.linspace(-8, 8, 4001)
    model = torch.nn.Sequential(torch.nn.Hardswish())
    expected = model(x)
    assert decompose_hardswish(model) == 1
    assert not isinstance(model[0], torch.nn.Hardswish)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_mobilenet_v3_is_unchanged_by_the_rewrites():
    torch.manual_seed(0)
    model = _with_real_statistics(create_model("mobilenet_v3_large"))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    expected = model(x)
    rewritten = copy.deepcopy(model)
    folded = fold_hardswish_scale(rewritten)
    decomposed = decompose_hardswish(rewritten)
    # the stem's hard-swish also feeds block 1's residual ADD: it cannot carry the scale
    assert (folded, decomposed) == (20, 1)
    assert not any(isinstance(m, torch.nn.Hardswish) for m in rewritten.modules())
    scale = float(expected.abs().max())
    assert float((rewritten(x) - expected).abs().max()) < 1e-5 * max(scale, 1.0)


class _Block(torch.nn.Module):
    """hard-swish followed by whatever ``tail`` does with it."""

    def __init__(self, tail: str) -> None:
        super().__init__()
        self.tail = tail
        self.conv = torch.nn.Conv2d(4, 4, 1)
        self.act = torch.nn.Hardswish()
        self.head = torch.nn.Conv2d(4, 4, 1)
        self.shared = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        if self.tail == "residual":
            return self.head(y) + y
        if self.tail == "squared":
            return self.head(y * y)
        if self.tail == "shared":
            return self.shared(y) + self.shared(x)
        if self.tail == "output":
            return y
        gate = torch.sigmoid(self.shared(torch.nn.functional.adaptive_avg_pool2d(y, 1)))
        return self.head(y * gate)  # "gated": squeeze-excite shape, foldable


def test_an_untraceable_model_is_left_to_the_plain_decomposition():
    class ShapeDependent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = torch.nn.Hardswish()
            self.head = torch.nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if len(x.shape) == 4:  # torch.fx cannot trace len() of a shape
                x = self.act(x)
            return self.head(x)

    model = ShapeDependent().eval()
    x = torch.randn(1, 4, 8, 8)
    expected = model(x)
    assert fold_hardswish_scale(model) == 0 and isinstance(model.act, torch.nn.Hardswish)
    assert decompose_hardswish(model) == 1
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_only_linear_consumers_absorb_the_scale():
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    for tail, foldable in (("gated", True), ("residual", False), ("squared", False),
                           ("shared", False), ("output", False)):
        torch.manual_seed(0)
        block = _Block(tail).eval()
        expected = block(x)
        assert fold_hardswish_scale(block) == int(foldable), tail
        assert isinstance(block.act, torch.nn.Hardswish) != foldable
        assert torch.allclose(block(x), expected, atol=1e-6), tail

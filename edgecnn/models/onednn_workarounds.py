"""A training-speed workaround for one slow oneDNN path: depthwise weight gradients on tiny maps.

oneDNN, PyTorch's CPU convolution library, computes the weight gradient of a depthwise 3x3
convolution with its fast depthwise kernel (``jit_dw``) only when the input map is at least as
large as the kernel. On a smaller map -- the 2x2 maps of MobileNet v2's last stages when it runs
at 32x32 with the CIFAR stem -- it falls back to a generic GEMM path (``gemm:jit``): 23.6 ms
instead of 0.46 ms for 480 channels at batch 128 (ONEDNN_VERBOSE, torch 2.13, AVX2 EPYC).
Three such layers took a third of a MobileNet v2 0.5 training step.

Zero-padding the input explicitly and convolving without padding is the same arithmetic (the
same products in the same order) and takes the fast kernel. The patch is applied for training
only and undone afterwards, so evaluation, export and the saved weights never see it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def _is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels


def tiny_map_depthwise_convs(model: nn.Module, input_shape: tuple[int, ...]) -> list[nn.Conv2d]:
    """Depthwise convolutions whose input map is smaller than their kernel at ``input_shape``.

    Found by running one forward pass on a zero batch of that shape (batch size 1).
    """
    seen: dict[nn.Conv2d, tuple[int, int]] = {}

    def record(conv: nn.Module, args: tuple) -> None:
        seen[conv] = tuple(args[0].shape[-2:])

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()
             if isinstance(m, nn.Conv2d) and _is_depthwise(m)]
    was_training = model.training
    try:
        model.eval()  # BatchNorm running statistics must not move
        param = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros((1, *input_shape[1:]), dtype=param.dtype, device=param.device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return [conv for conv, (h, w) in seen.items()
            if conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and any(conv.padding) and (h < conv.kernel_size[0] or w < conv.kernel_size[1])]


@contextlib.contextmanager
def explicit_padding_on_tiny_depthwise(model: nn.Module,
                                       input_shape: tuple[int, ...]) -> Iterator[int]:
    """Within the block, the tiny-map depthwise convolutions pad explicitly; yields their count."""
    convs = tiny_map_depthwise_convs(model, input_shape)
    saved: list[tuple[nn.Conv2d, tuple[int, ...], torch.utils.hooks.RemovableHandle]] = []
    try:
        for conv in convs:
            ph, pw = conv.padding
            handle = conv.register_forward_pre_hook(
                lambda mod, args, pad=(pw, pw, ph, ph): (F.pad(args[0], pad),))
            saved.append((conv, conv.padding, handle))
            conv.padding = (0, 0)
        yield len(convs)
    finally:
        for conv, padding, handle in saved:
            handle.remove()
            conv.padding = padding

"""Mult-add counts from shapes alone, in the convention of the papers and torchvision's ``_ops``.

One mult-add (MAC) is one multiplication with its accumulation. Only convolutions and fully
connected layers are counted: they are over 99% of a CNN's arithmetic, and it is the convention
in which ResNet-50 costs 4.1 G and MobileNet v1 569 M. Bias additions, BN, activations, pooling
and residual additions are not counted (BN folds into the conv at deployment anyway).
"""

from __future__ import annotations

from collections.abc import Sequence


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)


def conv2d_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
    groups: int = 1,
) -> int:
    """Mult-adds of one 2-D convolution producing ``output_size`` (H, W) for one image.

    Every output element is a dot product over ``in_channels / groups`` channels of a
    kh x kw window, so MACs = H_out * W_out * C_out * (C_in / groups) * kh * kw.
    A 5x5 conv from 12x12x3 to 8x8x256: 8*8*256*3*5*5 = 1,228,800.
    """
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels {in_channels}->{out_channels} not divisible by groups={groups}")
    kh, kw = _pair(kernel_size)
    oh, ow = _pair(output_size)
    return oh * ow * out_channels * (in_channels // groups) * kh * kw


def depthwise_separable_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    output_size: int | Sequence[int],
) -> tuple[int, int]:
    """(depthwise, pointwise) mult-adds of a k x k depthwise conv followed by a 1x1 conv.

    The lecture's example, 12x12x3 -> 8x8x256 with 5x5 kernels: 4,800 + 49,152 = 53,952,
    against 1,228,800 for the full convolution.
    """
    depthwise = conv2d_macs(in_channels, in_channels, kernel_size, output_size, groups=in_channels)
    pointwise = conv2d_macs(in_channels, out_channels, 1, output_size)
    return depthwise, pointwise


def linear_macs(in_features: int, out_features: int, rows: int = 1) -> int:
    """Mult-adds of a fully connected layer applied to ``rows`` vectors."""
    return rows * in_features * out_features

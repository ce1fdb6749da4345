"""MobileNet v1 (Howard et al. 2017), its full-convolution twin, v2 (Sandler et al. 2018) and
v3 Large/Small (Howard et al. 2019).

MobileNet v1 follows the paper's Table 1: a 3x3 stride-2 stem, 13 depthwise-separable blocks
(3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global average pool and one FC layer.
"Conv MobileNet" (the paper's Table 4 baseline) replaces each separable pair with one full 3x3
convolution. v2 and v3 use torchvision's layout and names, so its checkpoints load strictly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgecnn.models.layers import (
    ConvNormAct,
    SqueezeExcitation,
    init_conv_bn_linear,
    make_divisible,
)
from edgecnn.models.registry import register_model

# ---------------------------------------------------------------------------------------------
# MobileNet v1

# (output channels, stride) of the 13 blocks after the stem, from the paper's Table 1.
MOBILENET_V1_BLOCKS = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
]


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv-BN-ReLU then 1x1 pointwise conv-BN-ReLU (named ``dw`` and ``pw``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvNormAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvNormAct(in_channels, out_channels, 1)


class MobileNetV1(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        full_conv: bool = False,
        dropout: float = 1e-3,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvNormAct(in_chans, channels, 3, 1 if cifar_stem else 2)]
        for out, stride in MOBILENET_V1_BLOCKS:
            out = make_divisible(out * width_mult)
            if full_conv:
                layers.append(ConvNormAct(channels, out, 3, stride))
            else:
                layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        init_conv_bn_linear(self, linear="normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _mobilenet_v1(name: str, width: float, full_conv: bool, description: str) -> None:
    @register_model(name, family="mobilenet", resolution=224, description=description)
    def build(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
              width_mult: float = width, dropout: float = 1e-3) -> MobileNetV1:
        return MobileNetV1(width_mult, num_classes, in_chans, full_conv, dropout, cifar_stem)


_mobilenet_v1("mobilenet_v1", 1.0, False, "MobileNet v1 1.0 (width multiplier option)")
_mobilenet_v1("mobilenet_v1_075", 0.75, False, "MobileNet v1 0.75")
_mobilenet_v1("mobilenet_v1_050", 0.5, False, "MobileNet v1 0.5")
_mobilenet_v1("mobilenet_v1_025", 0.25, False, "MobileNet v1 0.25")
_mobilenet_v1("conv_mobilenet_v1", 1.0, True,
              "Conv MobileNet: MobileNet v1 with full 3x3 convolutions (paper Table 4)")

# ---------------------------------------------------------------------------------------------
# MobileNet v2

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
MOBILENET_V2_SETTING = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
]


class InvertedResidualV2(nn.Module):
    """Expand 1x1 (ReLU6) -> depthwise 3x3 (ReLU6) -> linear 1x1; residual when shapes match.

    Kept in torchvision's layout (``conv`` = [expand], dw, projection conv, BN) for its keys.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(inp, hidden, 1, activation=nn.ReLU6))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        channels = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [
            ConvNormAct(in_chans, channels, 3, 1 if cifar_stem else 2, activation=nn.ReLU6)
        ]
        for t, c, n, s in MOBILENET_V2_SETTING:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidualV2(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(ConvNormAct(channels, self.last_channel, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel,
                                                                       num_classes))
        init_conv_bn_linear(self, linear="normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("mobilenet_v2", family="mobilenet", resolution=224, torchvision_name="mobilenet_v2",
                description="MobileNet v2 (width multiplier option)")
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
                 width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(width_mult, num_classes, in_chans, dropout, cifar_stem)


# ---------------------------------------------------------------------------------------------
# MobileNet v3


@dataclass(frozen=True)
class BneckV3:
    """One row of the paper's Tables 1/2: kernel, expanded and output channels, SE, act, stride."""

    kernel: int
    expanded: int
    out: int
    use_se: bool
    hardswish: bool
    stride: int


def _rows(*rows: tuple) -> list[BneckV3]:
    return [BneckV3(k, e, o, se, act == "HS", s) for k, e, o, se, act, s in rows]


MOBILENET_V3_LARGE = _rows(
    (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
)
MOBILENET_V3_SMALL = _rows(
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
)
# BatchNorm settings of the reference implementation (TF's defaults).
V3_BN = {"norm_eps": 0.001, "norm_momentum": 0.01}


class InvertedResidualV3(nn.Module):
    """[expand 1x1] -> depthwise kxk -> [SE with hard-sigmoid] -> linear 1x1, as ``block``."""

    def __init__(self, inp: int, row: BneckV3, width_mult: float) -> None:
        super().__init__()
        expanded = make_divisible(row.expanded * width_mult)
        out = make_divisible(row.out * width_mult)
        act = nn.Hardswish if row.hardswish else nn.ReLU
        self.use_res_connect = row.stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(ConvNormAct(inp, expanded, 1, activation=act, **V3_BN))
        layers.append(ConvNormAct(expanded, expanded, row.kernel, row.stride, groups=expanded,
                                  activation=act, **V3_BN))
        if row.use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4),
                                            gate=nn.Hardsigmoid))
        layers.append(ConvNormAct(expanded, out, 1, activation=None, **V3_BN))
        self.block = nn.Sequential(*layers)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    def __init__(
        self,
        rows: list[BneckV3],
        last_channel: int,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        channels = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [
            ConvNormAct(in_chans, channels, 3, 1 if cifar_stem else 2, activation=nn.Hardswish,
                        **V3_BN)
        ]
        for row in rows:
            block = InvertedResidualV3(channels, row, width_mult)
            layers.append(block)
            channels = block.out_channels
        lastconv = 6 * channels
        layers.append(ConvNormAct(channels, lastconv, 1, activation=nn.Hardswish, **V3_BN))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last_channel = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv, last_channel), nn.Hardswish(inplace=True),
            nn.Dropout(dropout, inplace=True), nn.Linear(last_channel, num_classes),
        )
        init_conv_bn_linear(self, linear="normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("mobilenet_v3_large", family="mobilenet", resolution=224,
                torchvision_name="mobilenet_v3_large", description="MobileNet v3 Large")
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
                       width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    return MobileNetV3(MOBILENET_V3_LARGE, 1280, width_mult, num_classes, in_chans, dropout,
                       cifar_stem)


@register_model("mobilenet_v3_small", family="mobilenet", resolution=224,
                torchvision_name="mobilenet_v3_small", description="MobileNet v3 Small")
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
                       width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    return MobileNetV3(MOBILENET_V3_SMALL, 1024, width_mult, num_classes, in_chans, dropout,
                       cifar_stem)

"""EfficientNet B0-B7 by compound scaling (Tan & Le 2019) and EfficientNet-Lite0-4.

One builder, driven by the B0 stage table, applies the width multiplier to channels and the depth
multiplier to repeats in one place (as torchvision's ``_efficientnet_conf``):

* the named B1-B7 use the official (width, depth, resolution, dropout) coefficients;
* ``efficientnet`` with ``phi`` scales B0 by the compound rule d = 1.2^phi, w = 1.1^phi,
  r = 1.15^phi; ``width_mult``/``depth_mult``/``resolution`` can also be given directly;
* Lite drops squeeze-excitation, uses ReLU6, keeps the stem (32) and head (1280) fixed and does
  not scale the first and last stages' repeats - the changes that make it quantize well.

B0-B7 match torchvision's keys; Lite uses TensorFlow's 'SAME' padding by default because every
published Lite checkpoint was trained in TensorFlow (``same_padding=False`` gives symmetric pads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from edgecnn.models.layers import (
    ConvNormAct,
    SqueezeExcitation,
    StochasticDepth,
    init_conv_bn_linear,
    make_divisible,
)
from edgecnn.models.registry import register_model


@dataclass(frozen=True)
class Stage:
    """One row of the paper's Table 1: expansion, kernel, first stride, channels, repeats."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int


B0_STAGES = [
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
]
STEM_CHANNELS = 32

# Official coefficients: (width, depth, resolution, dropout). B2's torchvision weights use 288 px;
# the paper's 260 is kept as its resolution.
EFFICIENTNET_COEFFICIENTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
LITE_COEFFICIENTS = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
# The compound-scaling constants found by the paper's grid search (alpha * beta^2 * gamma^2 ~ 2).
ALPHA_DEPTH, BETA_WIDTH, GAMMA_RESOLUTION = 1.2, 1.1, 1.15
BASE_RESOLUTION = 224
# Lite checkpoints were trained with inputs scaled as (x * 255 - 127) / 128.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


def compound_coefficients(phi: float) -> tuple[float, float, int]:
    """(width, depth, resolution) for compound coefficient ``phi``."""
    return (BETA_WIDTH**phi, ALPHA_DEPTH**phi, round(BASE_RESOLUTION * GAMMA_RESOLUTION**phi))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [expand 1x1] -> depthwise kxk -> [SE] -> linear 1x1.

    ``block`` indices of each role are kept (``roles``) so checkpoint key maps need no guessing.
    """

    def __init__(
        self, inp: int, out: int, expand_ratio: int, kernel: int, stride: int,
        drop_path: float, act: type[nn.Module], use_se: bool, bn: dict, same_padding: bool,
    ) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and inp == out
        expanded = make_divisible(inp * expand_ratio)
        layers: list[nn.Module] = []
        self.roles: dict[str, int] = {}
        if expanded != inp:
            self.roles["expand"] = len(layers)
            layers.append(ConvNormAct(inp, expanded, 1, activation=act, **bn))
        self.roles["depthwise"] = len(layers)
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded,
                                  activation=act, same_padding=same_padding, **bn))
        if use_se:
            self.roles["se"] = len(layers)
            layers.append(SqueezeExcitation(expanded, max(1, inp // 4), activation=nn.SiLU))
        self.roles["project"] = len(layers)
        layers.append(ConvNormAct(expanded, out, 1, activation=None, **bn))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_path)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class EfficientNet(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        num_classes: int = 1000,
        in_chans: int = 3,
        lite: bool = False,
        stochastic_depth: float = 0.2,
        bn_eps: float = 1e-5,
        same_padding: bool = False,
        cifar_stem: bool = False,
        resolution: int = BASE_RESOLUTION,
    ) -> None:
        super().__init__()
        if width_mult <= 0 or depth_mult <= 0:
            raise ValueError("width_mult and depth_mult must be > 0")
        self.default_resolution = resolution
        act = nn.ReLU6 if lite else nn.SiLU
        bn = {"norm_eps": bn_eps}
        stem = STEM_CHANNELS if lite else make_divisible(STEM_CHANNELS * width_mult)
        layers: list[nn.Module] = [
            ConvNormAct(in_chans, stem, 3, 1 if cifar_stem else 2, activation=act,
                        same_padding=same_padding, **bn)
        ]
        repeats = [
            s.repeats if lite and i in (0, len(B0_STAGES) - 1)
            else math.ceil(s.repeats * depth_mult)
            for i, s in enumerate(B0_STAGES)
        ]
        total_blocks, block_id, channels = sum(repeats), 0, stem
        for stage, n in zip(B0_STAGES, repeats, strict=True):
            out = make_divisible(stage.out_channels * width_mult)
            blocks = []
            for i in range(n):
                # Drop-path probability grows linearly with depth, as in the reference code.
                drop = stochastic_depth * block_id / total_blocks
                blocks.append(MBConv(channels, out, stage.expand_ratio, stage.kernel,
                                     stage.stride if i == 0 else 1, drop, act, not lite, bn,
                                     same_padding))
                channels, block_id = out, block_id + 1
            layers.append(nn.Sequential(*blocks))
        head = 1280 if lite else 4 * channels
        layers.append(ConvNormAct(channels, head, 1, activation=act, **bn))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True),
                                        nn.Linear(head, num_classes))
        init_conv_bn_linear(self, linear="uniform")
        if lite:
            self.mean, self.std = LITE_MEAN, LITE_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _efficientnet_b(variant: str) -> None:
    width, depth, res, dropout = EFFICIENTNET_COEFFICIENTS[variant]
    name = f"efficientnet_{variant}"

    @register_model(name, family="efficientnet", resolution=res, torchvision_name=name,
                    description=f"EfficientNet-{variant.upper()} (official coefficients "
                                f"w={width}, d={depth}, r={res})")
    def build(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
              width_mult: float = width, depth_mult: float = depth,
              dropout: float = dropout, stochastic_depth: float = 0.2) -> EfficientNet:
        # torchvision builds B5-B7 with TF's BatchNorm epsilon.
        bn_eps = 1e-3 if variant in ("b5", "b6", "b7") else 1e-5
        return EfficientNet(width_mult, depth_mult, dropout, num_classes, in_chans,
                            stochastic_depth=stochastic_depth, bn_eps=bn_eps,
                            cifar_stem=cifar_stem, resolution=res)


for _variant in EFFICIENTNET_COEFFICIENTS:
    _efficientnet_b(_variant)


@register_model("efficientnet", family="efficientnet", resolution=BASE_RESOLUTION,
                description="EfficientNet by compound scaling of B0 (phi, or width/depth)")
def efficientnet(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
                 phi: float = 0.0, width_mult: float | None = None,
                 depth_mult: float | None = None, dropout: float = 0.2,
                 stochastic_depth: float = 0.2) -> EfficientNet:
    """B0 scaled by d = 1.2^phi, w = 1.1^phi, r = 224 * 1.15^phi; explicit values win.

    The resolution from ``phi`` becomes the model's default; ``create_model(...,
    resolution=R)`` overrides it like for any model.
    """
    w, d, r = compound_coefficients(phi)
    return EfficientNet(
        width_mult if width_mult is not None else w,
        depth_mult if depth_mult is not None else d,
        dropout, num_classes, in_chans, stochastic_depth=stochastic_depth,
        cifar_stem=cifar_stem, resolution=r,
    )


def _efficientnet_lite(variant: str) -> None:
    width, depth, res, dropout = LITE_COEFFICIENTS[variant]
    name = f"efficientnet_{variant}"

    @register_model(name, family="efficientnet", resolution=res, mean=LITE_MEAN, std=LITE_STD,
                    description=f"EfficientNet-{variant.capitalize()} (no SE, ReLU6, fixed "
                                f"stem/head; w={width}, d={depth}, r={res})")
    def build(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
              dropout: float = dropout, stochastic_depth: float = 0.2,
              same_padding: bool = True) -> EfficientNet:
        return EfficientNet(width, depth, dropout, num_classes, in_chans, lite=True,
                            stochastic_depth=stochastic_depth, bn_eps=1e-3,
                            same_padding=same_padding, cifar_stem=cifar_stem, resolution=res)


for _variant in LITE_COEFFICIENTS:
    _efficientnet_lite(_variant)

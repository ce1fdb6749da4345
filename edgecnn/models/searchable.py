"""A searchable inverted-residual network: MobileNet v2/v3 and EfficientNet blocks, described
stage by stage, so an architecture search (or a user) writes any point of the space as model
options that ``edgecnn build`` builds like every registered model.

    model:
      arch: searchable_mbconv
      cifar_stem: true
      options:
        stem: 16
        stages:                      # each: output channels, blocks, and the block's choices
          - {width: 16, depth: 1, stride: 1, expansion: 1}
          - {width: 24, depth: 2, stride: 2, kernel: 5, expansion: 4, se: true,
             activation: hswish}
        head: 1280                   # the last 1x1 convolution's channels (0: none)

A block is expand 1x1 (skipped at expansion 1) -> depthwise k x k -> [squeeze-excitation, its
bottleneck a quarter of the expanded width, hard-sigmoid gate for h-swish blocks, sigmoid
otherwise] -> linear 1x1 projection, with a residual where the shapes allow; the first block of
a stage carries its stride. Expanded widths are ``round(in * expansion)``, as MobileNet v2's,
so the default stages are exactly the demo's MobileNet v2 0.5 (a test checks it); channel counts
are taken as given (a search space rounds them to the runtime's block, e.g. multiples of 8 or
16, where it wants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from edgecnn.models.layers import ConvNormAct, SqueezeExcitation, init_conv_bn_linear
from edgecnn.models.registry import register_model

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu6": nn.ReLU6, "hswish": nn.Hardswish,
                                           "relu": nn.ReLU, "silu": nn.SiLU}
KERNELS = (3, 5, 7)
EXPANSIONS = (1, 2, 3, 4, 6)
STRIDES = (1, 2)
MAX_CHANNELS = 4096
MAX_DEPTH = 16


@dataclass(frozen=True)
class Stage:
    """One stage: ``depth`` blocks of ``width`` output channels with the same choices."""

    width: int
    depth: int = 1
    stride: int = 1
    kernel: int = 3
    expansion: int = 6
    se: bool = False
    activation: str = "relu6"

    @classmethod
    def parse(cls, index: int, value: Any) -> Stage:
        where = f"stages[{index}]"
        if not isinstance(value, Mapping):
            names = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"{where} must be a mapping of {names}, got {value!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{where}: unknown choice {unknown[0]!r}; valid: "
                             f"{', '.join(sorted(known))}")
        if "width" not in value:
            raise ValueError(f"{where}: width (the output channels) is required")
        stage = cls(**value)
        _check(where, "width", stage.width, range(1, MAX_CHANNELS + 1), "1..4096")
        _check(where, "depth", stage.depth, range(1, MAX_DEPTH + 1), "1..16")
        _check(where, "stride", stage.stride, STRIDES, "1 or 2")
        _check(where, "kernel", stage.kernel, KERNELS, "3, 5 or 7")
        _check(where, "expansion", stage.expansion, EXPANSIONS, "1, 2, 3, 4 or 6")
        if not isinstance(stage.se, bool):
            raise ValueError(f"{where}: se must be true or false, got {stage.se!r}")
        if stage.activation not in ACTIVATIONS:
            raise ValueError(f"{where}: activation {stage.activation!r} is not one of "
                             f"{', '.join(ACTIVATIONS)}")
        return stage


def _check(where: str, name: str, value: Any, valid: Sequence[int], text: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in valid:
        raise ValueError(f"{where}: {name} must be {text}, got {value!r}")


# MobileNet v2 at width 0.5 (its Table 2 rows through make_divisible): the demo model.
DEFAULT_STEM = 16
DEFAULT_STAGES: tuple[dict[str, Any], ...] = (
    {"width": 8, "depth": 1, "stride": 1, "expansion": 1},
    {"width": 16, "depth": 2, "stride": 2},
    {"width": 16, "depth": 3, "stride": 2},
    {"width": 32, "depth": 4, "stride": 2},
    {"width": 48, "depth": 3, "stride": 1},
    {"width": 80, "depth": 3, "stride": 2},
    {"width": 160, "depth": 1, "stride": 1},
)
DEFAULT_HEAD = 1280


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, stage: Stage) -> None:
        super().__init__()
        act = ACTIVATIONS[stage.activation]
        hidden = round(inp * stage.expansion)
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if stage.expansion != 1:
            layers.append(ConvNormAct(inp, hidden, 1, activation=act))
        layers.append(ConvNormAct(hidden, hidden, stage.kernel, stride, groups=hidden,
                                  activation=act))
        if stage.se:
            gate = nn.Hardsigmoid if stage.activation == "hswish" else nn.Sigmoid
            layers.append(SqueezeExcitation(hidden, max(1, hidden // 4), gate=gate))
        layers.append(ConvNormAct(hidden, out, 1, activation=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


class SearchableMBConv(nn.Module):
    def __init__(self, stages: Sequence[Stage], stem: int, head: int, num_classes: int,
                 in_chans: int, dropout: float, cifar_stem: bool,
                 stem_activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(in_chans, stem, 3, 1 if cifar_stem else 2,
                                               activation=ACTIVATIONS[stem_activation])]
        channels = stem
        for stage in stages:
            for i in range(stage.depth):
                layers.append(InvertedResidual(channels, stage.width,
                                               stage.stride if i == 0 else 1, stage))
                channels = stage.width
        if head:
            layers.append(ConvNormAct(channels, head, 1,
                                      activation=ACTIVATIONS[stages[-1].activation]))
            channels = head
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        init_conv_bn_linear(self, linear="normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def parse_stages(stages: Any) -> list[Stage]:
    if not isinstance(stages, Sequence) or isinstance(stages, str) or not stages:
        raise ValueError(f"stages must be a non-empty list of stage mappings, got {stages!r}")
    return [Stage.parse(i, s) for i, s in enumerate(stages)]


@register_model("searchable_mbconv", family="searchable", resolution=224,
                description="Inverted-residual net described stage by stage (width, depth, "
                            "kernel, expansion, SE, activation): the search space; default = "
                            "MobileNet v2 0.5")
def searchable_mbconv(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
                      stages: Sequence[Mapping[str, Any]] = DEFAULT_STAGES,
                      stem: int = DEFAULT_STEM, head: int = DEFAULT_HEAD,
                      dropout: float = 0.2, stem_activation: str = "relu6") -> SearchableMBConv:
    _check("options", "stem", stem, range(1, MAX_CHANNELS + 1), "1..4096")
    _check("options", "head", head, range(0, MAX_CHANNELS + 1), "0..4096 (0: none)")
    if stem_activation not in ACTIVATIONS:
        raise ValueError(f"options: stem_activation {stem_activation!r} is not one of "
                         f"{', '.join(ACTIVATIONS)}")
    if not 0 <= dropout < 1:
        raise ValueError(f"options: dropout must be in [0, 1), got {dropout!r}")
    return SearchableMBConv(parse_stages(stages), stem, head, num_classes, in_chans, dropout,
                            cifar_stem, stem_activation)

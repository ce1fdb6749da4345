"""CIFAR ResNets of He et al. 2015, section 4.2 (ResNet-20/32/44/56/110), with the options the
lecture's comparisons need: squeeze-and-excitation (``se_reduction``, Hu et al. 2018) and the
ResNeXt-29 of Xie et al. 2017 (cardinality and bottleneck width as options).

A 3x3 stem of 16 channels, then 3 stages of n basic blocks with 16/32/64 channels (6n+2 layers);
the shortcut that changes shape is "option A": subsample by 2 and zero-pad the new channels, so it
has no parameters. For structured pruning (``make_prunable``) each of those shortcuts becomes the
equivalent frozen 1x1 selection convolution, which torch-pruning's dependency graph can follow, so
each stage's residual stream can lose channels independently. Names follow the widely used
"Proper ResNet Implementation for CIFAR10" checkpoints (``conv1``/``bn1``/``layer1..3``/
``linear``) so those load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.models.layers import SqueezeExcitation
from edgecnn.models.registry import register_model

# The shared checkpoints were trained with the ImageNet statistics (see ../shared/README.md).
CHECKPOINT_MEAN = (0.485, 0.456, 0.406)
CHECKPOINT_STD = (0.229, 0.224, 0.225)


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: take every other pixel and zero-pad the extra channels equally."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


class ChannelSelection(nn.Conv2d):
    """Option A as a strided 1x1 convolution whose 0/1 weights copy input channel ``i`` to output
    channel ``i + pad``: the same output as :class:`ZeroPadShortcut`, in a form DepGraph prunes
    like any convolution (input and output channels independently; a pruned one keeps the
    channels that survive, each still a copy or a zero). The weights are constants of the
    architecture, never trained: the forward pass detaches them, so they get no gradient and no
    weight decay. It costs in x out mult-adds per output pixel, which the profiler counts."""

    constant_weights = True  # pruning: not a measure of channel importance (prune.structured)

    def __init__(self, shortcut: ZeroPadShortcut, in_planes: int) -> None:
        planes = in_planes + sum(shortcut.pad)
        super().__init__(in_planes, planes, 1, shortcut.stride, bias=False)
        weight = torch.zeros(planes, in_planes, 1, 1)
        weight[torch.arange(in_planes) + shortcut.pad[0], torch.arange(in_planes)] = 1.0
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight.detach(), None)


def _squeeze_excitation(channels: int, reduction: int | None) -> nn.Module | None:
    # SE-ResNet: on the residual branch before the add; at least one hidden unit, since CIFAR
    # widths (16 channels) over the usual reduction 16 leave just one
    return None if reduction is None else SqueezeExcitation(channels, max(channels // reduction,
                                                                          1))


class CifarBasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 se_reduction: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            ZeroPadShortcut(in_planes, planes, stride)
            if stride != 1 or in_planes != planes else nn.Identity()
        )
        se = _squeeze_excitation(planes, se_reduction)
        if se is not None:  # absent otherwise: the published checkpoints load strictly
            self.se = se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if hasattr(self, "se"):
            out = self.se(out)
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3,
                 se_reduction: int | None = None) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        if se_reduction is not None and se_reduction < 1:
            raise ValueError(f"se_reduction must be a positive integer, got {se_reduction}")
        self.se_reduction = se_reduction
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.in_planes = 16
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def make_prunable(self) -> None:
        """Replace every zero-padding shortcut by its :class:`ChannelSelection` (same outputs).
        DepGraph cannot see through ``F.pad`` on the channel axis: it would tie a stage's
        residual stream to the previous stage's and prune the padded channels wrongly. As a
        convolution the shortcut separates the stages, so the stream of stage 2 and 3 can be
        pruned like the blocks' inner channels. Idempotent; the unpruned model keeps the
        parameter-free shortcut (and the paper's parameter and mult-add counts). Run again
        after pruning, it re-freezes the selections torch-pruning rebuilt as trainable."""
        for layer in (self.layer1, self.layer2, self.layer3):
            for block in layer:
                if isinstance(block.shortcut, ZeroPadShortcut):
                    block.shortcut = ChannelSelection(block.shortcut, block.conv1.in_channels)
                if isinstance(block.shortcut, ChannelSelection):
                    block.shortcut.weight.requires_grad_(False)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(CifarBasicBlock(self.in_planes, planes, s, self.se_reduction))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.avgpool(x), 1))


def _cifar_resnet(depth: int) -> None:
    @register_model(f"resnet{depth}", family="cifar_resnet", resolution=32, num_classes=10,
                    mean=CHECKPOINT_MEAN, std=CHECKPOINT_STD,
                    description=f"CIFAR ResNet-{depth} (He et al. 2015, option A)")
    def build(num_classes: int = 10, in_chans: int = 3, cifar_stem: bool = False,
              se_reduction: int | None = None) -> CifarResNet:
        # Already a CIFAR network: the CIFAR stem option changes nothing. se_reduction=16 is
        # the SE-ResNet of Hu et al. 2018 (their CIFAR table: SE-ResNet-110 against ResNet-110).
        return CifarResNet(depth, num_classes, in_chans, se_reduction)


for _depth in (20, 32, 44, 56, 110):
    _cifar_resnet(_depth)


class ResNeXtBlock(nn.Module):
    """The ResNeXt bottleneck (Xie et al. 2017, Fig. 3c): 1x1 down to ``width`` channels, a 3x3
    convolution in ``cardinality`` groups, 1x1 up to ``out_planes``; a 1x1 projection shortcut
    where the shape changes (as in the paper's CIFAR networks)."""

    def __init__(self, in_planes: int, out_planes: int, width: int, cardinality: int,
                 stride: int, se_reduction: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = _squeeze_excitation(out_planes, se_reduction)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + self.shortcut(x))


class CifarResNeXt(nn.Module):
    """ResNeXt-29 for CIFAR (Xie et al. 2017, section 5.3): a 3x3 stem of 64 channels, 3
    stages of n ResNeXt blocks (9n+2 layers; n=3 is ResNeXt-29) with 64/128/256 x
    ``widen_factor`` output channels, and ``cardinality`` x ``base_width`` bottleneck channels
    in the first stage, doubling per stage. The paper's 8x64d (cardinality 8, base width 64,
    widen factor 4) has 34.4 M parameters. Cardinality against width at equal mult-adds (the
    paper's Table 2 ablation) is ``cardinality`` with ``base_width`` from 64/40/24/14 for
    1/2/4/8 groups."""

    def __init__(self, depth: int = 29, cardinality: int = 8, base_width: int = 64,
                 widen_factor: int = 4, num_classes: int = 10, in_chans: int = 3,
                 se_reduction: int | None = None) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9 != 0:
            raise ValueError(f"CIFAR ResNeXt depth must be 9n+2 (11, 20, 29, ...), got {depth}")
        for name, value in (("cardinality", cardinality), ("base_width", base_width),
                            ("widen_factor", widen_factor)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        n = (depth - 2) // 9
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        in_planes, stages = 64, []
        for index in range(3):
            out_planes = 64 * widen_factor * 2 ** index
            width = cardinality * base_width * 2 ** index
            blocks = []
            for block in range(n):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(ResNeXtBlock(in_planes, out_planes, width, cardinality, stride,
                                           se_reduction))
                in_planes = out_planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.avgpool(x), 1))


@register_model("resnext29", family="cifar_resnet", resolution=32, num_classes=10,
                mean=CHECKPOINT_MEAN, std=CHECKPOINT_STD,
                description="CIFAR ResNeXt-29 8x64d (Xie et al. 2017; cardinality, base_width, "
                            "widen_factor, depth options)")
def resnext29(num_classes: int = 10, in_chans: int = 3, cifar_stem: bool = False,
              depth: int = 29, cardinality: int = 8, base_width: int = 64,
              widen_factor: int = 4, se_reduction: int | None = None) -> CifarResNeXt:
    return CifarResNeXt(depth, cardinality, base_width, widen_factor, num_classes, in_chans,
                        se_reduction)

"""CIFAR ResNets of He et al. 2015, section 4.2: ResNet-20/32/44/56/110.

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


class CifarBasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
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
            layers.append(CifarBasicBlock(self.in_planes, planes, s))
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
    def build(num_classes: int = 10, in_chans: int = 3, cifar_stem: bool = False) -> CifarResNet:
        # Already a CIFAR network: the CIFAR stem option changes nothing.
        return CifarResNet(depth, num_classes, in_chans)


for _depth in (20, 32, 44, 56, 110):
    _cifar_resnet(_depth)

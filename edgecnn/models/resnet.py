"""ImageNet ResNet, ResNeXt, Wide ResNet and SE-ResNet/SE-ResNeXt (He et al. 2015; Xie et al.
2016; Zagoruyko & Komodakis 2016; Hu et al. 2017).

One :class:`ResNet` covers them all: ResNeXt is ``groups``/``width_per_group`` on the 3x3 conv,
Wide ResNet a larger ``width_per_group``, SE an option of the block. The layout and names are
torchvision's (stride on the 3x3 conv, "ResNet v1.5"), so its checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.models.layers import SqueezeExcitation, init_conv_bn_linear
from edgecnn.models.registry import register_model

SE_REDUCTION = 16


def _se(channels: int, use_se: bool) -> nn.Module | None:
    # SE-ResNet: reduction 16, ReLU inside, sigmoid gate, on the residual branch before the add.
    return SqueezeExcitation(channels, channels // SE_REDUCTION) if use_se else None


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
        groups: int = 1, base_width: int = 64, use_se: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = _se(planes, use_se)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
        groups: int = 1, base_width: int = 64, use_se: bool = False,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = _se(planes * self.expansion, use_se)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        use_se: bool = False,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.groups = groups
        self.base_width = width_per_group
        if cifar_stem:
            # 32x32 inputs: a 3x3 stride-1 stem and no max-pool keep the resolution for layer1.
            self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, use_se)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, use_se)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, use_se)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, use_se)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_conv_bn_linear(self, linear="default")

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int,
        use_se: bool,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        use_se)]
        self.inplanes = planes * block.expansion
        layers += [
            block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                  use_se=use_se)
            for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _resnet(name: str, block: type, layers: list[int], description: str, tv: bool = True,
            **kw) -> None:
    """Register one configuration; the builder is a closure over the table row."""

    @register_model(name, family="resnet", resolution=224, description=description,
                    torchvision_name=name if tv else None)
    def build(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False) -> ResNet:
        return ResNet(block, layers, num_classes, in_chans, cifar_stem=cifar_stem, **kw)


_resnet("resnet18", BasicBlock, [2, 2, 2, 2], "ResNet-18")
_resnet("resnet34", BasicBlock, [3, 4, 6, 3], "ResNet-34")
_resnet("resnet50", Bottleneck, [3, 4, 6, 3], "ResNet-50")
_resnet("resnet101", Bottleneck, [3, 4, 23, 3], "ResNet-101")
_resnet("resnet152", Bottleneck, [3, 8, 36, 3], "ResNet-152")
_resnet("resnext50_32x4d", Bottleneck, [3, 4, 6, 3], "ResNeXt-50 32x4d",
        groups=32, width_per_group=4)
_resnet("resnext101_32x8d", Bottleneck, [3, 4, 23, 3], "ResNeXt-101 32x8d",
        groups=32, width_per_group=8)
_resnet("resnext101_64x4d", Bottleneck, [3, 4, 23, 3], "ResNeXt-101 64x4d",
        groups=64, width_per_group=4)
_resnet("wide_resnet50_2", Bottleneck, [3, 4, 6, 3], "Wide ResNet-50-2", width_per_group=128)
_resnet("se_resnet50", Bottleneck, [3, 4, 6, 3], "SE-ResNet-50 (reduction 16)", tv=False,
        use_se=True)
_resnet("se_resnext50_32x4d", Bottleneck, [3, 4, 6, 3], "SE-ResNeXt-50 32x4d (reduction 16)",
        tv=False, use_se=True, groups=32, width_per_group=4)

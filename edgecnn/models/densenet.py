"""DenseNet-BC (Huang et al. 2017): DenseNet-121/161/169/201 and the CIFAR DenseNet-BC-100 (k=12).

Each dense layer is BN-ReLU-1x1 conv (4k channels, the bottleneck) then BN-ReLU-3x3 conv
(k channels), and its output is concatenated to its input; a transition is BN-ReLU-1x1 conv that
halves the channels (compression 0.5) then 2x2 average pooling. Names follow torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.models.layers import init_conv_bn_linear
from edgecnn.models.registry import register_model


class DenseLayer(nn.Module):
    def __init__(self, in_features: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(features)))
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_features + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Concatenating once per layer (not keeping a list) keeps the graph simple to export.
        for layer in self.values():
            x = torch.cat([x, layer(x)], 1)
        return x


class Transition(nn.Sequential):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_features, out_features, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    def __init__(
        self,
        growth_rate: int,
        block_config: tuple[int, ...],
        num_init_features: int,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        cifar_stem: bool = False,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        if cifar_stem:
            # 32x32 inputs: one 3x3 stride-1 conv and no pooling before the first dense block.
            self.features.add_module("conv0", nn.Conv2d(in_chans, num_init_features, 3, 1, 1,
                                                        bias=False))
        else:
            self.features.add_module("conv0", nn.Conv2d(in_chans, num_init_features, 7, 2, 3,
                                                        bias=False))
            self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
            self.features.add_module("relu0", nn.ReLU(inplace=True))
            self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(
                f"denseblock{i + 1}",
                DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate),
            )
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                out = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out))
                channels = out
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_bn_linear(self, linear="default")
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.features(x))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def _densenet(name: str, growth: int, blocks: tuple[int, ...], init: int, description: str) -> None:
    @register_model(name, family="densenet", resolution=224, torchvision_name=name,
                    description=description)
    def build(num_classes: int = 1000, in_chans: int = 3, cifar_stem: bool = False,
              drop_rate: float = 0.0) -> DenseNet:
        return DenseNet(growth, blocks, init, drop_rate=drop_rate, num_classes=num_classes,
                        in_chans=in_chans, cifar_stem=cifar_stem)


_densenet("densenet121", 32, (6, 12, 24, 16), 64, "DenseNet-121 (k=32)")
_densenet("densenet161", 48, (6, 12, 36, 24), 96, "DenseNet-161 (k=48)")
_densenet("densenet169", 32, (6, 12, 32, 32), 64, "DenseNet-169 (k=32)")
_densenet("densenet201", 32, (6, 12, 48, 32), 64, "DenseNet-201 (k=32)")


@register_model("densenet_bc_100_k12", family="densenet", resolution=32, num_classes=10,
                description="CIFAR DenseNet-BC, depth 100, growth rate 12")
def densenet_bc_100_k12(num_classes: int = 10, in_chans: int = 3, cifar_stem: bool = True,
                        drop_rate: float = 0.0) -> DenseNet:
    # depth 100 = 3 blocks x 16 bottleneck layers x 2 convs + stem + 2 transitions + classifier.
    # A CIFAR network always: the stem is the 3x3 one whatever cifar_stem says.
    return DenseNet(12, (16, 16, 16), 2 * 12, drop_rate=drop_rate, num_classes=num_classes,
                    in_chans=in_chans, cifar_stem=True)

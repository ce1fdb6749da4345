"""A user's own model, not in edgecnn's registry: imported by the build through ``model.entry``.

It has what the pipeline must handle in code it has never seen: a residual add, a depthwise
convolution, its own classifier, and no edgecnn card.
"""

from __future__ import annotations

from torch import nn


class ResidualDepthwise(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.body(x))


class TinyNet(nn.Module):
    default_resolution = 32  # what a recipe's model.resolution would otherwise have to say

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            ResidualDepthwise(width),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            ResidualDepthwise(2 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def tiny_net(num_classes: int = 10, width: int = 16) -> nn.Module:
    return TinyNet(num_classes, width)


def not_a_module(num_classes: int = 10):
    return {"num_classes": num_classes}


def raises(num_classes: int = 10):
    raise ValueError("width must be even")


NOT_CALLABLE = 42

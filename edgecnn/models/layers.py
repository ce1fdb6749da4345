"""Building blocks shared by the model families.

Module and attribute names follow torchvision (``Conv2dNormActivation`` is a Sequential of
conv ``0``, norm ``1``, activation ``2``; squeeze-excitation has ``fc1``/``fc2``), because the
state_dict keys are the contract that lets torchvision checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ActivationFactory = Callable[..., nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%.

    The rule of the MobileNet v2/v3 and EfficientNet reference code; hardware likes channel
    counts that are multiples of 8, and width multipliers go through this one function.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's 'SAME' padding, computed from the input size.

    TF pads stride-2 convolutions asymmetrically (more at the bottom/right), so weights trained in
    TensorFlow (EfficientNet-Lite) compute a different function under PyTorch's symmetric padding.
    Subclassing ``nn.Conv2d`` keeps the parameter names and lets profilers treat it as a conv.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        # F.pad takes the last dimension first: (left, right, top, bottom).
        for size, k, s, d in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride),
            reversed(self.dilation), strict=True,
        ):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class ConvNormAct(nn.Sequential):
    """Conv -> BatchNorm -> activation, laid out as torchvision's ``Conv2dNormActivation``.

    ``activation=None`` gives a linear projection (no activation module, so no key shift).
    ``same_padding=True`` uses TensorFlow 'SAME' padding (see :class:`Conv2dSame`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: ActivationFactory | None = nn.ReLU,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        dilation: int = 1,
        same_padding: bool = False,
    ) -> None:
        if same_padding:
            conv: nn.Conv2d = Conv2dSame(
                in_channels, out_channels, kernel_size, stride,
                dilation=dilation, groups=groups, bias=False,
            )
        else:
            padding = (kernel_size - 1) // 2 * dilation
            conv = nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding,
                dilation=dilation, groups=groups, bias=False,
            )
        layers: list[nn.Module] = [
            conv,
            nn.BatchNorm2d(out_channels, eps=norm_eps, momentum=norm_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True) if _takes_inplace(activation) else activation())
        super().__init__(*layers)
        self.out_channels = out_channels


def _takes_inplace(factory: ActivationFactory) -> bool:
    return factory in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation: global average pool, two FC layers (as 1x1 convs), sigmoid gate.

    The FC layers are 1x1 convolutions with bias, named ``fc1``/``fc2`` as in torchvision, so the
    MobileNet v3 and EfficientNet checkpoints load; the gate multiplies the input channel-wise.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: ActivationFactory = nn.ReLU,
        gate: ActivationFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drops a whole residual branch per sample while training (EfficientNet's drop-connect).

    Identity at inference, so it changes no exported graph and holds no parameters.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def init_conv_bn_linear(model: nn.Module, linear: str = "normal") -> None:
    """The initialisation of the torchvision reference models.

    Kaiming-normal (fan_out) for convolutions, BN weight 1 / bias 0, and for linear layers either
    N(0, 0.01) (``"normal"``, MobileNet) or U(-1/sqrt(out), 1/sqrt(out)) (``"uniform"``,
    EfficientNet); ``"default"`` leaves PyTorch's own init (ResNet, DenseNet).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "normal":
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
            elif linear == "uniform":
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

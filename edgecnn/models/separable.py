"""Separable variants of any model, so "Conv X vs separable X" can be compared for every family.

:func:`make_separable` rewrites, in place, every full k x k convolution (k > 1, groups = 1) except
the stem (the first convolution of the network, which sees the raw image and has too few input
channels for factorisation to pay):

* ``"depthwise"``: depthwise k x k (stride, padding, dilation of the original) then pointwise 1x1,
  with no normalisation or activation between them, as Keras' SeparableConv2D and Xception;
* ``"spatial"``: k x 1 then 1 x k (the Inception-v3 factorisation), the first conv taking the
  original's input channels to its output channels and the vertical stride, the second the
  horizontal stride.

The replaced conv becomes a Sequential of the two convs, named ``dw``/``pw`` or
``vertical``/``horizontal``.
Convolutions with TF 'SAME' padding (asymmetric) are not rewritten: their padding cannot be
split between the two factors without changing the output size.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edgecnn.models.layers import Conv2dSame


def _factorise_depthwise(conv: nn.Conv2d) -> nn.Sequential:
    kw = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    dw = nn.Conv2d(conv.in_channels, conv.in_channels, conv.kernel_size, conv.stride,
                   conv.padding, conv.dilation, groups=conv.in_channels, bias=False, **kw)
    pw = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=conv.bias is not None, **kw)
    return nn.Sequential(OrderedDict(dw=dw, pw=pw))


def _factorise_spatial(conv: nn.Conv2d) -> nn.Sequential:
    kw = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    (kh, kw_), (sh, sw), (ph, pw_), (dh, dw_) = (
        conv.kernel_size, conv.stride, conv.padding, conv.dilation,
    )
    vertical = nn.Conv2d(conv.in_channels, conv.out_channels, (kh, 1), (sh, 1), (ph, 0),
                         (dh, 1), bias=False, **kw)
    horizontal = nn.Conv2d(conv.out_channels, conv.out_channels, (1, kw_), (1, sw), (0, pw_),
                           (1, dw_), bias=conv.bias is not None, **kw)
    return nn.Sequential(OrderedDict(vertical=vertical, horizontal=horizontal))


_REWRITES = {"depthwise": _factorise_depthwise, "spatial": _factorise_spatial}


def is_full_spatial_conv(conv: nn.Module) -> bool:
    """A dense k x k convolution: both kernel sides > 1 and groups = 1."""
    return (
        isinstance(conv, nn.Conv2d)
        and not isinstance(conv, Conv2dSame)
        and conv.groups == 1
        and min(conv.kernel_size) > 1
        and isinstance(conv.padding, tuple)
    )


def make_separable(model: nn.Module, mode: str) -> nn.Module:
    """Rewrite ``model`` in place (see the module docstring); returns it for chaining."""
    rewrite = _REWRITES[mode]
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    stem = convs[0][0] if convs else None
    targets = [(name, m) for name, m in convs if name != stem and is_full_spatial_conv(m)]
    for name, conv in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, rewrite(conv))
    return model

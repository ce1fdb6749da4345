"""Transforms applied on the fly to uint8 batches, in torch.

CIFAR augmentation (4-pixel zero padding, random 32x32 crop, horizontal flip) runs on whole
uint8 batches with index arithmetic, so it costs a fraction of a training step. ImageNet-style
augmentation (random resized crop + flip, the Inception/torchvision recipe) crops each image's
own box and resizes it bilinearly (antialiased) to the training size; it is written here because
torchvision, whose RandomResizedCrop it follows, does not install on these machines (DESIGN.md).
Normalisation turns uint8 NHWC into float NCHW with the model's mean and std.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def random_crop_flip(batch: torch.Tensor, padding: int = 4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad-and-random-crop plus horizontal flip of a uint8 (B, H, W, C) batch (CIFAR style)."""
    b, h, w, _ = batch.shape
    padded = torch.nn.functional.pad(batch, (0, 0, padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator)
    rows = top + torch.arange(h)  # (B, H)
    cols = left + torch.arange(w)  # (B, W)
    flip = torch.rand(b, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    index = torch.arange(b)[:, None, None]
    return padded[index, rows[:, :, None], cols[:, None, :]]


def random_resized_crop_flip(batch: torch.Tensor, size: int, scale=(0.08, 1.0),
                             ratio=(3 / 4, 4 / 3), generator: torch.Generator | None = None,
                             attempts: int = 10) -> torch.Tensor:
    """Random resized crop (area ``scale``, aspect ``ratio``) + horizontal flip of each image of
    a uint8 (B, H, W, C) batch, resized to (B, size, size, C).

    As in torchvision's RandomResizedCrop: up to ``attempts`` draws of a box that fits, else the
    central crop of the largest box within the ratio bounds.
    """
    b, h, w, _ = batch.shape
    out = torch.empty((b, size, size, batch.shape[3]), dtype=torch.uint8)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for i in range(b):
        top, left, ch, cw = _crop_box(h, w, scale, log_ratio, ratio, generator, attempts)
        crop = batch[i, top:top + ch, left:left + cw].permute(2, 0, 1)[None].float()
        resized = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear",
                                                  align_corners=False, antialias=True)
        if torch.rand(1, generator=generator).item() < 0.5:
            resized = resized.flip(3)
        out[i] = resized[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
    return out


def _crop_box(h, w, scale, log_ratio, ratio, generator, attempts) -> tuple[int, int, int, int]:
    area = h * w
    for _ in range(attempts):
        fraction = torch.rand(1, generator=generator).item()
        target = area * (scale[0] + (scale[1] - scale[0]) * fraction)
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0])
                          * torch.rand(1, generator=generator).item())
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
            return top, left, ch, cw
    aspect = w / h
    if aspect < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif aspect > ratio[1]:
        cw, ch = round(h * ratio[1]), h
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float32 (B, C, H, W) scaled to [0, 1] then standardised."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    x = x.sub_(m).div_(s)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()

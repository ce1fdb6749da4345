"""Transforms applied on the fly to uint8 batches, in torch, vectorised over the batch.

CIFAR augmentation (4-pixel zero padding, random 32x32 crop, horizontal flip) runs on whole
uint8 batches with index arithmetic, so it costs a fraction of a training step; normalisation
turns uint8 NHWC into float NCHW with the model's mean and std.
"""

from __future__ import annotations

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


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float32 (B, C, H, W) scaled to [0, 1] then standardised."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    x = x.sub_(m).div_(s)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()

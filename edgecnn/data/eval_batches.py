"""Evaluation batches in numpy: the images in order, normalised, no augmentation.

Kept free of torch so that a device with only the runtime install (``edgecnn[runtime]``) can
evaluate an ONNX or TensorRT artifact. The arithmetic is the same float32 operations as the
torch loader's ``normalize`` (divide by 255, subtract the mean, divide by the std), so the two
give bit-identical inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from edgecnn.data.splits import ImageSet


def normalize_nchw(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (B, H, W, C) -> contiguous float32 (B, C, H, W) in [0, 1], then standardised."""
    x = batch.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - m) / s)


def eval_batches(data: ImageSet, batch_size: int, mean: Sequence[float],
                 std: Sequence[float]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, labels) batches over every image of ``data`` in order; the last may be short."""
    for start in range(0, len(data.labels), batch_size):
        stop = start + batch_size
        yield normalize_nchw(data.images[start:stop], mean, std), data.labels[start:stop]

"""Batches of normalised tensors from an in-memory :class:`ImageSet`.

Shuffling is seeded per epoch, so a resumed run sees the same order it would have seen.

With ``prefetch > 0`` a background thread prepares the next batches while the model computes on
the current one (torch releases the GIL in its kernels). That pays when the model runs on a GPU
and the CPU would otherwise idle; when the model itself trains on the CPU its kernels already use
every core, and the extra thread only contends with them (measured on the 2-core machine:
MobileNet v2 0.5 trained at 333-357 img/s with the thread, 416-504 img/s without, 442-475 img/s
from pre-loaded tensors; benchmarks/README.md). So batches are prepared inline by default.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import torch

from edgecnn.data.splits import ImageSet
from edgecnn.data.transforms import normalize, random_crop_flip, random_resized_crop_flip

AUGMENTATIONS = ("none", "flip", "cifar", "imagenet")


class BatchLoader:
    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        shuffle: bool = False,
        augment: str = "none",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        prefetch: int = 0,
        crop_size: int | None = None,
    ) -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        if augment == "imagenet" and crop_size is None:
            raise ValueError("augment 'imagenet' needs crop_size, the training resolution")
        self.crop_size = crop_size
        self.images = torch.from_numpy(data.images)
        self.labels = torch.from_numpy(data.labels)
        self.batch_size, self.mean, self.std = batch_size, tuple(mean), tuple(std)
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.drop_last, self.channels_last, self.prefetch = drop_last, channels_last, prefetch
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.labels)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            batch = self.images[idx]
            if self.augment == "imagenet":
                batch = random_resized_crop_flip(batch, self.crop_size, generator=generator)
            elif self.augment != "none":
                padding = 4 if self.augment == "cifar" else 0  # a 0-pixel crop is the identity
                batch = random_crop_flip(batch, padding=padding, generator=generator)
            yield normalize(batch, self.mean, self.std, self.channels_last), self.labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.prefetch <= 0:
            yield from self._batches()
            return
        yield from _prefetched(self._batches(), self.prefetch)


_DONE = object()


def _prefetched(source: Iterator, depth: int) -> Iterator:
    """Run ``source`` in a thread, ``depth`` items ahead; re-raise its errors here."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                if stop.is_set():
                    return
                slots.put(item)
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)

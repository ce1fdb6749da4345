"""Splits of a dataset: the folders it has, plus a validation split carved from train.

``train`` and ``val`` are disjoint: when the dataset has no ``val`` folder, ``val_size`` images
of the train folder, chosen by a seeded permutation, form it and are removed from ``train``.
Calibration samples for quantization are drawn from ``train`` by default; a dataset without one
(an ImageNet-style val folder) calibrates on images of the evaluation split that are then left
out of the evaluation (``ImageSet.overlap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.data.folder import FolderIndex, decode_folder, scan_folder
from edgecnn.data.sources import dataset_root
from edgecnn.errors import EdgeCNNError

SPLITS = ("train", "val", "test")


@dataclass
class ImageSet:
    """Decoded images of one split: uint8 (N, H, W, 3), int64 labels, class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    description: str
    # Which files these are: the dataset folder and each image's index in its file list, so that
    # two sets drawn from one folder by different carvings can be told apart image by image
    # (calibration images are kept out of the images then evaluated).
    folder: str | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray, description: str) -> ImageSet:
        ids = None if self.ids is None else self.ids[indices]
        return ImageSet(self.images[indices], self.labels[indices], self.classes, description,
                        self.folder, ids)

    def overlap(self, other: ImageSet) -> np.ndarray:
        """Positions in this set of the images ``other`` holds too (same folder, same files)."""
        if self.ids is None or other.ids is None or self.folder != other.folder:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.isin(self.ids, other.ids))


def held_out_indices(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), disjoint, sorted, from a permutation seeded by ``seed``."""
    if not 0 <= val_size < n:
        raise EdgeCNNError(f"data.val_size must be between 0 and {n - 1} (the train split), "
                           f"got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


def split_index(dataset: str, split: str) -> tuple[FolderIndex, Path]:
    root = dataset_root(dataset)
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    folder = split if split in available else "train" if split == "val" else None
    if split not in SPLITS or folder not in available:
        valid = sorted(set(available) | ({"val"} if "train" in available else set()))
        raise EdgeCNNError(f"dataset {dataset!r} has no split {split!r}; valid: {', '.join(valid)}")
    return scan_folder(root / folder), root


def has_split(dataset: str, split: str) -> bool:
    """Whether ``split`` exists (a folder, or val carved from a train folder)."""
    try:
        split_index(dataset, split)
    except EdgeCNNError:
        return False
    return True


def load_split(
    dataset: str, split: str, *, size: int | None = None, val_size: int = 5000, seed: int = 0,
    resize: int | None = None,
) -> ImageSet:
    """Decode one split into memory (cached); ``size`` resizes the short side to ``resize``
    (default size/0.875) and centre-crops size x size."""
    index, root = split_index(dataset, split)
    images = decode_folder(index, size, resize)
    full = ImageSet(images, index.labels, index.classes, f"{dataset}:{index.root.name}",
                    folder=str(index.root.resolve()), ids=np.arange(len(index)))
    if not _carved(index, root, split) or val_size == 0:
        return full
    train_idx, val_idx = held_out_indices(len(full), val_size, seed)
    if split == "train":
        return full.subset(train_idx, f"{dataset}:train minus {val_size} held out (seed {seed})")
    return full.subset(val_idx, f"{dataset}:val = {val_size} held out of train (seed {seed})")


def _carved(index: FolderIndex, root: Path, split: str) -> bool:
    """Whether ``split`` is cut out of the train folder (no val folder beside it)."""
    return index.root.name == "train" and not (root / "val").is_dir() and split in ("train",
                                                                                     "val")


def split_size(dataset: str, split: str, val_size: int) -> int:
    """Images in ``split`` as :func:`load_split` carves it, without decoding any."""
    index, root = split_index(dataset, split)
    if not _carved(index, root, split) or val_size == 0:
        return len(index)
    return len(index) - val_size if split == "train" else val_size


def calibration_indices(n_train: int, samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` distinct train indices, the same for the same seed on every machine."""
    if not 0 < samples <= n_train:
        raise EdgeCNNError(f"calibration samples must be between 1 and {n_train} (the train "
                           f"split holds {n_train} images), got {samples}")
    return np.sort(np.random.default_rng(seed).choice(n_train, samples, replace=False))

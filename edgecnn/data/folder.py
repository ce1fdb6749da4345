"""ImageFolder trees (``<split>/<class>/<image>``): scanning, and decoding once into memory.

Small datasets (CIFAR-10: 60,000 images of 32x32) are decoded once into one uint8 array and kept
in the cache as ``.npz`` (read back with ``allow_pickle=False``), so training reads memory, not
JPEG files. Images of differing sizes are brought to one size on decoding by the evaluation
transform (resize the short side, centre crop); images already of that size are kept as they are.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.settings import cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm")
_CACHE_VERSION = "1"


@dataclass(frozen=True)
class FolderIndex:
    """The files of one split folder, in a fixed order (classes sorted, files sorted)."""

    root: Path
    files: list[str]  # relative to root
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.files)


def scan_folder(split_dir: Path) -> FolderIndex:
    if not split_dir.is_dir():
        raise EdgeCNNError(f"image folder {split_dir} does not exist")
    classes = sorted(d.name for d in split_dir.iterdir()
                     if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise EdgeCNNError(f"image folder {split_dir} has no class sub-folders (<class>/<image>)")
    files, labels = [], []
    for index, name in enumerate(classes):
        for entry in sorted(os.scandir(split_dir / name), key=lambda e: e.name):
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                files.append(f"{name}/{entry.name}")
                labels.append(index)
    if not files:
        raise EdgeCNNError(
            f"image folder {split_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return FolderIndex(split_dir, files, np.asarray(labels, dtype=np.int64), classes)


def decode_image(path: Path, size: int | None = None, resize: int | None = None) -> np.ndarray:
    """An RGB uint8 HxWx3 array; with ``size``, resized (short side) and centre-cropped."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:
                im = resize_center_crop(im, size, resize)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgeCNNError(f"image {path} cannot be decoded: {exc}") from exc


def eval_resize(size: int) -> int:
    """The short side the evaluation view resizes to before its centre crop (256 for 224)."""
    return round(size / 0.875)


def resize_center_crop(im, size: int, resize: int | None = None):
    """The standard evaluation view: short side to ``resize`` (default size/0.875), centre crop.

    An image that already is ``size`` x ``size`` (CIFAR at 32) is left as it is.
    """
    from PIL import Image

    if im.size == (size, size):
        return im
    resize = resize or eval_resize(size)
    w, h = im.size
    if min(w, h) != resize:
        scale = resize / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                       Image.BILINEAR)
        w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def _cache_key(index: FolderIndex, size: int | None, resize: int | None) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{size}|{resize}".encode())
    for rel in index.files:
        stat = (index.root / rel).stat()
        digest.update(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def decode_folder(index: FolderIndex, size: int | None = None, resize: int | None = None,
                  use_cache: bool = True) -> np.ndarray:
    """All images of ``index`` as one uint8 (N, H, W, 3) array, from the cache when it is there."""
    path = cache_dir() / "arrays" / f"{index.root.name}-{_cache_key(index, size, resize)}.npz"
    if use_cache and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return data["images"]
    # PIL releases the GIL while decoding, so threads use both cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        arrays = list(pool.map(lambda rel: decode_image(index.root / rel, size, resize),
                               index.files))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise EdgeCNNError(
            f"images in {index.root} have different sizes ({len(shapes)} shapes); give an input "
            "resolution so they are resized and centre-cropped on decoding"
        )
    images = np.stack(arrays)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images)
        os.replace(tmp, path)
    return images

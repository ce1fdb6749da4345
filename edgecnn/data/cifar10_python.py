"""The official CIFAR-10 python archive, turned into an ImageFolder tree in the cache.

The archive's batches are Python pickles. They are read only after the archive's sha256 matches
the published one, and then through an unpickler that admits nothing but numpy arrays, so even a
tampered file cannot run code. Without network access the download fails with a message saying
how to point at a local copy (``EDGECNN_CIFAR10_ARCHIVE``, or the archive as the dataset path of
an ImageFolder conversion).
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from edgecnn.data.archives import verify_sha256
from edgecnn.errors import EdgeCNNError
from edgecnn.settings import cache_dir

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# Published with the dataset as md5 c58f30108f718f92721af3b95e74349a; this is its sha256.
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # Python 3 writes the bytes of an array in protocol 2 as _codecs.encode(str, "latin1"): a
    # pure conversion, needed to read a batch re-pickled by Python 3 (the original is Python 2).
    ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_batch(data: bytes) -> tuple[np.ndarray, list[int]]:
    batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, list(batch[b"labels"])


def _archive_path() -> Path:
    env = os.environ.get("EDGECNN_CIFAR10_ARCHIVE")
    if env:
        return Path(env).expanduser()
    path = cache_dir() / "downloads" / "cifar-10-python.tar.gz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(URL, timeout=60) as response, tmp.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EdgeCNNError(
                f"dataset 'cifar10': could not download {URL} ({exc}). Without network access, "
                "download cifar-10-python.tar.gz elsewhere and set EDGECNN_CIFAR10_ARCHIVE to "
                "its path, or use the dataset 'cifar10-jpeg' from the shared folder"
            ) from exc
        tmp.rename(path)
    return path


def cifar10_python_root() -> Path:
    """An ImageFolder tree (PNG files) of the official archive, written once into the cache."""
    root = cache_dir() / "extracted" / "cifar10-python"
    if root.is_dir():
        return root
    archive = _archive_path()
    if not archive.is_file():
        raise EdgeCNNError(f"EDGECNN_CIFAR10_ARCHIVE={archive} does not exist")
    verify_sha256(archive, SHA256)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cifar10-python-", dir=root.parent))
    try:
        convert_archive(archive, staging / "tree")
        (staging / "tree").rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def convert_archive(archive: Path, destination: Path) -> None:
    """Write the archive's batches as ``destination/{train,test}/<class>/<name>.png``."""
    from PIL import Image

    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            name = Path(member.name).name
            split = "test" if name == "test_batch" else "train" if name.startswith(
                "data_batch_") else None
            if split is None:
                continue
            images, labels = _read_batch(tf.extractfile(member).read())
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                folder = destination / split / CLASSES[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{name}_{i:05d}.png")

"""The official CIFAR-10 python format: converted from an archive of the same layout, and read
only through an unpickler that admits numpy arrays."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from edgecnn.data.cifar10_python import CLASSES, _read_batch, convert_archive


def _batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    return pickle.dumps({b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), -1),
                         b"labels": labels}, protocol=2)


def test_convert_archive_writes_an_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, labels in (("data_batch_1", [0, 3, 3, 9]), ("test_batch", [1, 1, 2, 0])):
            payload = _batch_bytes(images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    convert_archive(archive, tmp_path / "tree")
    written = sorted(p.relative_to(tmp_path / "tree").as_posix()
                     for p in (tmp_path / "tree").rglob("*.png"))
    assert len(written) == 8 and "train/cat/data_batch_1_00001.png" in written
    restored = np.asarray(Image.open(tmp_path / "tree/train/truck/data_batch_1_00003.png"))
    assert np.array_equal(restored, images[3]) and CLASSES[9] == "truck"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_with_code_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        _read_batch(pickle.dumps({b"data": _Exploit(), b"labels": []}, protocol=2))

"""Image folders, decoding into memory, splits and calibration indices."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecnn.data import calibration_indices, dataset_root, load_split
from edgecnn.data.folder import decode_folder, scan_folder
from edgecnn.data.splits import held_out_indices
from edgecnn.errors import EdgeCNNError


def test_scan_orders_classes_and_files(tiny_cifar_folder):
    index = scan_folder(tiny_cifar_folder / "train")
    assert index.classes == sorted(index.classes) and len(index.classes) == 10
    assert len(index) == 200 and list(index.labels[:20]) == [0] * 20
    assert index.files[0] == f"{index.classes[0]}/000.png"


def test_decode_is_cached_and_identical(tiny_cifar_folder, private_cache):
    index = scan_folder(tiny_cifar_folder / "test")
    first = decode_folder(index)
    assert first.shape == (100, 32, 32, 3) and first.dtype == np.uint8
    assert len(list((private_cache / "arrays").glob("*.npz"))) == 1
    assert np.array_equal(decode_folder(index), first)


def test_archive_and_extracted_folder_give_identical_images(cifar_test_split):
    folder = dataset_root("cifar10-jpeg")  # the extracted tree, given as a plain path
    from_folder = load_split(str(folder), "test")
    assert np.array_equal(from_folder.images, cifar_test_split.images)
    assert np.array_equal(from_folder.labels, cifar_test_split.labels)


def test_val_is_carved_from_train_disjoint_and_seeded(tiny_cifar_folder, private_cache):
    root = str(tiny_cifar_folder)
    train = load_split(root, "train", val_size=50, seed=3)
    val = load_split(root, "val", val_size=50, seed=3)
    assert (len(train), len(val)) == (150, 50)
    train_rows = {row.tobytes() for row in train.images}
    assert not any(row.tobytes() in train_rows for row in val.images)
    again = load_split(root, "val", val_size=50, seed=3)
    assert np.array_equal(again.images, val.images)
    other = load_split(root, "val", val_size=50, seed=4)
    assert not np.array_equal(other.images, val.images)


def test_held_out_indices_partition():
    train, val = held_out_indices(100, 10, seed=0)
    assert len(val) == 10 and sorted(np.concatenate([train, val])) == list(range(100))
    with pytest.raises(EdgeCNNError, match="val_size must be between 0 and 99"):
        held_out_indices(100, 100, seed=0)


def test_calibration_indices_come_from_train_and_are_bounded():
    picks = calibration_indices(45_000, 512, seed=1)
    assert len(set(picks)) == 512 and picks.max() < 45_000
    assert np.array_equal(picks, calibration_indices(45_000, 512, seed=1))
    with pytest.raises(EdgeCNNError, match="the train split holds 45000 images"):
        calibration_indices(45_000, 50_000)


@pytest.mark.parametrize(("dataset", "split", "message"), [
    ("cifar10-jpg", "test", "did you mean cifar10-jpeg"),
    ("/no/such/folder", "test", "neither a known name nor an existing path"),
])
def test_unknown_dataset_is_a_clear_error(dataset, split, message):
    with pytest.raises(EdgeCNNError, match=message):
        load_split(dataset, split)


def test_unknown_split_lists_the_valid_ones(tiny_cifar_folder):
    with pytest.raises(EdgeCNNError, match="no split 'holdout'; valid: test, train, val"):
        load_split(str(tiny_cifar_folder), "holdout")


def test_mixed_sizes_need_a_resolution_and_corrupt_images_are_named(tmp_path, private_cache):
    for i, size in enumerate([(10, 12), (14, 10)]):
        (tmp_path / "test" / "a").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (i, 0, 0)).save(tmp_path / "test" / "a" / f"{i}.png")
    with pytest.raises(EdgeCNNError, match="different sizes"):
        load_split(str(tmp_path), "test")
    resized = load_split(str(tmp_path), "test", size=8)
    assert resized.images.shape == (2, 8, 8, 3)
    (tmp_path / "test" / "a" / "2.png").write_bytes(b"not an image")
    with pytest.raises(EdgeCNNError, match=r"2.png cannot be decoded"):
        load_split(str(tmp_path), "test", size=8)

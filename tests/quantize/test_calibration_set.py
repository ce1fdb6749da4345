"""Calibration-set definitions: read from calibration/*.yaml, drawn the same way every time."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.calibration_set import (
    FOLDER,
    calibration_data,
    load_calibration_set,
)


def test_every_definition_in_the_repository_loads():
    files = sorted(FOLDER.glob("*.yaml"))
    assert files
    for path in files:
        definition = load_calibration_set(path)
        assert definition.name == path.stem and definition.samples >= 1
        assert load_calibration_set(path.stem) == definition


def test_draw_is_deterministic_and_normalised(tmp_path, shared):
    (tmp_path / "small.yaml").write_text(
        "dataset: cifar10-jpeg\nsplit: test\nsamples: 40\nseed: 3\n")
    definition = load_calibration_set(tmp_path / "small.yaml")
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    a = calibration_data(definition, mean=mean, std=std, resolution=32)
    b = calibration_data(definition, mean=mean, std=std, resolution=32)
    assert a.array.shape == (40, 3, 32, 32) and a.array.dtype == np.float32
    assert np.array_equal(a.indices, b.indices) and np.all(np.diff(a.indices) > 0)
    assert a.manifest["sha256"] == b.manifest["sha256"]
    assert a.manifest["definition"]["seed"] == 3 and a.manifest["split"].startswith("cifar10")
    assert a.array.min() >= -2.0 - 1e-6 and a.array.max() <= 2.0 + 1e-6
    other = calibration_data(definition, mean=(0.4, 0.4, 0.4), std=std, resolution=32)
    assert other.manifest["sha256"] != a.manifest["sha256"]


@pytest.mark.parametrize(("text", "message"), [
    ("split: train\n", "needs a dataset"),
    ("dataset: x\nsampels: 3\n", "unknown field"),
    ("dataset: x\nsamples: -1\n", "samples must be an integer"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_bad_definitions_are_refused(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(EdgeCNNError, match=message):
        load_calibration_set(tmp_path / "bad.yaml")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(EdgeCNNError, match="cifar10-train-512"):
        load_calibration_set("no-such-set")

"""Calibration-set definitions (calibration/*.yaml) -> the normalised array quantizers take.

A definition names a dataset, split, sample count and seed; the images are drawn with
``edgecnn.data.calibration_indices`` (seeded, without replacement, sorted: the same images on
every machine), decoded at the model's resolution with the evaluation resize and standardised
with the model's mean/std, the same float32 arithmetic as evaluation (``normalize_nchw``). The
manifest returned with the array is what calibration tables record, so a table says exactly
which data produced it. Needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.calibration_table import calibration_manifest, indices_sha256

if TYPE_CHECKING:
    from edgecnn.data.splits import ImageSet

FOLDER = Path(__file__).resolve().parents[2] / "calibration"
FIELDS = ("name", "dataset", "split", "samples", "seed", "val_size")


@dataclass(frozen=True)
class CalibrationSetDefinition:
    name: str
    dataset: str
    split: str = "train"
    samples: int = 512
    seed: int = 0
    val_size: int = 5000  # load_split's default hold-out when the split is carved from train


@dataclass
class CalibrationData:
    array: np.ndarray
    manifest: dict[str, Any]
    indices: np.ndarray
    images: ImageSet  # the chosen images as decoded (which files they are: ImageSet.ids)


def definition_path(name_or_path: str | Path) -> Path:
    """The YAML file of a definition given by path, or by name from ``calibration/``."""
    path = Path(name_or_path)
    if not path.suffix:
        path = FOLDER / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in FOLDER.glob("*.yaml")) if FOLDER.is_dir() else []
        raise EdgeCNNError(f"calibration set {name_or_path!r} not found ({path}); known: "
                           f"{', '.join(known) or 'none'}")
    return path


def load_calibration_set(name_or_path: str | Path) -> CalibrationSetDefinition:
    """A definition by file path, or by name from the repository's ``calibration/`` folder."""
    from edgecnn.safe_yaml import read_yaml_file

    path = definition_path(name_or_path)
    data = read_yaml_file(path, "calibration set")
    if not isinstance(data, dict):
        raise EdgeCNNError(f"calibration set {path} must be a mapping of {', '.join(FIELDS)}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise EdgeCNNError(f"calibration set {path}: unknown field(s) {', '.join(unknown)}; "
                           f"valid: {', '.join(FIELDS)}")
    if "dataset" not in data:
        raise EdgeCNNError(f"calibration set {path} needs a dataset")
    for key in ("dataset", "split"):
        if key in data and not isinstance(data[key], str):
            raise EdgeCNNError(f"calibration set {path}: {key} must be a string, "
                               f"got {data[key]!r}")
    for key in ("samples", "seed", "val_size"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)
                            or data[key] < 0):
            raise EdgeCNNError(f"calibration set {path}: {key} must be an integer >= 0, "
                               f"got {data[key]!r}")
    if data.get("samples", 1) < 1:
        raise EdgeCNNError(f"calibration set {path}: samples must be >= 1")
    return CalibrationSetDefinition(**{"name": path.stem, **data})


def calibration_data(definition: CalibrationSetDefinition, *, mean: Sequence[float],
                     std: Sequence[float], resolution: int) -> CalibrationData:
    """The definition's images, normalised float32 NCHW at ``resolution``, with a manifest."""
    from edgecnn.data import calibration_indices, load_split
    from edgecnn.data.eval_batches import normalize_nchw

    split = load_split(definition.dataset, definition.split, size=resolution,
                       val_size=definition.val_size, seed=definition.seed)
    indices = calibration_indices(len(split), definition.samples, definition.seed)
    array = normalize_nchw(split.images[indices], mean, std)
    manifest = calibration_manifest(
        array, definition=asdict(definition), split=split.description,
        indices_sha256=indices_sha256(indices),
        resolution=resolution, mean=[float(m) for m in mean], std=[float(s) for s in std],
        normalisation="(x / 255 - mean) / std after the evaluation resize")
    return CalibrationData(array, manifest, indices,
                           split.subset(indices, f"calibration set {definition.name}"))

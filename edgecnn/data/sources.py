"""Where a dataset named in a recipe or on the command line comes from.

A dataset is given by name (one of :data:`KNOWN_DATASETS`) or by path: an ImageFolder directory
(``<root>/<split>/<class>/<image>``), or an archive holding one. Either way the result is a local
folder whose sub-folders are the splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecnn.data.archives import extract_cached, is_archive
from edgecnn.errors import EdgeCNNError, closest
from edgecnn.settings import shared_dir


@dataclass(frozen=True)
class KnownDataset:
    """A named dataset: an archive (relative to the shared folder), its sha256, its top folder."""

    archive: str
    sha256: str
    top_folder: str
    description: str


KNOWN_DATASETS = {
    "cifar10-jpeg": KnownDataset(
        "data/cifar10-jpeg.tar.gz",
        "23f88bfe53fbfc9f4f67bd2d3df9256c3daf93811b338151df637ddc19c7bcce",
        "cifar10-jpeg",
        "CIFAR-10 (JPEG copy): 50,000 train / 10,000 test images, 32x32, 10 classes",
    ),
    "imagenet-sample": KnownDataset(
        "data/imagenet-sample.tar",
        "8f3b5f583959e7946d49f79f3092e4dc8e6e1f0180b1c13a3f53cb992f73562a",
        "imagenet-sample",
        "1,000 ImageNet training images, one per class, short side 256 (split 'val')",
    ),
}


def dataset_root(dataset: str) -> Path:
    """The local folder holding the split folders of ``dataset`` (a name or a path)."""
    if dataset in KNOWN_DATASETS:
        known = KNOWN_DATASETS[dataset]
        archive = shared_dir() / known.archive
        if not archive.is_file():
            raise EdgeCNNError(
                f"dataset {dataset!r}: {archive} not found; set EDGECNN_SHARED to the folder "
                "holding data/, or give the dataset as a path to an image folder or archive"
            )
        return extract_cached(archive, known.sha256) / known.top_folder
    if dataset == "cifar10":
        from edgecnn.data.cifar10_python import cifar10_python_root

        return cifar10_python_root()
    path = Path(dataset).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and is_archive(path):
        root = extract_cached(path)
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        # An archive usually wraps its splits in one top folder; look through it.
        return entries[0] if len(entries) == 1 and entries[0].is_dir() else root
    if path.exists():
        raise EdgeCNNError(
            f"dataset {dataset}: not a folder or an archive (.tar, .tar.gz, .tgz, .zip)"
        )
    names = [*KNOWN_DATASETS, "cifar10"]
    hint = closest(dataset, names) if "/" not in dataset else f"known names: {', '.join(names)}"
    raise EdgeCNNError(f"dataset {dataset!r} is neither a known name nor an existing path; {hint}")

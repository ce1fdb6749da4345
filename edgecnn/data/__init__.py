"""Datasets by name or path, splits, decoding into memory, on-the-fly transforms, batches.

``BatchLoader`` (training batches, augmentation) needs torch and is imported on first use, so
the runtime-only install can load splits and evaluate without it.
"""

from typing import Any

from edgecnn.data.sources import KNOWN_DATASETS, dataset_root
from edgecnn.data.splits import ImageSet, calibration_indices, load_split

__all__ = ["KNOWN_DATASETS", "BatchLoader", "ImageSet", "calibration_indices", "dataset_root",
           "load_split"]


def __getattr__(name: str) -> Any:
    if name == "BatchLoader":
        from edgecnn.data.loaders import BatchLoader

        return BatchLoader
    raise AttributeError(f"module 'edgecnn.data' has no attribute {name!r}")

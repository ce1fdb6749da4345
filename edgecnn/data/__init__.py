"""Datasets by name or path, splits, decoding into memory, on-the-fly transforms, batches."""

from edgecnn.data.loaders import BatchLoader
from edgecnn.data.sources import KNOWN_DATASETS, dataset_root
from edgecnn.data.splits import ImageSet, calibration_indices, load_split

__all__ = ["KNOWN_DATASETS", "BatchLoader", "ImageSet", "calibration_indices", "dataset_root",
           "load_split"]

"""Reading a container context (``context.json`` written by ``edgecnn container``) on the device.

The device runs models it did not build, so the context is checked before anything is loaded:
its fields have the types the run uses (a schema, so a hand-edited or truncated file is one clear
error), and every model and data file the run reads lies inside the context folder and is listed
in ``files`` with the sha256 it had when the context was written. A file outside the folder (an
absolute path, ``..``, a link that leads out) or one not listed is refused: otherwise a context
could point the device at any file unverified.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgecnn.data.splits import ImageSet
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file

CONTEXT_FILE = "context.json"


class _Open(BaseModel):
    # the context carries more (commands, created, ...) than the run reads
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class EvalSubset(_Open):
    file: str
    description: str
    images: int | None = None


class BenchmarkSettings(_Open):
    batch_sizes: list[int] = Field(min_length=1)


class ContextFile(_Open):
    recipe: str
    arch: str
    params: int = Field(ge=0)
    macs: int = Field(ge=0)
    resolution: int = Field(ge=1, le=4096)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    models: dict[str, str] = Field(min_length=1)
    eval: EvalSubset
    benchmark: BenchmarkSettings
    files: dict[str, str] = Field(min_length=1)
    tensorrt: dict[str, Any] = Field(default_factory=dict)
    variant: str = "dense"  # contexts written before pruning


def read_context(folder: Path) -> dict[str, Any]:
    """context.json of ``folder``, validated and with every file it names verified."""
    path = folder / CONTEXT_FILE
    if not path.is_file():
        raise EdgeCNNError(f"{folder} is not an edgecnn container context (no {CONTEXT_FILE}); "
                           "write one with `edgecnn container RUN_DIR`")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EdgeCNNError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise EdgeCNNError(f"{path} must hold a JSON object, not {type(raw).__name__}")
    try:
        ContextFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(context)"
        raise EdgeCNNError(f"{path}: {field}: {first['msg']} ({exc.error_count()} problem(s)); "
                           "write the context again with `edgecnn container`") from exc
    if any(s <= 0 for s in raw["std"]):
        raise EdgeCNNError(f"{path}: std must be positive, got {raw['std']}")
    _verify_files(folder, raw)
    return raw


def _inside(folder: Path, rel: str, what: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not rel or rel.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise EdgeCNNError(f"context {folder}: {what} {rel!r} is not a path inside the context "
                           "folder; every file the device run reads must be shipped in it")
    file = folder / rel
    if not file.resolve().is_relative_to(folder.resolve()):
        raise EdgeCNNError(f"context {folder}: {what} {rel!r} leads outside the context folder")
    return file


def _verify_files(folder: Path, context: dict[str, Any]) -> None:
    listed = {str(PurePosixPath(rel)): digest for rel, digest in context["files"].items()}
    for rel, digest in listed.items():
        file = _inside(folder, rel, "file")
        if not file.is_file() or sha256_file(file) != digest:
            raise EdgeCNNError(f"context file {file} is missing or changed since `edgecnn "
                               "container` wrote it; write the context again")
    read = {f"model {k}": v for k, v in context["models"].items()}
    read["evaluation subset"] = context["eval"]["file"]
    for what, rel in read.items():
        _inside(folder, rel, what)
        if str(PurePosixPath(rel)) not in listed:
            raise EdgeCNNError(f"context {folder}: {what} {rel!r} is not listed in files with "
                               "its sha256, so it cannot be verified; write the context again")


def load_subset(folder: Path, context: dict[str, Any]) -> ImageSet:
    """The shipped evaluation images (uint8 NHWC), labels checked against the classes."""
    path = folder / context["eval"]["file"]
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels, classes = data["images"], data["labels"], data["classes"]
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeCNNError(f"evaluation subset {path} cannot be read ({exc}); it needs images, "
                           "labels and classes arrays") from exc
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise EdgeCNNError(f"evaluation subset {path}: images must be uint8 (N, H, W, 3), got "
                           f"{images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise EdgeCNNError(f"evaluation subset {path}: labels must be {len(images)} integers, "
                           f"got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise EdgeCNNError(f"evaluation subset {path}: labels must be 0..{len(classes) - 1} "
                           f"(its {len(classes)} classes), got {labels.min()}..{labels.max()}")
    return ImageSet(images, labels.astype(np.int64), [str(c) for c in classes],
                    context["eval"]["description"])

"""What a dataset holds, as one digest: what training caches and stage fingerprints are keyed by.

A dataset's path says where it is, not what it is: a folder whose images were replaced must not
reuse a training of the old ones. A named dataset is its archive's published sha256 (the archive
is verified against it when extracted); an archive given by path is its sha256; a folder is the
list of its files with their sizes and modification times -- cheap (one ``stat`` per file, about
0.2 s for CIFAR-10's 60,000) and changed by any rewrite of an image.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgecnn.data.archives import is_archive
from edgecnn.data.sources import KNOWN_DATASETS
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file


def dataset_fingerprint(dataset: str) -> str:
    if dataset in KNOWN_DATASETS:
        return f"sha256:{KNOWN_DATASETS[dataset].sha256}"
    if dataset == "cifar10":
        from edgecnn.data.cifar10_python import SHA256

        return f"sha256:{SHA256}"
    path = Path(dataset).expanduser()
    if path.is_file() and is_archive(path):
        return f"sha256:{sha256_file(path)}"
    if path.is_dir():
        return f"files:{_folder_digest(path)}"
    raise EdgeCNNError(f"dataset {dataset!r} is neither a known name nor an existing folder or "
                       "archive")


def _folder_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for rel, size, mtime in sorted(_files(root)):
        digest.update(f"{rel}|{size}|{mtime}\n".encode())
    return digest.hexdigest()


def _files(root: Path):
    """(path relative to root, size, mtime_ns) of every file under root, links followed as the
    loaders follow them."""
    stack, seen = [root], set()
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree would loop forever
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise EdgeCNNError(f"dataset folder {folder} cannot be read: {exc.strerror}") from exc
        for entry in entries:
            if entry.is_dir():
                stack.append(Path(entry.path))
            elif entry.is_file():
                stat = entry.stat()
                yield (os.path.relpath(entry.path, root), stat.st_size, stat.st_mtime_ns)

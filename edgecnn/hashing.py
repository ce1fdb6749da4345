"""File digests: one streaming SHA-256 used for manifests, fingerprints and calibration tables."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20  # large enough to be I/O bound, small enough for multi-GB weights and engines


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()

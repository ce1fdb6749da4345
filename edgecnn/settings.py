"""Where edgecnn finds what is not in the repository.

``EDGECNN_SHARED`` points at the shared data and weights (default: ``../shared`` beside the
checkout); ``EDGECNN_CACHE`` at the cache archives are extracted into (default
``~/.cache/edgecnn``). Code and tests ask these functions, never a hard-coded path.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The shared data/weights folder (``$EDGECNN_SHARED``, else ``../shared`` of the checkout)."""
    env = os.environ.get("EDGECNN_SHARED")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared")


def cache_dir() -> Path:
    env = os.environ.get("EDGECNN_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "edgecnn"
    if path.exists() and not path.is_dir():
        from edgecnn.errors import EdgeCNNError

        raise EdgeCNNError(f"the cache {path} (EDGECNN_CACHE) is a file; point EDGECNN_CACHE at "
                           "a folder")
    return path

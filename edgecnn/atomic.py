"""Files written whole or not at all: a temporary file in the same folder, then a rename.

Torch-free, so the runtime-only install (bench, eval, report, device-run) writes its results the
same crash-safe way as the build. Temporary files are named ``.NAME.XXXX.partial``, so the next
run in a run directory can recognise and delete what a killed process left
(:func:`edgecnn.rundir.remove_temporary_files`). A path that cannot be written (a folder in the
way, a parent that is a file, no permission, a full disk) is the user's to fix: one
:class:`EdgeCNNError` naming it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError

TEMP_SUFFIX = ".partial"


def temporary_path(path: Path) -> Path:
    """A fresh, closed temporary file beside ``path`` (for writers that take a file name)."""
    fd, tmp = _mkstemp(path)
    os.close(fd)
    return Path(tmp)


def _mkstemp(path: Path) -> tuple[int, str]:
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "a folder of that name is in the way", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise unwritable(path, exc) from exc


def unwritable(path: Path, exc: OSError) -> EdgeCNNError:
    return EdgeCNNError(f"cannot write {path}: {exc.strerror or exc}")


def commit(tmp: Path | str, path: Path) -> None:
    """Rename a finished temporary file onto ``path`` (readable by all, as run artifacts are)."""
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes files private
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise unwritable(path, exc) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = _mkstemp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise unwritable(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    commit(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode())

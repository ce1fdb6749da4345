"""Run directories: folders edgecnn made and marked, one build or training at a time in each.

A build deletes stage folders inside its run directory, so it must only ever work in a folder it
made: :func:`check_run_dir` (preflight) accepts an absent or empty folder, or one carrying the
:data:`MARKER` file that :class:`RunDirectory` writes when it claims a folder; anything else -- a
user's folder reached through ``--out``, or ``output: DIR/runs/{name}`` with a name that climbs
out -- is refused before anything is written.

An exclusive ``fcntl`` lock on ``RUN_DIR/.lock`` is held for the whole run; the operating system
releases it when the process dies, so a killed run never leaves a stale lock behind. Only the
lock holder cleans up after a failure, and only what it made itself: two builds started together
on a folder that did not exist cannot delete each other's work.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from edgecnn.atomic import TEMP_SUFFIX
from edgecnn.errors import EdgeCNNError

MARKER = ".edgecnn-run"
LOCK = ".lock"
MANIFEST = "manifest.json"  # a finished stage's record, written last (edgecnn.recipe.pipeline)
RECIPE_FILE = "recipe.json"  # the validated recipe of the run's latest build (for `container`)


def is_run_dir(path: Path) -> bool:
    """A folder edgecnn claimed: its marker, or (run directories of edgecnn before the marker)
    the lock file and the recipe.json every build wrote."""
    return (path / MARKER).is_file() or ((path / LOCK).is_file()
                                         and (path / "recipe.json").is_file())


def check_run_dir(run_dir: Path) -> None:
    """Refuse an output folder that is not edgecnn's to fill; creates nothing."""
    if run_dir.is_symlink() and not run_dir.exists():
        raise EdgeCNNError(f"output directory {run_dir} is a broken symbolic link")
    if not run_dir.exists():
        existing = run_dir.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise EdgeCNNError(f"output directory {run_dir} cannot be created: {existing} is "
                               "not a writable folder")
        return
    if not run_dir.is_dir():
        raise EdgeCNNError(f"output directory {run_dir} is a file, not a folder")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise EdgeCNNError(f"output directory {run_dir} is not writable")
    if is_run_dir(run_dir) or not any(p.name != LOCK for p in run_dir.iterdir()):
        return  # ours, or empty but for a lock (a claim in progress)
    raise EdgeCNNError(
        f"output directory {run_dir} exists, is not empty and is not an edgecnn run directory "
        f"(no {MARKER} file); edgecnn writes only into folders it made: choose a new or empty "
        "folder (--out, or the recipe's output and name)")


def finished_stages(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(f"*/{MANIFEST}"))


def remove_temporary_files(run_dir: Path) -> list[Path]:
    """Delete the half-written files a killed process left (``.NAME.*.partial``)."""
    removed = []
    for path in run_dir.rglob(f".*{TEMP_SUFFIX}"):
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed


class RunLock:
    """The exclusive lock of one run directory (which must exist)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self._fd = os.open(self.run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                               0o644)
        except OSError as exc:
            raise EdgeCNNError(f"output directory {self.run_dir} cannot be written: "
                               f"{exc.strerror}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise EdgeCNNError(
                f"another edgecnn process is running in {self.run_dir}; wait for it to finish "
                "or use another --out") from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class RunDirectory:
    """Claim ``run_dir`` for one run: create it if absent, lock it, mark it, sweep what a killed
    run left half-written; on a failure, remove the folder again if this process created it
    and no stage finished in it (``keep`` names a file whose presence counts as finished work,
    e.g. a training's committed checkpoint)."""

    def __init__(self, run_dir: Path, keep: str | None = None) -> None:
        self.path = run_dir
        self.keep = keep
        self.created = False
        self._lock: RunLock | None = None

    def __enter__(self) -> RunDirectory:
        check_run_dir(self.path)
        try:
            self.path.mkdir(parents=True)
            self.created = True  # by this process: only mkdir's winner gets here
        except FileExistsError:
            self.created = False
        except OSError as exc:
            raise EdgeCNNError(f"output directory {self.path} cannot be created: "
                               f"{exc.strerror}") from exc
        lock = RunLock(self.path)
        lock.__enter__()
        self._lock = lock
        try:
            check_run_dir(self.path)  # filled by someone else between the check and the lock?
            (self.path / MARKER).touch()
            remove_temporary_files(self.path)
        except BaseException:
            self._release()
            raise
        return self

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is not None and self.created and not finished_stages(self.path) and not (
                    self.keep and (self.path / self.keep).exists()):
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._release()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A stage folder's manifest, or None when the stage has not finished."""
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None  # a torn manifest counts as absent: the stage is rebuilt

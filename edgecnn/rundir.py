"""Run directories: one build or training at a time in each.

An exclusive ``fcntl`` lock on ``RUN_DIR/.lock`` is held for the whole run; the operating system
releases it when the process dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from edgecnn.errors import EdgeCNNError


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EdgeCNNError(f"output directory {self.run_dir} cannot be written: "
                               f"{exc.strerror}") from None
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

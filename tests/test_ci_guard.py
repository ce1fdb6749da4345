"""In CI a missing shared data folder fails the test run with one message instead of letting
almost every integration test skip (tests/conftest.py's pytest_sessionstart)."""

from __future__ import annotations

import os
import subprocess
import sys

from edgecnn.settings import REPO_ROOT

# A test file that needs no shared data, so the child run's outcome is the guard's alone.
QUICK = "tests/report/test_recommend.py"


def _pytest(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "EDGECNN_SHARED")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           QUICK], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**environ, **env})


def test_missing_shared_folder_fails_a_ci_run(tmp_path):
    missing = tmp_path / "no-shared"
    result = _pytest(tmp_path, CI="true", EDGECNN_SHARED=str(missing))
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"CI is set but the shared data folder {missing} does not exist" in output
    assert "passed" not in output  # stopped before any test ran


def test_missing_shared_folder_outside_ci_still_runs(tmp_path):
    result = _pytest(tmp_path, EDGECNN_SHARED=str(tmp_path / "no-shared"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout

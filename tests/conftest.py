"""Shared fixtures: the ../shared folder is found through edgecnn.settings (EDGECNN_SHARED)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.settings import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not found (set EDGECNN_SHARED)")
    return path


@pytest.fixture(scope="session")
def torchvision_reference(shared: Path) -> dict:
    path = shared / "reference" / "torchvision_architectures.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())["models"]

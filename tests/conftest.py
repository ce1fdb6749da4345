"""Shared fixtures: the ../shared folder is found through edgecnn.settings (EDGECNN_SHARED).

Without that folder almost every integration test skips, and a green run would then mean
nothing; in CI (``CI=true``, as CI services set it) its absence fails the run at once instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgecnn.settings import shared_dir


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_sessionstart(session: pytest.Session) -> None:
    path = shared_dir()
    if in_ci() and not path.is_dir():
        pytest.exit(f"CI is set but the shared data folder {path} does not exist: the integration "
                    "tests would all skip; set EDGECNN_SHARED or put ../shared beside the "
                    "checkout", returncode=1)


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


@pytest.fixture(scope="session")
def cifar_test_split(shared):
    """The real CIFAR-10 (JPEG copy) test split, decoded once (cached across sessions)."""
    from edgecnn.data import load_split

    return load_split("cifar10-jpeg", "test")


@pytest.fixture(scope="session")
def tiny_cifar_folder(cifar_test_split, tmp_path_factory):
    """A small real ImageFolder tree (train 20 + test 10 images per class) cut from CIFAR-10."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny-cifar")
    labels = cifar_test_split.labels
    for c, name in enumerate(cifar_test_split.classes):
        picks = np.flatnonzero(labels == c)[:30]
        for i, index in enumerate(picks):
            split = "train" if i < 20 else "test"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(cifar_test_split.images[index]).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """An empty cache folder for tests that extract or decode their own files."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGECNN_CACHE", str(cache))
    return cache

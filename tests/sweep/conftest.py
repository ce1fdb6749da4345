"""The sweep tests run `edgecnn` in this process like the hardening tests (``cli``)."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import run_cli


@pytest.fixture
def cli(capsys):
    return lambda *argv: run_cli(capsys, *argv)

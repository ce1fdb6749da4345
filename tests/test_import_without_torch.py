"""A device that only benchmarks never installs torch: the core must import and run without it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import HIDE_TORCH


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE_TORCH + code], capture_output=True,
                          text=True, timeout=120)


def test_import_edgecnn_and_help_without_torch():
    result = run_python(
        "import edgecnn, edgecnn.cli, edgecnn.models, edgecnn.profile.counting;"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None];"
        "sys.argv = ['edgecnn', '--help'];"
        "edgecnn.cli.main()"
    )
    assert result.returncode == 0, result.stderr
    assert "usage: edgecnn" in result.stdout


def test_model_commands_without_torch_name_the_extra():
    result = run_python("import edgecnn.cli; sys.exit(edgecnn.cli.main(['models']))")
    assert result.returncode == 2, result.stderr
    assert "pip install 'edgecnn[build]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_lazy_create_model_without_torch_is_a_clear_error():
    result = run_python(
        "import edgecnn\n"
        "try:\n    edgecnn.create_model('resnet18')\n"
        "except edgecnn.EdgeCNNError as e:\n    print(e)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "building a model needs the Python package 'torch'" in result.stdout

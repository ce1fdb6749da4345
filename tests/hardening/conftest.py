"""What every hardening test checks: exit 2, one message naming the culprit, no traceback, and
nothing outside a run directory changed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgecnn.cli import main
from tests.helpers import TINY_RECIPE


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(capsys, *argv: str) -> Outcome:
    """``edgecnn ARGV`` in this process. An exception other than argparse's exit escapes and
    fails the test with its traceback: exactly what a user must never see."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: --help (0) or a bad argument (2)
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def assert_user_error(outcome: Outcome, *fragments: str) -> None:
    """Exit 2, no traceback, and a message holding every fragment (the field or file)."""
    assert outcome.code == 2, (outcome.code, outcome.out[-2000:], outcome.err[-2000:])
    assert "Traceback" not in outcome.err
    for fragment in fragments:
        assert fragment in outcome.err, (fragment, outcome.err)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: (kind, size, mtime) by relative path."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            stat = path.lstat()
            kind = "dir" if path.is_dir() else "file"
            tree[str(path.relative_to(root))] = (kind, 0 if kind == "dir" else stat.st_size,
                                                 0 if kind == "dir" else stat.st_mtime_ns)
    return tree


@pytest.fixture
def cli(capsys):
    return lambda *argv: run_cli(capsys, *argv)


@pytest.fixture
def tiny_recipe_text(tiny_cifar_folder) -> str:
    return TINY_RECIPE.format(dataset=tiny_cifar_folder)


@pytest.fixture
def tiny_recipe(tmp_path, tiny_recipe_text) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(tiny_recipe_text)
    return path


def build_tiny(folder: Path, dataset: Path, *overrides: str) -> Path:
    """A finished tiny build (tests/helpers.py's recipe) in ``folder``/run; returns the run."""
    from tests.helpers import build

    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / "r.yaml"
    recipe.write_text(TINY_RECIPE.format(dataset=dataset))
    run = folder / "run"
    sets = [arg for override in overrides for arg in ("--set", override)]
    result = build(str(recipe), "--out", str(run), *sets)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def artifact_run(tmp_path_factory, tiny_cifar_folder) -> Path:
    """A tiny build with a file of every CPU backend: .onnx (FP32, INT8), .tflite, OpenVINO .xml,
    ExecuTorch .pte (INT8, with its metadata file)."""
    return build_tiny(tmp_path_factory.mktemp("artifacts"), tiny_cifar_folder,
                      "export.targets=[onnxruntime, tflite, openvino, executorch]",
                      "export.tflite.precisions=[fp32]", "export.executorch.precisions=[int8]",
                      "benchmark.backends=[onnxruntime]",
                      "benchmark.batch_sizes=[1]")


@pytest.fixture(scope="session")
def artifact_files(artifact_run) -> dict[str, Path]:
    files = {"onnx": artifact_run / "export" / "model.fp32.onnx",
             "int8.onnx": artifact_run / "quantize" / "model.int8.onnx",
             "tflite": artifact_run / "tflite" / "model.fp32.tflite",
             "xml": artifact_run / "quantize" / "model.int8.xml",
             "pte": artifact_run / "executorch" / "model.int8.pte"}
    for path in files.values():
        assert path.is_file(), path
    return files

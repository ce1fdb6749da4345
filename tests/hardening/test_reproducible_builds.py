"""Identical inputs give identical files: two builds of one recipe in two processes, each
training from scratch in its own cache, write byte-identical artifacts except those that record
times. The sha256-keyed caches and the resume logic depend on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgecnn.hashing import sha256_file
from tests.helpers import TINY_RECIPE

# Files that record when or how fast something ran, and why they must differ between runs:
RECORD_TIMES = {
    "manifest.json",        # every stage's: its duration ("seconds") and "finished" time
    "metrics.jsonl",        # per-epoch training seconds and images per second
    "result.json",          # the training's train_seconds and the curve with epoch times
    "last.json",            # the checkpoint record carries the same curve
    "benchmark/results.json",  # latencies
    "report.json", "report.md", "top1_vs_latency.png",  # the latencies again, as rows and plot
}


def _build(tmp: Path, name: str, dataset: Path) -> Path:
    folder = tmp / name
    folder.mkdir()
    recipe = folder / "r.yaml"
    recipe.write_text(TINY_RECIPE.format(dataset=dataset))
    run = folder / "run"
    env = {**os.environ, "EDGECNN_CACHE": str(folder / "cache")}  # each trains for itself
    result = subprocess.run([sys.executable, "-m", "edgecnn.cli", "build", str(recipe), "--out",
                             str(run)], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reusing the cached training" not in result.stdout
    return run


def _digests(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): sha256_file(p) for p in sorted(run.rglob("*"))
            if p.is_file() and p.name not in (".lock", ".edgecnn-run")}


def _records_times(rel: str) -> bool:
    return rel in RECORD_TIMES or Path(rel).name in RECORD_TIMES


def test_two_builds_write_identical_artifacts(tmp_path, tiny_cifar_folder):
    first = _digests(_build(tmp_path, "a", tiny_cifar_folder))
    second = _digests(_build(tmp_path, "b", tiny_cifar_folder))
    assert first.keys() == second.keys()
    compared = {rel for rel in first if not _records_times(rel)}
    assert {"train/best.safetensors", "export/model.fp32.onnx", "quantize/model.int8.onnx",
            "quantize/tiny.calibration.json", "evaluate/results.json"} <= compared
    differing = sorted(rel for rel in compared if first[rel] != second[rel])
    assert differing == []

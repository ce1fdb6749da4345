"""Latency statistics: the arithmetic, and the stability of a real measurement."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.bench.latency import measure_latency, summarize


def test_summary_arithmetic():
    stats = summarize(4, [1_000_000 * v for v in (1, 2, 3, 4, 100)])  # ms: 1 2 3 4 100
    assert stats.p50_ms == 3.0 and stats.min_ms == 1.0 and stats.iterations == 5
    assert stats.mean_ms == pytest.approx(22.0)
    assert stats.p90_ms == pytest.approx(61.6)  # linear interpolation between 4 and 100
    assert stats.throughput == pytest.approx(4 / 0.003)
    assert stats.seconds == pytest.approx(0.110)


class _SleepRunner:
    backend = "test"

    def input_spec(self):
        from edgecnn.backends.base import InputSpec

        return InputSpec("x", (None, 3, 8, 8))

    def run(self, batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)[:, :10]


def test_minimum_count_and_time_are_both_met():
    stats = measure_latency(_SleepRunner(), 2, warmup=1, min_iterations=30, min_seconds=0.05)
    assert stats.iterations >= 30 and stats.seconds > 0


def test_same_artifact_measured_twice_in_one_process_agrees(tmp_path):
    """Acceptance: the p50 of one artifact measured twice in one process differs by < 10%.

    Measured the way the build's benchmark stage measures: the two measurements take turns in
    half-second rounds. Back to back, one 1-3 s measurement each, this failed twice in CI on the
    shared 2-core host (p50 1.06 vs 1.26 ms and 1.27 vs 1.07 ms): the host has slow spells lasting
    seconds, which turns apply to both measurements alike.
    """
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.bench.latency import time_runs
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    path = export_onnx(create_model("resnet20"), tmp_path / "r20.onnx", 32).path
    runner = OnnxRuntimeRunner(path, threads=1)
    first: list[int] = []
    second: list[int] = []
    for _ in range(6):
        first += time_runs(runner, 1, warmup=10, min_iterations=50, min_seconds=0.5)
        second += time_runs(runner, 1, warmup=10, min_iterations=50, min_seconds=0.5)
    a, b = summarize(1, first), summarize(1, second)
    assert abs(a.p50_ms - b.p50_ms) / a.p50_ms < 0.10, (a, b)

"""Latency statistics: the arithmetic, and the measuring loop's stopping rules (minimum count,
minimum time, maximum time) on runners whose run time is known. No test asserts how fast
anything ran: on a shared host that is not a property of the code."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgecnn.backends.base import Runner
from edgecnn.bench.latency import measure_latency, summarize
from edgecnn.errors import EdgeCNNError


def test_summary_arithmetic():
    stats = summarize(4, [1_000_000 * v for v in (1, 2, 3, 4, 100)])  # ms: 1 2 3 4 100
    assert stats.p50_ms == 3.0 and stats.min_ms == 1.0 and stats.iterations == 5
    assert stats.mean_ms == pytest.approx(22.0)
    assert stats.p90_ms == pytest.approx(61.6)  # linear interpolation between 4 and 100
    assert stats.throughput == pytest.approx(4 / 0.003)
    assert stats.seconds == pytest.approx(0.110)


class _EchoRunner(Runner):
    """Returns its input at once: the loop's bookkeeping, with nothing to wait for."""

    backend = "test"

    def input_spec(self):
        from edgecnn.backends.base import InputSpec

        return InputSpec("x", (None, 3, 8, 8))

    def run(self, batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)[:, :10]


class _SleepingRunner(_EchoRunner):
    """Takes at least ``seconds`` per run (time.sleep never returns early), counting its runs."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.calls = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(self.seconds)
        return super().run(batch)


def test_minimum_count_is_met():
    stats = measure_latency(_EchoRunner(), 2, warmup=1, min_iterations=30, min_seconds=0.0)
    assert stats.iterations == 30 and stats.seconds > 0


def test_minimum_time_is_met_when_the_count_is_reached_first():
    """One iteration is asked for, but 0.2 s of runs: the loop must keep going. Each run sleeps
    20 ms, so a loop that stopped at the count would take one run and about 0.02 s. Only lower
    bounds are asserted (sleep guarantees them), never how fast anything ran."""
    runner = _SleepingRunner(0.02)
    started = time.perf_counter()
    stats = measure_latency(runner, 1, warmup=2, min_iterations=1, min_seconds=0.2)
    assert time.perf_counter() - started >= 0.2
    assert stats.iterations >= 2 and runner.calls == stats.iterations + 2  # + the warm-up
    # the samples time the runs themselves: together they cover nearly all of the 0.2 s (what
    # is outside them is the loop's bookkeeping between two runs, microseconds each)
    assert stats.seconds >= 0.15 and stats.min_ms >= 20.0


def test_maximum_time_cuts_a_count_that_would_take_too_long():
    """1,000 runs of 20 ms would take 20 s; max_seconds=0.1 ends the loop long before."""
    runner = _SleepingRunner(0.02)
    stats = measure_latency(runner, 1, warmup=0, min_iterations=1000, min_seconds=0.0,
                            max_seconds=0.1)
    assert 1 <= stats.iterations < 1000 and runner.calls == stats.iterations


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"warmup": -1}, "warmup >= 0"), ({"min_iterations": 0}, "iterations >= 1")])
def test_bad_loop_settings_are_refused(kwargs, message):
    with pytest.raises(EdgeCNNError, match=message):
        measure_latency(_EchoRunner(), 1, **kwargs)
    with pytest.raises(EdgeCNNError, match="batch size >= 1"):
        measure_latency(_EchoRunner(), 0)

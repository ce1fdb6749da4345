"""Latency of one runner at one batch size: warm-up, then timed runs until both a minimum count
and a minimum time are reached; percentiles, mean, std and throughput.

Timing is wall-clock around ``runner.run`` (input already in memory, output returned as numpy):
what an application calling the runtime sees.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from edgecnn.backends.base import Runner
from edgecnn.errors import EdgeCNNError


@dataclass
class LatencyStats:
    batch_size: int
    iterations: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    throughput: float  # images per second at the median latency

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(batch_size: int, samples_ns: list[int]) -> LatencyStats:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        batch_size=batch_size, iterations=len(ms), seconds=float(ms.sum() / 1e3),
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()),
        std_ms=float(ms.std()), min_ms=float(ms.min()), throughput=float(batch_size * 1e3 / p50),
    )


def example_input(runner: Runner, batch_size: int, seed: int = 0) -> np.ndarray:
    spec = runner.input_spec()
    shape = tuple(batch_size if i == 0 else d for i, d in enumerate(spec.shape))
    if any(d is None for d in shape):
        raise EdgeCNNError(f"input {spec.name} has unknown dimensions {spec.shape}; give the "
                           "resolution")
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def measure_latency(
    runner: Runner, batch_size: int, *, warmup: int = 10, min_iterations: int = 50,
    min_seconds: float = 2.0, max_seconds: float = 120.0,
) -> LatencyStats:
    return summarize(batch_size, time_runs(runner, batch_size, warmup=warmup,
                                           min_iterations=min_iterations,
                                           min_seconds=min_seconds, max_seconds=max_seconds))


def time_runs(
    runner: Runner, batch_size: int, *, warmup: int = 10, min_iterations: int = 50,
    min_seconds: float = 2.0, max_seconds: float = 120.0,
) -> list[int]:
    """Nanoseconds of each timed run, after ``warmup`` untimed ones."""
    if batch_size < 1 or warmup < 0 or min_iterations < 1:
        raise EdgeCNNError("benchmark needs batch size >= 1, warmup >= 0 and iterations >= 1")
    x = example_input(runner, batch_size)
    for _ in range(warmup):
        runner.run(x)
    samples: list[int] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter_ns()
        runner.run(x)
        samples.append(time.perf_counter_ns() - t0)
        elapsed = time.perf_counter() - start
        if (len(samples) >= min_iterations and elapsed >= min_seconds) or elapsed >= max_seconds:
            break
    return samples

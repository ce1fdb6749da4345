"""Several artifacts measured side by side: they take turns in each round and batch size, so a
noisy moment on a shared machine hurts all of them alike (the way every comparison in edgecnn's
reports is measured)."""

from __future__ import annotations

from typing import Any

from edgecnn.bench.gpu_timing import summarize_gpu_timings
from edgecnn.bench.latency import summarize, time_runs


def measure_in_rounds(runners: dict[str, Any], batch_sizes: list[int], *, rounds: int,
                      warmup: int, iterations: int, seconds: float) -> dict[str, dict[str, dict]]:
    """{runner key: {batch: LatencyStats dict}}; GPU runners also get trtexec-style ``gpu``
    timings (H2D / compute / D2H from CUDA events) per batch."""
    samples: dict[str, dict[int, list[int]]] = {k: {b: [] for b in batch_sizes} for k in runners}
    for _ in range(rounds):
        for batch in batch_sizes:
            for key, runner in runners.items():
                samples[key][batch] += time_runs(runner, batch, warmup=warmup,
                                                 min_iterations=iterations, min_seconds=seconds)
    results = {key: {str(b): summarize(b, runs).to_dict() for b, runs in per_batch.items()}
               for key, per_batch in samples.items()}
    for key, runner in runners.items():
        for batch in batch_sizes:
            intervals = runner.time_batch(batch, iterations=iterations, warmup=warmup)
            if intervals is None:  # a CPU runtime: the wall-clock rounds are its timing
                break
            gpu, _ = summarize_gpu_timings(**vars(intervals))
            results[key][str(batch)]["gpu"] = gpu.to_dict()
    return results

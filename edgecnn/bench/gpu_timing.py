"""GPU timings the way trtexec reports them, from CUDA-event intervals.

Each timed inference records four CUDA events on its stream: before the host-to-device copy,
after it, after the compute, after the device-to-host copy. The intervals between them are the
H2D latency, the GPU compute time and the D2H latency; their sum is the end-to-end latency of one
inference. Throughput, as trtexec's, is inferences completed per second of wall-clock time over
the whole timed run (back-to-back enqueues overlap host work with the GPU, so it is not simply
1 / mean latency). Plain arithmetic, kept apart from CUDA so it is tested everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgecnn.bench.latency import LatencyStats
from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class Distribution:
    min: float
    max: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def of(cls, values_ms: np.ndarray) -> Distribution:
        p50, p90, p95, p99 = np.percentile(values_ms, [50, 90, 95, 99])
        return cls(float(values_ms.min()), float(values_ms.max()), float(values_ms.mean()),
                   float(p50), float(p90), float(p95), float(p99))


@dataclass(frozen=True)
class GpuTimings:
    batch_size: int
    iterations: int
    wall_seconds: float
    cuda_graph: bool
    h2d_ms: Distribution
    compute_ms: Distribution
    d2h_ms: Distribution
    latency_ms: Distribution       # H2D + compute + D2H of each inference
    throughput_qps: float          # inferences per wall-clock second
    images_per_second: float

    def to_dict(self) -> dict:
        return asdict(self)

    def latency_stats(self, latency: np.ndarray) -> LatencyStats:
        """The end-to-end latencies in the shape every other backend reports."""
        return LatencyStats(
            batch_size=self.batch_size, iterations=self.iterations,
            seconds=self.wall_seconds, p50_ms=self.latency_ms.median,
            p90_ms=self.latency_ms.p90, p99_ms=self.latency_ms.p99,
            mean_ms=self.latency_ms.mean, std_ms=float(latency.std()),
            min_ms=self.latency_ms.min, throughput=self.images_per_second)


def summarize_gpu_timings(batch_size: int, h2d_ms, compute_ms, d2h_ms, wall_seconds: float,
                          cuda_graph: bool = False) -> tuple[GpuTimings, LatencyStats]:
    """Distributions of each part, end-to-end latency and throughput of one timed run."""
    parts = [np.asarray(p, dtype=np.float64) for p in (h2d_ms, compute_ms, d2h_ms)]
    n = len(parts[1])
    if n == 0 or any(len(p) != n for p in parts):
        raise EdgeCNNError(f"GPU timings need the same number (> 0) of H2D, compute and D2H "
                           f"intervals, got {[len(p) for p in parts]}")
    if wall_seconds <= 0 or batch_size < 1 or any((p < 0).any() for p in parts):
        raise EdgeCNNError("GPU timings need batch >= 1, wall time > 0 and intervals >= 0")
    latency = parts[0] + parts[1] + parts[2]
    qps = n / wall_seconds
    timings = GpuTimings(
        batch_size=batch_size, iterations=n, wall_seconds=wall_seconds, cuda_graph=cuda_graph,
        h2d_ms=Distribution.of(parts[0]), compute_ms=Distribution.of(parts[1]),
        d2h_ms=Distribution.of(parts[2]), latency_ms=Distribution.of(latency),
        throughput_qps=qps, images_per_second=qps * batch_size)
    return timings, timings.latency_stats(latency)

"""trtexec-style GPU timing arithmetic: parts, end-to-end latency, throughput."""

from __future__ import annotations

import pytest

from edgecnn.bench.gpu_timing import summarize_gpu_timings
from edgecnn.errors import EdgeCNNError


def test_latency_is_the_sum_of_the_parts_and_throughput_uses_wall_time():
    h2d = [0.1, 0.1, 0.2, 0.1]
    compute = [1.0, 2.0, 1.0, 4.0]
    d2h = [0.05, 0.05, 0.05, 0.05]
    timings, stats = summarize_gpu_timings(8, h2d, compute, d2h, wall_seconds=0.01)
    assert timings.iterations == 4
    assert timings.compute_ms.median == pytest.approx(1.5)
    assert timings.compute_ms.max == 4.0 and timings.h2d_ms.mean == pytest.approx(0.125)
    # per inference: 1.15, 2.15, 1.25, 4.15
    assert timings.latency_ms.min == pytest.approx(1.15)
    assert timings.latency_ms.median == pytest.approx(1.7)
    assert timings.latency_ms.mean == pytest.approx(8.7 / 4)
    assert timings.throughput_qps == pytest.approx(400.0)   # 4 inferences in 10 ms
    assert timings.images_per_second == pytest.approx(3200.0)
    # the same figures in the shape every backend reports
    assert stats.p50_ms == pytest.approx(1.7) and stats.throughput == pytest.approx(3200.0)
    assert stats.batch_size == 8 and stats.iterations == 4


def test_inconsistent_timings_are_refused():
    with pytest.raises(EdgeCNNError, match="same number"):
        summarize_gpu_timings(1, [0.1], [1.0, 1.0], [0.1], wall_seconds=1.0)
    with pytest.raises(EdgeCNNError, match="wall time > 0"):
        summarize_gpu_timings(1, [0.1], [1.0], [0.1], wall_seconds=0.0)
    with pytest.raises(EdgeCNNError, match="same number"):
        summarize_gpu_timings(1, [], [], [], wall_seconds=1.0)

"""Latency and throughput measurement, and the context a measurement was taken in (with every
runtime's versions: :func:`edgecnn.targets.context.run_context`)."""

from edgecnn.bench.latency import LatencyStats, measure_latency

__all__ = ["LatencyStats", "measure_latency"]

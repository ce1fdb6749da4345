"""Latency and throughput measurement, and the context a measurement was taken in."""

from edgecnn.bench.context import run_context
from edgecnn.bench.latency import LatencyStats, measure_latency

__all__ = ["LatencyStats", "measure_latency", "run_context"]

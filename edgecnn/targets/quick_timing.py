"""Artifact files of one target timed side by side: a quick comparison inside a build (what the
accuracy-aware fallback costs), not the build's benchmark (:mod:`edgecnn.bench.rounds`)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from edgecnn.bench.rounds import measure_in_rounds
from edgecnn.targets.registry import open_runner


def p50_side_by_side(paths: dict[str, str | Path], backend: str, *, threads: int | None = None,
                     rounds: int = 3, seconds: float = 0.5) -> dict[str, float]:
    """p50 ms at batch 1 of each artifact file, timed in alternating rounds in this process."""
    with ExitStack() as held:
        runners = {key: held.enter_context(open_runner(backend, path, threads))
                   for key, path in paths.items()}
        latency = measure_in_rounds(runners, [1], rounds=rounds, warmup=10, iterations=50,
                                    seconds=seconds)
    return {key: stats["1"]["p50_ms"] for key, stats in latency.items()}

"""The sweep's last Ray task: every CPU artifact of its finished runs timed again in one process,
in alternating rounds (:func:`edgecnn.bench.rounds.measure_in_rounds`), on the node that
benchmarked them, holding all of its CPUs.

Each run's own benchmark compares its artifacts side by side (INT8 against FP32), but two runs
are benchmarked minutes apart, and on a shared machine that alone moved one model's p50 by up to
23% in the compression sweep (the 2:4 model, the same graph as the dense one, timed 0.353 against
0.286 ms on LiteRT). The sweep's latency frontiers therefore rank architectures by this
comparison, in which every artifact saw the same machine state.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import ExitStack
from typing import Any

from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.sweep.build_task import ray_node_id
from edgecnn.targets.registry import cpu_runtime_names

COMPARE = "compare"
# Runtimes whose artifacts are files a runner opens on this node (not TensorRT engines, which
# belong to their GPU, nor the torch rows, which are models in memory).
COMPARED_BACKENDS = cpu_runtime_names()


def compared_artifacts(statuses, node_id: str) -> dict[str, dict[str, Any]]:
    """Row id -> {backend, path, threads} of every CPU artifact of the finished runs that were
    benchmarked on ``node_id``."""
    from edgecnn.report.rows import read_rows
    from edgecnn.sweep.frontier import row_id

    found: dict[str, dict[str, Any]] = {}
    for status in statuses:
        report = status.point.run_dir / "report.json"
        if status.state != "done" or status.device_node.id != node_id or not report.is_file():
            continue
        for row in read_rows(report):
            if row["backend"] in COMPARED_BACKENDS and row.get("artifact"):
                found[row_id(row)] = {
                    "backend": row["backend"],
                    "path": str(status.point.run_dir / row["artifact"]),
                    "threads": status.point.recipe.benchmark.threads}
    # one runtime after the other within each round: the frontiers compare artifacts of one
    # runtime, and switching runtimes between every artifact adds their thread pools' wake-ups
    return dict(sorted(found.items(), key=lambda item: (item[1]["backend"], item[0])))


def compare_part(artifacts: dict[str, dict[str, Any]], settings: dict[str, Any],
                 cwd: str) -> dict[str, Any]:
    """Time ``artifacts`` side by side; never raises (a failure is the record's ``error``)."""
    started = time.time()
    record: dict[str, Any] = {"part": COMPARE, "run": None, "pid": os.getpid(),
                              "host": socket.gethostname(), "node_id": ray_node_id(),
                              "start": started, "ok": False, "error": None, "results": {}}
    try:
        if os.path.isdir(cwd):
            os.chdir(cwd)
        from edgecnn.bench.rounds import measure_in_rounds
        from edgecnn.targets.context import run_context
        from edgecnn.targets.registry import open_runner

        with ExitStack() as held:
            runners = {key: held.enter_context(open_runner(a["backend"], a["path"],
                                                           threads=a["threads"]))
                       for key, a in artifacts.items()}
            record["results"] = measure_in_rounds(runners, settings["batch_sizes"],
                                                  rounds=settings["rounds"],
                                                  warmup=settings["warmup"],
                                                  iterations=settings["iterations"],
                                                  seconds=settings["seconds"])
        threads = sorted({a["threads"] or 0 for a in artifacts.values()})
        record["context"] = run_context(threads[0] or None if len(threads) == 1 else None)
        record["ok"] = True
    except EdgeCNNError as exc:
        record["error"] = str(exc)
    except Exception as exc:  # the runs' own figures stand; say why there is no comparison
        record["error"] = f"{type(exc).__name__}: {first_line(exc)}"
    record["end"] = time.time()
    return record

"""What a Ray worker runs for a sweep: part of one point's build, into its run directory.

A point is built in two parts (:func:`split_stages`): the *build part* (training, pruning,
export, quantization, evaluation), which takes the CPUs the sweep gives it, and the *device part*
(benchmark and report, plus the TensorRT engines and their evaluation, which need the device's
GPU), which the sweep runs alone on its node. Both are ``edgecnn build`` itself: the same stages,
manifests and training cache, so a part whose stages are finished is skipped stage by stage, and
the device part finds the build part's stages cached.

The record returned says where and when the part ran (node, host, process, start and end), so
the sweep can show that no benchmark shared its node with other work.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError, first_line

BUILD, DEVICE = "build", "device"
# Stages that must run where the benchmark runs: engines are built for the GPU that runs them.
DEVICE_STAGES_TENSORRT = ("compile", "evaluate")
DEVICE_STAGES = ("benchmark", "report")


def split_stages(recipe) -> dict[str, list[str]]:
    """The names of the stages of each part of the point's build."""
    from edgecnn.recipe.stages import STAGES

    device = set(DEVICE_STAGES)
    if "tensorrt" in recipe.export.targets:
        device |= set(DEVICE_STAGES_TENSORRT)
    names = [s.name for s in STAGES]
    return {BUILD: [n for n in names if n not in device], DEVICE: names}


def run_part(recipe_json: dict[str, Any], run_dir: str, part: str, stages: list[str],
             threads: int, cwd: str, log_file: str) -> dict[str, Any]:
    """Run ``stages`` of the point's build (earlier finished stages are read from their
    manifests); never raises: a failure is the record's ``error``, its traceback in
    ``log_file``, which also receives what the stages print."""
    started = time.time()
    record: dict[str, Any] = {"part": part, "run": recipe_json.get("name"), "pid": os.getpid(),
                              "host": socket.gethostname(), "node_id": ray_node_id(),
                              "start": started, "ok": False, "error": None, "ran": []}
    log_path = Path(log_file)
    try:
        if Path(cwd).is_dir():  # relative names in recipes are the driver's (one file system)
            os.chdir(cwd)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            record["ran"] = _build(recipe_json, Path(run_dir), stages, threads, log)
        record["ok"] = True
    except EdgeCNNError as exc:
        record["error"] = str(exc)
    except Exception as exc:  # a point's failure must not end the sweep: report it, go on
        record["error"] = (f"{type(exc).__name__}: {first_line(exc)} (traceback in "
                           f"{log_path})")
        try:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
        except OSError:
            pass
    record["end"] = time.time()
    return record


def _build(recipe_json: dict[str, Any], run_dir: Path, stages: list[str], threads: int,
           log) -> list[str]:
    import torch
    from rich.console import Console

    from edgecnn.recipe.pipeline import BuildContext, run_stages
    from edgecnn.recipe.schema import Recipe
    from edgecnn.recipe.stages import STAGES
    from edgecnn.rundir import RunDirectory

    torch.set_num_threads(threads)
    recipe = Recipe.model_validate(recipe_json)
    console = Console(file=log, width=120, force_terminal=False)
    console.print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} stages {', '.join(stages)} "
                  f"on {socket.gethostname()} ({threads} threads)")
    ctx = BuildContext(recipe, run_dir, console)
    before = _finished(run_dir)
    with RunDirectory(run_dir, keep="train/last.json"):
        run_stages([s for s in STAGES if s.name in stages], ctx)
    after = _finished(run_dir)
    return [s.name for s in STAGES if s.name in after and before.get(s.name) != after[s.name]]


def _finished(run_dir: Path) -> dict[str, float]:
    """Stage name -> modification time of its manifest: which stages a part (re)built."""
    from edgecnn.rundir import finished_stages

    return {p.parent.name: p.stat().st_mtime for p in finished_stages(run_dir)}


def ray_node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # not inside Ray (a direct call, as in a unit test)
        return None

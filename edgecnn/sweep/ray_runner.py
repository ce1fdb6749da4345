"""Running a sweep's points as Ray tasks, with the resources a timing-aware user needs.

Each point is two Ray tasks (:mod:`edgecnn.sweep.build_task`):

- the build part asks Ray for ``build_cpus`` CPUs and trains with that many threads, so
  trainings of several points share a node only as far as its CPUs go;
- the device part (benchmark, report; the TensorRT engines too) asks for **every CPU of its
  node** and is pinned to that node (``NodeAffinitySchedulingStrategy``, not soft), so Ray runs
  nothing else there while it times. Its node is the one carrying the Ray resource named by
  ``benchmark.device`` (a Jetson joined with ``ray start --resources '{"jetson-orin": 1}'``), or
  else the node the sweep was started on, so that every unlabelled latency of a sweep comes from
  one machine.

While a device part waits for its node, no new build part is submitted: Ray does not reserve
CPUs for a large task, and a stream of one-CPU trainings would otherwise keep a benchmark
waiting until the end of the sweep.

A point that fails is reported with its error and the others go on. Run directories keep their
build manifests and the training cache, so a sweep killed and started again rebuilds nothing
that finished. Run directories must be on a file system every node sees (one machine, or NFS).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from edgecnn._optional import require
from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.sweep.build_task import BUILD, DEVICE, run_part, split_stages
from edgecnn.sweep.side_by_side import COMPARE, compare_part, compared_artifacts
from edgecnn.sweep.spec import Sweep, SweepPoint

MARKER = ".edgecnn-sweep"
TASKS_FILE = "tasks.jsonl"  # one line per finished Ray task: part, run, node, start, end
LOGS_FOLDER = "logs"
LOCAL_OBJECT_STORE = 256 * 2**20  # bytes


@dataclass(frozen=True)
class Node:
    id: str
    host: str
    cpus: int
    resources: dict[str, float]


@dataclass
class RunStatus:
    """Where one point of the sweep is: queued, building, waiting (for its benchmark node),
    benchmarking, done or failed."""

    point: SweepPoint
    device_node: Node
    state: str = "queued"
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        p = self.point
        return {"name": p.name, "aliases": list(p.aliases), "overrides": p.overrides,
                "published": p.published.model_dump() if p.published else None,
                "run_dir": str(p.run_dir), "state": self.state, "error": self.error,
                "benchmark_node": {"id": self.device_node.id, "host": self.device_node.host,
                                   "cpus": self.device_node.cpus,
                                   "resources": sorted(r for r in self.device_node.resources
                                                       if _custom(r)),
                                   "device": p.recipe.benchmark.device},
                "tasks": self.records}


def claim_sweep_folder(folder: Path) -> None:
    """The sweep writes only into a folder it made (marked), an empty one or a new one."""
    if folder.exists() and not folder.is_dir():
        raise EdgeCNNError(f"sweep folder {folder} is a file; choose another output")
    if folder.is_dir() and not (folder / MARKER).is_file() and any(folder.iterdir()):
        raise EdgeCNNError(f"sweep folder {folder} exists, is not empty and is not an edgecnn "
                           f"sweep folder (no {MARKER} file); choose a new or empty folder "
                           "(the sweep file's output or name)")
    try:
        (folder / LOGS_FOLDER).mkdir(parents=True, exist_ok=True)
        (folder / MARKER).touch()
    except OSError as exc:
        raise EdgeCNNError(f"sweep folder {folder} cannot be created: {exc.strerror}") from exc


def start_ray(address: str | None):
    """``ray`` connected to the cluster at ``address``, or to a new local instance sized to
    this machine. The edgecnn settings of this shell (EDGECNN_*) travel with the tasks."""
    ray = require("ray", "edgecnn sweep")
    env = {k: v for k, v in os.environ.items() if k.startswith("EDGECNN_")}
    options: dict[str, Any] = {"log_to_driver": False, "runtime_env": {"env_vars": env}}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            # the tasks pass a recipe and a record each: a small object store, not Ray's
            # default 30% of the memory, which a 2-core build machine needs for training
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        what = (f"--address {address}: cannot reach that Ray cluster" if address
                else "cannot start a local Ray instance")
        raise EdgeCNNError(f"{what}: {first_line(exc)}") from exc
    return ray


def cluster_nodes(ray) -> list[Node]:
    return [Node(n["NodeID"], n.get("NodeManagerHostname") or n.get("NodeManagerAddress", "?"),
                 int(n["Resources"].get("CPU", 0)), dict(n["Resources"]))
            for n in ray.nodes() if n.get("Alive")]


def place_benchmarks(sweep: Sweep, nodes: list[Node], driver_node: str) -> dict[str, Node]:
    """Point name -> the node its device part runs on; EdgeCNNError before anything runs when
    a device no node carries is named, or a part could never be scheduled."""
    by_id = {n.id: n for n in nodes}
    home = by_id.get(driver_node) or next(  # a Ray client's driver is outside the cluster
        (n for n in nodes if "node:__internal_head__" in n.resources), nodes[0])
    if not any(n.cpus >= sweep.build_cpus for n in nodes):
        raise EdgeCNNError(f"build_cpus is {sweep.build_cpus}, but no node of the Ray cluster "
                           f"has that many CPUs (nodes: {_describe(nodes)})")
    placed, turn = {}, 0
    for point in sweep.points:
        device = point.recipe.benchmark.device
        if device is None:
            placed[point.name] = home
            continue
        carriers = [n for n in nodes if n.resources.get(device, 0) > 0]
        if not carriers:
            raise EdgeCNNError(f"point {point.name}: benchmark.device {device!r} is not a "
                               f"resource of any node of the Ray cluster (nodes: "
                               f"{_describe(nodes)}); join the device with `ray start "
                               f"--address HEAD:6379 --resources '{{\"{device}\": 1}}'`")
        placed[point.name] = carriers[turn % len(carriers)]
        turn += 1
    for name, node in placed.items():
        if node.cpus < 1:
            raise EdgeCNNError(f"point {name}: its benchmark node {node.host} has no CPU for "
                               "Ray; start it with --num-cpus of at least 1")
    return placed


def _describe(nodes: list[Node]) -> str:
    return "; ".join(f"{n.host} {n.cpus} CPUs"
                     + "".join(f", {k}" for k in sorted(n.resources) if _custom(k))
                     for n in nodes)


def _custom(resource: str) -> bool:
    return resource not in ("CPU", "GPU", "memory", "object_store_memory") and not (
        resource.startswith(("node:", "accelerator_type:")))


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep: its tasks were cancelled; ``statuses`` say how far each got."""

    def __init__(self, statuses: list[RunStatus]) -> None:
        super().__init__("sweep interrupted")
        self.statuses = statuses


@dataclass(frozen=True)
class SweepResult:
    statuses: list[RunStatus]  # in the sweep's order
    # the side-by-side timing (:func:`edgecnn.sweep.side_by_side.compare_part`'s record), or
    # None when it is disabled or there was nothing to time
    comparison: dict[str, Any] | None


def run_sweep(sweep: Sweep, ray, console: Console,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> SweepResult:
    """Every point built (or found finished), then their CPU artifacts timed side by side.
    Ray is started by the caller (:func:`start_ray`) and shut down by it. Nothing is written
    before every point has a node to benchmark on."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = cluster_nodes(ray)
    placed = place_benchmarks(sweep, nodes, ray.get_runtime_context().get_node_id())
    claim_sweep_folder(sweep.folder)
    statuses = {p.name: RunStatus(p, placed[p.name]) for p in sweep.points}
    remote = ray.remote(run_part)
    cwd = str(Path.cwd())
    queue = list(sweep.points)
    in_flight: dict[Any, tuple[RunStatus | None, str]] = {}  # the comparison has no run
    # Enough build parts in flight to fill the cluster, and no more: the rest wait here,
    # where a waiting benchmark can go before them.
    max_builds = max(1, sum(n.cpus for n in nodes) // sweep.build_cpus)

    def submit(status: RunStatus, part: str) -> None:
        point = status.point
        stages = split_stages(point.recipe)[part]
        log = str((sweep.folder / LOGS_FOLDER / f"{point.name}.log").absolute())
        args = (point.recipe.model_dump(mode="json"), str(point.run_dir), part, stages)
        if part == BUILD:
            ref = remote.options(num_cpus=sweep.build_cpus, max_retries=0,
                                 name=f"build {point.name}").remote(
                *args, sweep.build_cpus, cwd, log)
            status.state = "building"
        else:
            node = status.device_node
            ref = remote.options(
                num_cpus=node.cpus, max_retries=0, name=f"benchmark {point.name}",
                scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False)).remote(
                *args, node.cpus, cwd, log)
            status.state = "waiting"
        status.started = status.started or time.time()
        in_flight[ref] = (status, part)

    ordered = [statuses[p.name] for p in sweep.points]
    comparison = None
    try:
        with Live(_table(statuses), console=console, refresh_per_second=2) as live:
            _drive(ray, statuses, queue, in_flight, submit, max_builds, live, on_record)
            home = placed_home(placed, sweep)
            artifacts = (compared_artifacts(ordered, home.id)
                         if sweep.compare.enabled and home else {})
            if artifacts:
                live.console.print(f"timing {len(artifacts)} artifacts side by side on "
                                   f"{home.host}")
                ref = ray.remote(compare_part).options(
                    num_cpus=home.cpus, max_retries=0, name="side by side",
                    scheduling_strategy=NodeAffinitySchedulingStrategy(home.id, soft=False),
                ).remote(artifacts, sweep.compare.model_dump(), cwd)
                in_flight[ref] = (None, COMPARE)
                comparison = _result(ray, ref, None, COMPARE)
                del in_flight[ref]
                if on_record:
                    on_record({k: v for k, v in comparison.items() if k != "results"})
                if not comparison["ok"]:
                    live.console.print(f"[red]side-by-side timing failed[/red]: "
                                       f"{escape(comparison['error'])}")
    except KeyboardInterrupt:
        for ref, (status, _) in in_flight.items():
            ray.cancel(ref, force=True)
            if status is not None:
                status.state = "interrupted"
        raise SweepInterrupted(ordered) from None
    return SweepResult(ordered, comparison)


def placed_home(placed: dict[str, Node], sweep: Sweep) -> Node | None:
    """The node that benchmarks the runs naming no device (None when every run names one)."""
    return next((placed[p.name] for p in sweep.points if p.recipe.benchmark.device is None),
                None)


def _drive(ray, statuses, queue, in_flight, submit, max_builds, live, on_record) -> None:
    """Submit parts as resources allow and follow them until every point is done or failed."""
    while queue or in_flight:
        devices_waiting = any(part == DEVICE for _, part in in_flight.values())
        builds = sum(part == BUILD for _, part in in_flight.values())
        while queue and not devices_waiting and builds < max_builds:
            submit(statuses[queue.pop(0).name], BUILD)
            builds += 1
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        for ref in ready:
            status, part = in_flight.pop(ref)
            record = _result(ray, ref, status, part)
            status.records.append(record)
            if on_record:
                on_record(record)
            if not record["ok"]:
                status.state, status.error = "failed", record["error"]
                status.finished = time.time()
                live.console.print(f"[red]{escape(status.point.name)}: failed[/red] in the "
                                   f"{part} part: {escape(record['error'])}")
            elif part == BUILD:
                submit(status, DEVICE)
            else:
                status.state, status.finished = "done", time.time()
                live.console.print(f"{status.point.name}: done "
                                   f"({_ran(status.records)})")
        _note_benchmarking(statuses, in_flight)
        live.update(_table(statuses))


def _result(ray, ref, status: RunStatus | None, part: str) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except Exception as exc:  # the worker died (killed, out of memory): that part failed
        now = time.time()
        return {"part": part, "run": status.point.name if status else None, "ok": False,
                "start": now, "end": now,
                "host": None, "node_id": None, "pid": None, "ran": [],
                "error": f"its Ray task ended without a result: {first_line(exc)}"}


def _ran(records: list[dict[str, Any]]) -> str:
    ran = [stage for r in records for stage in r.get("ran", [])]
    return f"built {', '.join(ran)}" if ran else "every stage cached"


def _note_benchmarking(statuses: dict[str, RunStatus], in_flight) -> None:
    # A device part has the node once one of its own stages is running (its build stages,
    # found cached first, make no folder).
    for status, part in in_flight.values():
        if status is not None and part == DEVICE and status.state == "waiting" and current_stage(
                status.point.run_dir) in ("benchmark", "report", "compile", "evaluate"):
            status.state = "benchmarking"


def current_stage(run_dir: Path) -> str | None:
    """The stage a build is running now: a stage folder without its manifest."""
    from edgecnn.recipe.stages import STAGES
    from edgecnn.rundir import MANIFEST

    for stage in STAGES:
        folder = run_dir / stage.name
        if folder.is_dir() and not (folder / MANIFEST).is_file():
            return stage.name
    return None


def _table(statuses: dict[str, RunStatus]) -> Table:
    table = Table(title="edgecnn sweep", expand=False)
    for column in ("run", "state", "stage", "benchmark on", "time", "error"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for s in statuses.values():
        stage = current_stage(s.point.run_dir) if s.state in ("building", "benchmarking") else ""
        elapsed = f"{(s.finished or now) - s.started:.0f} s" if s.started else ""
        table.add_row(s.point.name, s.state, stage or "", s.device_node.host, elapsed,
                      (s.error or "")[:120])
    return table


def append_record(folder: Path, record: dict[str, Any]) -> None:
    """One finished task on its own line of tasks.jsonl (kept across reruns of the sweep)."""
    with (folder / TASKS_FILE).open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")

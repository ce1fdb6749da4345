"""`edgecnn sweep` on real Ray: a local instance, and a two-node cluster started here.

The points are the tiny pretrained ResNet-20 build (no training: seconds each). Checked: a run
that fails is reported while the others finish; a sweep killed and run again rebuilds nothing
that had finished; a run naming a device benchmarks on the node carrying it; and, from the times
every Ray task recorded, no benchmark shared its node with any other task.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import PRETRAINED_RECIPE

pytest.importorskip("ray", reason="ray (the sweep extra) is not installed")

FAST_BENCHMARK = ("benchmark: {batch_sizes: [1], iterations: 5, seconds: 0.05, warmup: 2, "
                  "rounds: 1, backends: [onnxruntime]}\n")


def write_sweep(folder: Path, dataset: Path, runs: str) -> Path:
    base = PRETRAINED_RECIPE.format(dataset=dataset, extra="").replace(
        "benchmark: {batch_sizes: [1, 4], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1,\n"
        "            backends: [onnxruntime, torch]}\n", FAST_BENCHMARK)
    assert "backends: [onnxruntime]}" in base
    (folder / "base.yaml").write_text(base)
    path = folder / "sweep.yaml"
    path.write_text("name: tiny\nbase: base.yaml\noutput: out\n"
                    "compare: {rounds: 2, iterations: 5, seconds: 0.05, warmup: 2}\n"
                    f"runs:\n{runs}")
    return path


def sweep_command(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgecnn.cli", "sweep", str(path), *extra]


def manifests(run_dir: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in run_dir.glob("*/manifest.json")}


def assert_benchmarks_alone(tasks_file: Path) -> None:
    """No device part, nor the side-by-side timing, overlapped any other task on its node
    (times from the tasks)."""
    records = [json.loads(line) for line in tasks_file.read_text().splitlines()]
    devices = [r for r in records if r["part"] in ("device", "compare") and r["node_id"]]
    assert devices
    for bench in devices:
        for other in records:
            if other is bench or other["node_id"] != bench["node_id"]:
                continue
            assert other["end"] <= bench["start"] or other["start"] >= bench["end"], (
                bench, other)


def test_failing_run_is_reported_and_a_killed_sweep_resumes(tmp_path, tiny_cifar_folder):
    # resnet56 cannot take the ResNet-20 checkpoint: that point fails in its model stage,
    # after every point passed validation
    path = write_sweep(tmp_path, tiny_cifar_folder, """\
  - {name: a}
  - {name: b, set: {quantize.calibration.samples: 32}}
  - {name: broken, set: {model.arch: resnet56}}
""")
    runs = tmp_path / "out" / "runs"
    first = subprocess.Popen(sweep_command(path), cwd=tmp_path, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and first.poll() is None and not any(
            (runs / n / "report" / "manifest.json").is_file() for n in ("a", "b")):
        time.sleep(0.5)
    finished = [n for n in ("a", "b") if (runs / n / "report" / "manifest.json").is_file()]
    os.killpg(first.pid, signal.SIGKILL)  # the driver, its local Ray and its workers
    output = first.communicate()[0]
    assert finished, output[-3000:]
    kept = {n: manifests(runs / n) for n in finished}

    second = subprocess.run(sweep_command(path), cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    assert "2 of 3 runs done; failed: broken" in second.stdout
    for name, stamps in kept.items():
        assert manifests(runs / name) == stamps  # nothing finished was rebuilt
    report = json.loads((tmp_path / "out" / "sweep.json").read_text())
    states = {p["name"]: p for p in report["points"]}
    assert states["a"]["state"] == states["b"]["state"] == "done"
    assert states["broken"]["state"] == "failed"
    assert "does not match the model" in states["broken"]["error"]
    assert {r["run"] for r in report["rows"]} == {"a", "b"}
    table = (tmp_path / "out" / "sweep.md").read_text()
    assert "| broken |" in table and "failed" in table
    assert report["frontiers"]["onnxruntime"]["latency b1"]
    # every CPU artifact of both runs timed again side by side, and the frontier ranks those
    assert report["side_by_side"]["ok"], report["side_by_side"]
    assert all(r["side_by_side"]["1"]["p50_ms"] > 0 for r in report["rows"]
               if r["backend"] == "onnxruntime")
    assert "p50 b1 side by side (ms)" in table
    assert (tmp_path / "out" / "top1_vs_latency_onnxruntime_b1.png").stat().st_size > 10_000
    assert_benchmarks_alone(tmp_path / "out" / "tasks.jsonl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(env: dict[str, str], *argv: str) -> subprocess.Popen:
    ray = Path(sys.executable).parent / "ray"
    return subprocess.Popen([str(ray), *argv, "--block", "--disable-usage-stats"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0


@pytest.fixture
def two_node_cluster():
    """(address, environment) of a Ray head and one worker started on this machine; the worker
    carries the resource ``edge-test-device``, as a Jetson joined with `ray start --resources`
    would. Token authentication (Ray's default for local clusters from 2.59) with a token of
    the test's own, which the head, the worker and the sweep's driver share."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    processes = [_ray(env, "start", "--head", f"--port={port}", "--num-cpus=1",
                      "--include-dashboard=false")]
    try:
        deadline = time.time() + 120
        while _alive_nodes(address, env) < 1:
            assert time.time() < deadline, "the Ray head did not start"
        processes.append(_ray(env, "start", f"--address={address}", "--num-cpus=1",
                              "--resources={\"edge-test-device\": 1}"))
        while _alive_nodes(address, env) < 2:
            assert time.time() < deadline, "the Ray worker did not join"
        yield address, env
    finally:
        # each `ray start --block` with its GCS, raylet and workers is one process group; a
        # graceful stop drains the node for half a minute, which a test cluster need not
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)


def test_a_run_naming_a_device_benchmarks_on_the_node_that_carries_it(
        tmp_path, tiny_cifar_folder, two_node_cluster):
    path = write_sweep(tmp_path, tiny_cifar_folder, """\
  - {name: here}
  - {name: there, set: {benchmark.device: edge-test-device}}
""")
    address, env = two_node_cluster
    done = subprocess.run(sweep_command(path, "--address", address), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "sweep.json").read_text())
    points = {p["name"]: p for p in report["points"]}
    there, here = points["there"], points["here"]
    assert "edge-test-device" in there["benchmark_node"]["resources"]
    assert "edge-test-device" not in here["benchmark_node"]["resources"]
    for point in (here, there):
        device = [t for t in point["tasks"] if t["part"] == "device"]
        assert [t["node_id"] for t in device] == [point["benchmark_node"]["id"]]
    assert {r["run"]: r.get("device") for r in report["rows"]}["there"] == "edge-test-device"
    assert_benchmarks_alone(tmp_path / "out" / "tasks.jsonl")

    # a device no node carries stops a sweep before it writes anything
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_sweep(elsewhere, tiny_cifar_folder,
                       "  - {name: a, set: {benchmark.device: no-such-device}}\n")
    refused = subprocess.run(sweep_command(path, "--address", address), cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "benchmark.device 'no-such-device' is not a resource of any node" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (elsewhere / "out").exists()


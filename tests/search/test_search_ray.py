"""`edgecnn search` on a local Ray: a tiny search (3 trials, two at a time, 1 epoch on the
tiny CIFAR tree), resumed for a fourth; a latency budget nothing meets, said before training;
and trials a killed search left running, proposed again."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sweep.test_sweep_ray import assert_benchmarks_alone

pytest.importorskip("ray", reason="ray (the sweep extra) is not installed")
pytest.importorskip("optuna", reason="optuna (the search extra) is not installed")


def search(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn.cli", "search", str(path)],
                          cwd=path.parent, capture_output=True, text=True, timeout=900)


def tasks(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "tasks.jsonl").read_text().splitlines()]


def test_tiny_search_runs_two_trials_at_once_and_continues_from_its_study(write_search, cli):
    path = write_search(trials=3)
    done = search(path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = path.parent / "out"
    report = json.loads((out / "trials.json").read_text())
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == 3
    for trial in complete:  # the lenient budget: every candidate trained and evaluated
        assert trial["trained"] and 0 <= trial["top1"] <= 100 and trial["p50_ms"] > 0
        assert trial["macs"] > 0 and trial["model"]["arch"] == "searchable_mbconv"
        assert trial["reference_p50_ms"] > 0 and trial["int8_drop"] is not None
        # near the (lenient) budget: timed once more beside the reference, judged on the median
        assert trial["timings"] == 2 and trial["ratio"] > 0
    assert report["front"] and set(report["front"]) <= {t["trial"] for t in complete}
    assert (out / "front_top1_vs_latency.png").stat().st_size > 10_000
    assert "| trial | state |" in (out / "trials.md").read_text()
    # the best candidate is a ready recipe, with the base's schedule
    best = out / "best-1.yaml"
    assert cli("validate", best).code == 0
    assert "searchable_mbconv" in best.read_text()
    # the final phase: the best candidate trained again with the base's own schedule (lr
    # 0.05; the search's proxy set gave its trials 0.1)
    final = json.loads((out / "final.json").read_text())
    assert [f["key"] for f in final["finalists"]] == [
        t["key"] for t in complete if t["trial"] == final["finalists"][0]["trial"]]
    finalist = final["finalists"][0]
    assert 0 <= finalist["top1"] <= 100 and finalist["p50_ms"] > 0 and not finalist["error"]
    assert final["timings"] == 1  # without the reference, nothing to time it beside again
    def recipe_of(phase: str) -> dict:
        return json.loads((out / phase / "runs" / finalist["key"] / "recipe.json").read_text())
    assert recipe_of("final")["train"]["lr"] == 0.05
    assert recipe_of("accuracy")["train"]["lr"] == 0.1
    assert "## Final" in (out / "trials.md").read_text()
    # two trials at once: two build parts of the latency phase overlapped in time, and no
    # benchmark shared the node with another task
    builds = [r for r in tasks(out / "latency") if r["part"] == "build"]
    assert any(a["start"] < b["end"] and b["start"] < a["end"]
               for a, b in itertools.combinations(builds, 2)), builds
    assert_benchmarks_alone(out / "latency" / "tasks.jsonl")
    assert_benchmarks_alone(out / "accuracy" / "tasks.jsonl")

    # a fourth trial: the stored three are kept as they were, one more is run
    path.write_text(path.read_text().replace("budget: {trials: 3}", "budget: {trials: 4}"))
    again = search(path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "3 trials stored" in again.stdout
    after = json.loads((out / "trials.json").read_text())["trials"]
    assert [t for t in after if t["state"] == "COMPLETE"][:3] == complete
    assert sum(t["state"] == "COMPLETE" for t in after) == 4


def test_a_latency_budget_no_candidate_meets_stops_before_training(write_search):
    path = write_search(constraints="{latency_ms: 0.000001}")
    done = search(path)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no candidate can meet the latency budget of 0.000 ms" in done.stderr
    assert "the cheapest point of the space measured" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (path.parent / "out" / "accuracy").exists()


def test_trials_a_killed_search_left_running_are_proposed_again(tmp_path):
    import optuna

    from edgecnn.search.study import resume_stale_trials

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize",
                                                                             "minimize"])
    done = study.ask()
    done.suggest_categorical("s0.width", [8, 16, 24])
    study.tell(done, [50.0, 1.0])
    killed = study.ask()
    width = killed.suggest_categorical("s0.width", [8, 16, 24])
    # a new process opens the study, as a rerun of the search does
    study = optuna.load_study(storage=storage, study_name="s")
    assert resume_stale_trials(study) == 1
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "WAITING"]  # the enqueued copy
    again = study.ask()
    assert again.suggest_categorical("s0.width", [8, 16, 24]) == width

"""Bad search files exit 2 naming the field, the stage or the constraint, before anything is
built or written."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import assert_user_error, snapshot

pytest.importorskip("optuna", reason="optuna (the search extra) is not installed")

GOOD_STAGE = "    - {{width: [8, 16], depth: 1, stride: 1, expansion: 1}}\n"


@pytest.mark.parametrize(("edit", "fragments"), [
    (("expansion: 1}}", "expansion: 1, kernal: [3]}}"), ["space.stages.0.kernal", "unknown key"]),
    (("kernel: [3, 5]", "kernel: [3, 4]"), ["space.stages[1]", "kernel must be 3, 5 or 7"]),
    (("activation: [relu6, hswish]", "activation: [relu6, gelu]"),
     ["space.stages[1]", "activation 'gelu'"]),
    (("depth: [1, 2]", "depth: []"), ["space.stages[1].depth has no choices"]),
    (("backend: onnxruntime", "backend: tensorrt"), ["objective.backend"]),
    (("budget: {{trials: {trials}}}", "budget: {{trials: 0}}"), ["budget.trials"]),
    (("reference: base.yaml\n", ""), ["latency_ratio needs a reference"]),
    (("base: base.yaml", "base: missing.yaml"), ["base 'missing.yaml' is not a recipe file"]),
    (("set: {{train.lr: 0.1}}", "set: {{train.learning_rate: 0.1}}"), ["train.learning_rate"]),
    (("parallel: 2", "parallel: 2\nfinalists: 11"), ["finalists"]),
    (("confirm: {{repeats: 1}}", "confirm: {{repeats: -1}}"), ["confirm.repeats"]),
])
def test_a_bad_search_file_exits_2_naming_it(write_search, cli, tmp_path, edit, fragments):
    from tests.search.conftest import SEARCH

    old, new = edit
    assert old in SEARCH
    text = SEARCH.replace(old, new).format(
        constraints="{latency_ratio: 1.0}", trials=3)
    path = write_search(text=text)
    before = snapshot(tmp_path)
    assert_user_error(cli("search", path, "--dry-run"), *fragments)
    assert snapshot(tmp_path) == before


def test_an_empty_space_exits_2(write_search, cli):
    from tests.search.conftest import SEARCH

    start = SEARCH.index("  stages:\n") + len("  stages:\n")
    end = SEARCH.index("objective:")
    text = (SEARCH[:start] + "    []\n" + SEARCH[end:]).replace("  stages:\n    []", "  stages: []")
    path = write_search(text=text.format(constraints="{}", trials=3))
    assert_user_error(cli("search", path, "--dry-run"), "space.stages", "at least 1")


def test_a_macs_budget_no_candidate_meets_is_said_before_anything_runs(write_search, cli,
                                                                       tmp_path):
    path = write_search(constraints="{max_macs: 1000}")
    outcome = cli("search", path)  # not a dry run: it must stop before starting Ray
    assert_user_error(outcome, "no candidate can meet constraints.max_macs 1000",
                      "the cheapest point of the space has")
    assert not (tmp_path / "out").exists()


def test_a_backend_that_is_not_installed_exits_2(write_search, cli, monkeypatch):
    import edgecnn.search.spec as spec

    real = spec.find_spec
    monkeypatch.setattr(spec, "find_spec", lambda name: None if name == "openvino" else real(name))
    path = write_search()
    path.write_text(path.read_text().replace("backend: onnxruntime", "backend: openvino"))
    assert_user_error(cli("search", path, "--dry-run"), "objective.backend openvino",
                      "'openvino', which is not installed", "edgecnn[openvino]")

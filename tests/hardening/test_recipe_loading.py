"""Recipes a user (or an attacker) could write: each is refused by `validate` and by
`build --dry-run` and `build` with exit 2, one message naming the field, and nothing written."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import assert_user_error, snapshot

# (what is done to the tiny recipe, fragments the message must hold)
BOMB = "\n".join(["lol0: &l0 [a, a, a, a, a, a, a, a, a]"] + [
    f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)])
CASES = {
    "non-utf8": (lambda t: t.encode().replace(b"tiny", b"t\xffny"), ["not UTF-8"]),
    "utf16-bom": (lambda t: t.encode("utf-16"), ["not UTF-8"]),
    "output-unknown-placeholder": (lambda t: t + 'output: "/x/{foo}"\n', ["output", "{foo}"]),
    "output-positional": (lambda t: t + 'output: "{0}"\n', ["output", "{0}"]),
    "output-unbalanced": (lambda t: t + 'output: "{"\n', ["output", "braces"]),
    "pretrained-placeholder": (lambda t: t.replace("arch: resnet20", 'arch: resnet20, '
                                                   'pretrained: "{foo}/w.th"'),
                               ["model.pretrained", "{foo}"]),
    "calibration-seed-negative": (lambda t: t.replace("samples: 64", "samples: 64, seed: -1"),
                                  ["quantize.calibration.seed"]),
    "split-seed-negative": (lambda t: t.replace("val_size: 40", "val_size: 40, split_seed: -1"),
                            ["data.split_seed"]),
    "std-zero": (lambda t: t.replace("val_size: 40", "val_size: 40, std: [0, 0, 0]"),
                 ["data.std"]),
    "std-negative": (lambda t: t.replace("val_size: 40", "val_size: 40, std: [-1, 1, 1]"),
                     ["data.std"]),
    "mean-nan": (lambda t: t.replace("val_size: 40", "val_size: 40, mean: [.nan, 0, 0]"),
                 ["data.mean"]),
    "num-classes-huge": (lambda t: t.replace("arch: resnet20", "arch: resnet20, "
                                             "num_classes: 1.0e12"), ["model.num_classes"]),
    "alias-bomb": (lambda t: t + BOMB + "\n", ["aliases are expanded"]),
    "seconds-infinite": (lambda t: t.replace("seconds: 0.05", "seconds: .inf"),
                         ["benchmark.seconds", "finite"]),
    "iterations-huge": (lambda t: t.replace("iterations: 5", "iterations: 1000000000000"),
                        ["benchmark.iterations"]),
    "rounds-huge": (lambda t: t.replace("rounds: 1", "rounds: 1000000"), ["benchmark.rounds"]),
    "warmup-huge": (lambda t: t.replace("warmup: 2", "warmup: 1000000000"), ["benchmark.warmup"]),
    "epochs-huge": (lambda t: t.replace("epochs: 1", "epochs: 100000000"), ["train.epochs"]),
    "duplicate-key": (lambda t: t.replace("name: tiny\n", "name: tiny\nname: other\n"),
                      ["duplicate key 'name' at line 3 (first at line 2)"]),
    "name-dotdot": (lambda t: t.replace("name: tiny", 'name: ".."'), ["name"]),
    "name-dot": (lambda t: t.replace("name: tiny", 'name: "."'), ["name"]),
    "set-with-samples": (lambda t: t.replace("samples: 64", "samples: 64, set: cifar10-train-512"),
                         ["quantize.calibration", "drop samples"]),
    "bad-family-option": (lambda t: t.replace("arch: resnet20", 'arch: mobilenet_v2, options: '
                                              '{width_mult: "wide"}'), ["model.options"]),
}
# Cases only a build's preflight can see (they need the dataset): validate accepts them.
PREFLIGHT_CASES = {
    "set-of-another-dataset": (lambda t: t.replace("samples: 64", "set: cifar10-train-512"),
                               ["quantize.calibration.set", "draws from dataset 'cifar10-jpeg'"]),
    "eval-on-carved-val-of-size-0": (lambda t: t.replace("val_size: 40",
                                                         "val_size: 0, eval_split: val"),
                                     ["data.eval_split is val", "data.val_size is 0"]),
    "batch-larger-than-split": (lambda t: t.replace("batch_size: 40", "batch_size: 4000"),
                                ["train.batch_size is 4000", "160 training images"]),
}


def _write(path, content) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_recipe_is_refused_by_validate_and_build(cli, tmp_path, tiny_recipe_text, case):
    mutate, fragments = CASES[case]
    recipe = tmp_path / "r.yaml"
    _write(recipe, mutate(tiny_recipe_text))
    before = snapshot(tmp_path)
    assert_user_error(cli("validate", recipe), *fragments)
    assert_user_error(cli("build", recipe, "--dry-run"), *fragments)
    assert_user_error(cli("build", recipe, "--out", tmp_path / "run"), *fragments)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", sorted(PREFLIGHT_CASES))
def test_bad_recipe_is_refused_by_preflight_before_any_folder(cli, tmp_path, tiny_recipe_text,
                                                              case):
    mutate, fragments = PREFLIGHT_CASES[case]
    recipe = tmp_path / "r.yaml"
    _write(recipe, mutate(tiny_recipe_text))
    before = snapshot(tmp_path)
    assert_user_error(cli("build", recipe, "--dry-run"), *fragments)
    assert_user_error(cli("build", recipe, "--out", tmp_path / "run"), *fragments)
    assert snapshot(tmp_path) == before


def test_alias_bomb_message_stays_short(cli, tmp_path, tiny_recipe_text):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(tiny_recipe_text + BOMB + "\n")
    outcome = cli("validate", recipe)
    assert_user_error(outcome)
    assert len(outcome.err) < 500


def test_echoed_values_are_truncated(cli, tmp_path, tiny_recipe_text):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(tiny_recipe_text.replace("epochs: 1", "epochs: " + "x" * 100_000))
    outcome = cli("validate", recipe)
    assert_user_error(outcome, "train.epochs")
    assert len(outcome.err) < 500


def test_set_values_obey_the_same_bounds(cli, tiny_recipe):
    assert_user_error(cli("validate", tiny_recipe, "--set", "benchmark.seconds=.inf"),
                      "benchmark.seconds")
    assert_user_error(cli("validate", tiny_recipe, "--set", "data.std=[0, 1, 1]"), "data.std")
    assert_user_error(cli("validate", tiny_recipe, "--set", "name={a: 1, a: 2}"),
                      "duplicate key 'a'")


def test_yaml_anchors_and_merge_keys_still_work(cli, tmp_path, tiny_recipe_text):
    """The bounds refuse bombs, not YAML's ordinary reuse of a block."""
    text = tiny_recipe_text.replace(
        "train: {", "x-schedule: &schedule {lr: 0.05}\ntrain: {<<: *schedule, ").replace(
        ", lr: 0.05, schedule", ", schedule")
    from edgecnn.recipe.loading import read_yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    data = read_yaml(recipe)
    assert data["train"]["lr"] == 0.05

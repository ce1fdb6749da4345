"""Every recipe in recipes/ validates; bad recipes give one message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.recipe import load_recipe
from edgecnn.settings import REPO_ROOT

RECIPES = sorted((REPO_ROOT / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    names = {p.name for p in RECIPES}
    assert {"resnet20_cifar10.yaml", "resnet20_finetune_head.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_validates_and_starts_with_its_command(path: Path):
    recipe = load_recipe(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# edgecnn ") and path.name in first
    assert recipe.name == path.stem


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


GOOD = "name: r\nmodel: {arch: resnet20}\ntrain: {epochs: 2}\n"


@pytest.mark.parametrize(("text", "overrides", "message"), [
    (GOOD + "bogus: 1\n", [], "bogus: unknown key; valid keys here: name, model"),
    (GOOD.replace("epochs: 2", "epochs: 2, lr: fast"), [], "train.lr: Input should be a valid"),
    (GOOD.replace("resnet20", "resnet21"), [], "model.arch: unknown architecture 'resnet21'"),
    (GOOD.replace("epochs: 2", "epochs: 2, batch_size: -4"), [],
     "train.batch_size: Input should be greater than or equal to 1"),
    (GOOD, ["train.epoch=3"], "train.epoch: unknown key; valid keys here: epochs, batch_size"),
    (GOOD, ["nothing.here=1"], "there is no nothing in the recipe"),
    (GOOD, ["train.epochs"], "must look like section.key=value"),
    ("name: r\nmodel: [unclosed\n", [], "YAML syntax error at line 3"),
    ("- a\n- b\n", [], "expected a mapping of sections"),
    ("name: r\n", [], "model: required but missing"),
    (GOOD, ["quantize.method=qat", "quantize.calibration.table=t.json"],
     "a saved calibration table cannot apply to it"),
])
def test_bad_recipes_name_the_field(tmp_path, text, overrides, message):
    with pytest.raises(EdgeCNNError) as info:
        load_recipe(_write(tmp_path, text), overrides)
    assert message in str(info.value)


def test_overrides_take_yaml_values(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD), ["train.nesterov=true", "train.lr=0.01",
                                                  "data.dataset=/tmp/x"])
    assert recipe.train.nesterov is True and recipe.train.lr == 0.01
    assert recipe.data.dataset == "/tmp/x"


def test_missing_recipe_file(tmp_path):
    with pytest.raises(EdgeCNNError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")

"""Sweep files: expansion into points, and bad files refused before anything runs (exit 2, one
message naming the field or point, nothing written)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.settings import REPO_ROOT
from edgecnn.sweep.spec import load_sweep
from tests.hardening.conftest import assert_user_error, snapshot
from tests.helpers import TINY_RECIPE

BASE = """\
name: base
model: {arch: resnet20}
data: {dataset: cifar10-jpeg}
quantize: {calibration: {samples: 64}}
"""


def write(folder: Path, sweep: str, base: str = BASE) -> Path:
    (folder / "base.yaml").write_text(base)
    path = folder / "s.yaml"
    path.write_text(sweep)
    return path


def test_grid_crossed_with_runs_names_every_point_and_merges_identical_ones(tmp_path):
    path = write(tmp_path, """\
name: s
base: base.yaml
set: {benchmark.rounds: 3}
grid:
  model.arch: [resnet20, resnet56]
  quantize.calibration.samples: [64, 128]
runs:
  - {name: ptq}
  - {name: same, set: {quantize.method: ptq}}   # ptq is the default: the same recipes
  - {name: fp32, set: {quantize.method: none}}
output: out/{name}
""")
    sweep = load_sweep(path)
    names = [p.name for p in sweep.points]
    assert names == [f"{run}-arch-{arch}_samples-{n}" for run in ("ptq", "fp32")
                     for arch in ("resnet20", "resnet56") for n in (64, 128)]
    first = sweep.points[0]
    assert first.aliases == ("same-arch-resnet20_samples-64",)
    assert first.recipe.benchmark.rounds == 3 and first.recipe.model.arch == "resnet20"
    assert first.recipe.name == first.name
    assert first.run_dir == (Path("out/s/runs") / first.name).absolute()
    assert sweep.points[-1].recipe.quantize.method == "none"
    assert sweep.points[-1].recipe.quantize.calibration.samples == 128
    # --set applies to every point, last
    assert {p.recipe.benchmark.rounds for p in load_sweep(path, {"benchmark.rounds": 1}).points
            } == {1}


def test_a_runs_field_inside_a_shared_mapping_stays_in_that_run(tmp_path):
    # the sweep's set gives every point one `train` mapping; one run's train.precision must
    # not leak into the runs after it (it did: every zoo run trained under bf16)
    path = write(tmp_path, """\
name: s
base: base.yaml
set: {train: {epochs: 1, precision: fp32}}
runs:
  - {name: first}
  - {name: bf16, set: {train.precision: bf16}}
  - {name: last, set: {train.lr: 0.05}}
""")
    assert [p.recipe.train.precision for p in load_sweep(path).points] == ["fp32", "bf16", "fp32"]


def test_an_inline_base_recipe(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbase:\n  model: {arch: resnet20}\n  data: {dataset: cifar10-jpeg}\n"
                    "grid: {model.arch: [resnet20, resnet32]}\n")
    assert [p.recipe.model.arch for p in load_sweep(path).points] == ["resnet20", "resnet32"]


BAD_SWEEPS = {
    "unknown key": ("name: s\nbase: base.yaml\ngird: {model.arch: [resnet20]}\n",
                    ["gird", "unknown key"]),
    "unknown key in a run": ("name: s\nbase: base.yaml\nruns: [{name: a, sett: {}}]\n",
                             ["runs.0.sett", "valid keys here: name, set"]),
    "grid field not in the recipe": (
        "name: s\nbase: base.yaml\ngrid: {benchmark.rouns: [1, 2]}\n",
        ["point rouns-1", "benchmark.rouns: unknown key", "rounds"]),
    "grid section not in the recipe": (
        "name: s\nbase: base.yaml\ngrid: {bench.rounds: [1]}\n", ["bench.rounds", "no bench"]),
    "value the schema refuses": (
        "name: s\nbase: base.yaml\ngrid: {benchmark.rounds: [1, -4]}\n",
        ["point rounds-m4", "benchmark.rounds"]),
    "empty grid": ("name: s\nbase: base.yaml\ngrid: {}\n", ["no points"]),
    "a grid field without values": ("name: s\nbase: base.yaml\ngrid: {model.arch: []}\n",
                                    ["model.arch has no values"]),
    "duplicate run names": ("name: s\nbase: base.yaml\nruns: [{name: a}, {name: a}]\n",
                            ["'a' is used twice"]),
    "the sweep's own field": ("name: s\nbase: base.yaml\ngrid: {name: [x, y]}\n",
                              ["grid: name is the sweep's to set"]),
    "missing base file": ("name: s\nbase: nothere.yaml\ngrid: {model.arch: [resnet20]}\n",
                          ["base 'nothere.yaml'", "does not exist"]),
    "not a mapping": ("- a\n- b\n", ["expected a mapping"]),
    "a published figure out of range": (
        "name: s\nbase: base.yaml\nruns: [{name: a, published: {top1: 120, source: x}}]\n",
        ["runs.0.published.top1"]),
    "bad yaml": ("name: s\nbase: [\n", ["s.yaml"]),
    "unknown architecture": ("name: s\nbase: base.yaml\ngrid: {model.arch: [resnet21]}\n",
                             ["point arch-resnet21", "resnet21"]),
    "a device no node carries": (
        "name: s\nbase: base.yaml\nruns: [{name: a, set: {benchmark.device: 'bad device'}}]\n",
        ["benchmark.device"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SWEEPS))
def test_bad_sweep_files_exit_2_before_anything_runs(cli, tmp_path, monkeypatch, shared, case):
    text, fragments = BAD_SWEEPS[case]
    path = write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert_user_error(cli("sweep", path), *fragments)
    assert snapshot(tmp_path) == before


def test_a_point_whose_data_is_missing_is_named(cli, tmp_path, monkeypatch, shared):
    path = write(tmp_path, "name: s\nbase: base.yaml\n"
                           "runs: [{name: ok}, {name: nodata, set: {data.dataset: /nope/x}}]\n")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert_user_error(cli("sweep", path, "--dry-run"), "point nodata", "/nope/x")
    assert snapshot(tmp_path) == before


def test_dry_run_lists_every_point_and_writes_nothing(cli, tmp_path, monkeypatch,
                                                      tiny_cifar_folder):
    base = TINY_RECIPE.format(dataset=tiny_cifar_folder)
    path = write(tmp_path, "name: s\nbase: base.yaml\ngrid: {model.arch: [resnet20, resnet32]}\n",
                 base=base)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    outcome = cli("sweep", path, "--dry-run")
    assert outcome.code == 0, outcome.err
    assert "arch-resnet20: model.arch=resnet20 -> runs model, train" in outcome.out
    assert "2 runs in" in outcome.out
    assert snapshot(tmp_path) == before


def test_two_points_with_one_name_but_different_recipes_are_refused(tmp_path):
    # 'a-b' and 'a_b' slug to different names, but 'x y' and 'xy' do not
    path = write(tmp_path, "name: s\nbase: base.yaml\n"
                           "grid: {model.options: [{width: 'x y'}, {width: 'xy'}]}\n")
    with pytest.raises(EdgeCNNError, match="both named"):
        load_sweep(path)


def test_without_ray_the_sweep_says_how_to_install_it(cli, tmp_path, monkeypatch, shared):
    path = write(tmp_path, "name: s\nbase: base.yaml\ngrid: {model.arch: [resnet20]}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the sweep extra is not installed
    before = snapshot(tmp_path)
    assert_user_error(cli("sweep", path), "'ray'", "pip install 'edgecnn[sweep]'")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_repository_sweeps_dry_run(cli, path, shared):
    outcome = cli("sweep", path, "--dry-run")
    assert outcome.code == 0, outcome.err
    assert "is valid" in outcome.out

"""Compound scaling (`edgecnn search` with a `compound` section): the grid kept by counted
mult-adds, single dimensions matched to the compound model's mult-adds, bad files exiting 2,
and a tiny grid run end to end on local Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.conftest import assert_user_error, snapshot
from tests.helpers import TINY_RECIPE

BASELINE = {"arch": "efficientnet", "cifar_stem": True, "options": {"width_mult": 0.25,
                                                                  "dropout": 0.0}}

COMPOUND = """\
name: tiny-compound
base: base.yaml
set: {set}
compound:
  resolution: 32
  alpha: {alpha}
  beta: [1.0]
  gamma: {gamma}
  target: 2.0
  tolerance: {tolerance}
  phis: {phis}
  singles: {singles}
objective: {{backend: onnxruntime, precision: int8, batch: 1, threads: 1}}
compare: {{rounds: 1, iterations: 5, seconds: 0.05, warmup: 2}}
build_cpus: 1
output: out
"""


def write_compound(folder: Path, dataset: Path, **fields) -> Path:
    values = {"set": "{train.lr: 0.01}", "alpha": "[1.0, 2.0]", "gamma": "[1.0, 1.4]",
              "tolerance": 0.3, "phis": "[]", "singles": "[depth]"} | fields
    base = TINY_RECIPE.format(dataset=dataset).replace(
        "model: {arch: resnet20}",
        "model: {arch: efficientnet, cifar_stem: true, resolution: 32, "
        "options: {width_mult: 0.25, dropout: 0.0}}").replace(
        "backends: [onnxruntime, torch]}", "backends: [onnxruntime]}")
    (folder / "base.yaml").write_text(base)
    path = folder / "c.yaml"
    path.write_text(COMPOUND.format(**values))
    return path


@pytest.fixture
def baseline():
    from edgecnn.search.compound import Baseline

    return Baseline(BASELINE, 32)


def test_single_dimensions_match_the_target_mult_adds_to_their_rounding_step(baseline):
    from edgecnn.search.compound import Scaled, match

    base = baseline.macs(Scaled("b", "baseline", 0, 1.0, 1.0, 32))
    for dimension in ("depth", "width", "resolution"):
        point = match(baseline, dimension, 2 * base, phi=1)
        ratio = baseline.macs(point) / base
        # only that dimension moved, and it landed on the step nearest 2x
        moved = {"depth": point.depth != 1.0, "width": point.width != 1.0,
                 "resolution": point.resolution != 32}
        assert moved == {d: d == dimension for d in moved}, point
        assert 1.6 < ratio < 2.4, (dimension, ratio)
        if dimension == "resolution":  # the neighbouring whole pixels are no nearer
            for other in (point.resolution - 1, point.resolution + 1):
                near = Scaled("n", dimension, 1, 1.0, 1.0, other)
                assert abs(baseline.macs(near) - 2 * base) >= abs(baseline.macs(point) - 2 * base)


def test_the_grid_keeps_the_points_whose_counted_mult_adds_meet_the_target(tmp_path,
                                                                           tiny_cifar_folder,
                                                                           baseline):
    from edgecnn.search.compound import grid_points
    from edgecnn.search.files import load_search

    path = write_compound(tmp_path, tiny_cifar_folder, alpha="[1.0, 1.5, 2.0, 3.0]",
                          gamma="[1.0]", tolerance=0.3)
    spec, _ = load_search(path)
    base = baseline.macs(grid_points(spec, baseline)[0])
    kept = grid_points(spec, baseline)
    assert kept[0].name == "baseline"
    for point in kept[1:]:
        assert abs(baseline.macs(point) / base - 2.0) <= 0.3
    dropped = {"phi1-a1.5-b1-g1", "phi1-a3-b1-g1"} - {p.name for p in kept}
    assert dropped, "a grid this wide must drop a point off the target"


def test_scaling_to_phi_raises_the_found_multipliers_to_that_power(tmp_path, tiny_cifar_folder,
                                                                   baseline):
    from edgecnn.search.compound import Scaled, scaled_points
    from edgecnn.search.files import load_search

    spec, _ = load_search(write_compound(tmp_path, tiny_cifar_folder, phis="[2, 3]",
                                         singles="[width]"))
    best = Scaled("phi1-a1.2-b1.1-g1.15", "grid", 1, 1.2, 1.1, 37)
    points = scaled_points(spec, baseline, best)
    compound = {p.phi: p for p in points if p.kind == "compound"}
    assert sorted(compound) == [1, 2, 3]
    assert compound[3].depth == pytest.approx(1.2**3, abs=1e-3)
    assert compound[3].width == pytest.approx(1.1**3, abs=1e-3)
    assert compound[3].resolution == round(32 * (37 / 32)**3)
    assert [p.kind for p in points].count("width") == 3


@pytest.mark.parametrize(("fields", "fragments"), [
    ({"phis": "[1]"}, ["compound.phis"]),
    ({"alpha": "[0.5, 1.0]"}, ["compound.alpha", "1.0..4.0"]),
    ({"alpha": "[1.0]", "gamma": "[1.0]"}, ["no point but the baseline"]),
    ({"singles": "[height]"}, ["compound.singles"]),
    ({"set": "{model.options.width_mult: 1.0}"}, ["model.options.width_mult",
                                                    "override the scaled model"]),
    ({"alpha": "[1.0, 1.05]", "gamma": "[1.0]", "tolerance": 0.01},
     ["no (alpha, beta, gamma) of the grid", "nearest"]),
])
def test_a_bad_compound_file_exits_2_naming_it(tmp_path, tiny_cifar_folder, cli, fields,
                                               fragments):
    path = write_compound(tmp_path, tiny_cifar_folder, **fields)
    before = snapshot(tmp_path)
    assert_user_error(cli("search", path, "--dry-run"), *fragments)
    assert snapshot(tmp_path) == before


def test_a_file_with_both_space_and_compound_exits_2(tmp_path, tiny_cifar_folder, cli):
    path = write_compound(tmp_path, tiny_cifar_folder)
    path.write_text(path.read_text() + "space: {resolution: [32], stages: [{width: 8}]}\n")
    assert_user_error(cli("search", path, "--dry-run"), "either space", "or compound")


def test_a_base_without_width_and_depth_options_exits_2(tmp_path, tiny_cifar_folder, cli):
    path = write_compound(tmp_path, tiny_cifar_folder)
    (tmp_path / "base.yaml").write_text(TINY_RECIPE.format(dataset=tiny_cifar_folder))
    assert_user_error(cli("search", path, "--dry-run"), "width_mult and depth_mult")


def test_a_tiny_compound_search_runs_the_grid_then_the_scaling(tmp_path, tiny_cifar_folder):
    pytest.importorskip("ray", reason="ray (the sweep extra) is not installed")
    path = write_compound(tmp_path, tiny_cifar_folder)
    done = subprocess.run([sys.executable, "-m", "edgecnn.cli", "search", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "compound.json").read_text())
    grid = {r["name"]: r for r in result["grid"]}
    assert set(grid) == {"baseline", "phi1-a2-b1-g1", "phi1-a1-b1-g1.4"}
    for row in result["grid"] + result["scaled"]:
        assert row["error"] is None and 0 <= row["top1_fp32"] <= 100 and row["p50_ms"] > 0
    assert result["timing"] == {phase: {"side_by_side": True, "compare_error": None}
                                for phase in ("grid", "scaled")}
    trained = [r for r in result["grid"] if r["kind"] == "grid"]
    best = max(trained, key=lambda r: r["top1_fp32"])
    assert result["found"] == {"alpha": best["depth"], "beta": best["width"],
                               "gamma": round(best["resolution"] / 32, 4)}
    # phi 1 only: the best triple again, and depth alone at its mult-adds
    assert [(r["kind"], r["phi"]) for r in result["scaled"]] == [("compound", 1), ("depth", 1)]
    compound, depth = result["scaled"]
    assert compound["macs"] == best["macs"]
    assert 0.7 < depth["macs"] / compound["macs"] < 1.3
    report = (tmp_path / "out" / "compound.md").read_text()
    assert "the paper's: alpha 1.2, beta 1.1, gamma 1.15" in report
    assert (tmp_path / "out" / "top1_vs_macs_scaling.png").stat().st_size > 10_000
    # the proxy set reached every point: lr 0.01 against the base's 0.05
    recipe = json.loads((tmp_path / "out" / "grid" / "runs" / "baseline" / "recipe.json")
                        .read_text())
    assert recipe["train"]["lr"] == 0.01

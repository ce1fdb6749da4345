"""Where a build writes and what it deletes: only folders it made and marked, only its own
unfinished stages, and never another build's work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.rundir import MARKER, RunDirectory
from tests.hardening.conftest import assert_user_error, build_tiny, snapshot


def _stage_folders_finished(run: Path, users: tuple[str, ...] = ()) -> None:
    """What a failed build may leave: finished stages (with manifests), nothing half-made;
    ``users`` are the user's own folders planted in the run."""
    for folder in run.iterdir():
        if folder.is_dir() and folder.name not in users:
            assert (folder / "manifest.json").is_file(), f"{folder.name} left half-made"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_cifar_folder) -> tuple[Path, Path]:
    """(recipe, run directory) of one finished tiny build, copied by the tests that change it."""
    run = build_tiny(tmp_path_factory.mktemp("finished"), tiny_cifar_folder)
    return run.parent / "r.yaml", run


@pytest.fixture
def run_copy(finished_run, tmp_path) -> tuple[Path, Path]:
    recipe, run = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return recipe, copy


def test_a_name_that_climbs_out_deletes_nothing(cli, tmp_path, tiny_recipe_text):
    user = tmp_path / "user"
    for folder in ("report", "model", "export"):
        (user / folder).mkdir(parents=True)
        (user / folder / "precious.txt").write_text("mine")
    (user / "keep.txt").write_text("mine")
    (user / "runs").mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(tiny_recipe_text.replace("name: tiny", 'name: ".."')
                      + f'output: "{user}/runs/{{name}}"\n')
    before = snapshot(tmp_path)
    assert_user_error(cli("build", recipe), "name")
    assert_user_error(cli("build", recipe, "--set", "name=.", "--dry-run"), "name")
    assert snapshot(tmp_path) == before
    assert (user / "keep.txt").read_text() == "mine"


def test_an_existing_folder_that_is_not_a_run_directory_is_refused(cli, tmp_path, tiny_recipe):
    user = tmp_path / "user"
    (user / "report").mkdir(parents=True)
    (user / "report" / "precious.txt").write_text("mine")
    (user / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    for argv in (["--dry-run"], []):
        assert_user_error(cli("build", tiny_recipe, "--out", user, *argv),
                          str(user), "not an edgecnn run directory")
    assert_user_error(cli("build", tiny_recipe, "--out", user / "keep.txt"), "is a file")
    assert_user_error(cli("build", tiny_recipe, "--out", user / "keep.txt" / "run"),
                      "cannot be created")
    assert_user_error(cli("train", tiny_recipe, "--out", user), "not an edgecnn run directory")
    assert snapshot(tmp_path) == before


def test_a_run_directory_is_marked_and_reused(finished_run):
    _, run = finished_run
    assert (run / MARKER).is_file()


def test_a_file_where_a_stage_folder_goes_is_refused(cli, run_copy):
    recipe, run = run_copy
    shutil.rmtree(run / "export")
    (run / "export").write_text("a user's file")
    assert_user_error(cli("build", recipe, "--out", run), str(run / "export"), "is a file")
    assert (run / "export").read_text() == "a user's file"
    _stage_folders_finished(run)


@pytest.mark.parametrize("name", ["report.json", "recipe.json"])
def test_a_folder_where_a_file_goes_is_refused(cli, run_copy, name):
    recipe, run = run_copy
    target = run / name
    target.unlink()
    target.mkdir()
    (target / "inside.txt").write_text("a user's file")
    assert_user_error(cli("build", recipe, "--out", run, "--set", "benchmark.rounds=2"),
                      str(target))
    assert (target / "inside.txt").read_text() == "a user's file"
    _stage_folders_finished(run, users=(name,))


def test_a_failing_stage_leaves_no_half_made_folder(cli, run_copy, tmp_path):
    """A calibration table of another model is refused in the quantize stage (only there is
    the model's sha256 known): quantize/ must not survive the failure."""
    recipe, run = run_copy
    table = json.loads((run / "quantize" / "tiny.calibration.json").read_text())
    table["model_sha256"] = "0" * 64
    other = tmp_path / "other.calibration.json"
    other.write_text(json.dumps(table))
    outside = snapshot(tmp_path / "run" / "model")
    assert_user_error(cli("build", recipe, "--out", run, "--calibration", other),
                      "calibration table")
    assert not (run / "quantize").exists()
    _stage_folders_finished(run)
    assert snapshot(tmp_path / "run" / "model") == outside


def test_a_bad_image_found_late_leaves_finished_stages_only(cli, tmp_path, tiny_cifar_folder,
                                                            tiny_recipe_text, private_cache):
    data = tmp_path / "data"
    shutil.copytree(tiny_cifar_folder, data)
    (data / "test" / "cat" / "999.png").write_bytes(b"not a png at all")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(tiny_recipe_text.replace(str(tiny_cifar_folder), str(data)))
    run = tmp_path / "run"
    assert_user_error(cli("build", recipe, "--out", run), "999.png", "cannot be decoded")
    _stage_folders_finished(run)
    assert (run / "train" / "manifest.json").is_file()  # resume keeps the finished training


def test_temporary_files_of_a_killed_run_are_removed(cli, run_copy):
    recipe, run = run_copy
    orphans = [run / "train" / ".best.safetensors.k1ll3d.partial",
               run / ".report.json.x9y8z7.partial"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    keep = run / "train" / "notes.txt"
    keep.write_text("not a temporary file")
    outcome = cli("build", recipe, "--out", run)
    assert outcome.code == 0, outcome.err
    assert not any(o.exists() for o in orphans)
    assert keep.is_file()


def test_the_lock_refuses_a_second_build_and_the_loser_deletes_nothing(cli, tmp_path,
                                                                       tiny_recipe):
    """Two builds that start before the run directory exists: the first to create it holds
    the lock; the second is refused and must not remove the winner's fresh folder."""
    run = tmp_path / "run"
    with RunDirectory(run) as winner:
        assert winner.created
        (run / "model").mkdir()  # the winner's work in progress
        with pytest.raises(EdgeCNNError, match="another edgecnn process is running"), \
                RunDirectory(run) as loser:
            pytest.fail(f"second claim succeeded: {loser}")
        assert_user_error(cli("build", tiny_recipe, "--out", run), "another edgecnn process")
        assert (run / "model").is_dir() and (run / MARKER).is_file()


def test_a_failed_run_removes_only_the_folder_it_created(tmp_path):
    made = tmp_path / "made"
    with pytest.raises(EdgeCNNError), RunDirectory(made):
        raise EdgeCNNError("the first stage failed")
    assert not made.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(EdgeCNNError), RunDirectory(existing):
        raise EdgeCNNError("the first stage failed")
    assert existing.is_dir()  # an empty folder the user gave stays


def test_changed_images_change_the_training_key(tmp_path, tiny_cifar_folder, tiny_recipe_text,
                                                cli):
    """Overwrite every train image of a folder dataset: neither the training cache nor the
    stage fingerprints may take the old training for the new data."""
    from PIL import Image

    from edgecnn.recipe import load_recipe
    from edgecnn.train.trainer import recipe_fingerprint

    data = tmp_path / "data"
    shutil.copytree(tiny_cifar_folder, data)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(tiny_recipe_text.replace(str(tiny_cifar_folder), str(data)))
    before = recipe_fingerprint(load_recipe(recipe))
    for image in sorted((data / "train").rglob("*.png")):
        pixels = np.asarray(Image.open(image))
        Image.fromarray(255 - pixels).save(image)  # same names, new content
    assert recipe_fingerprint(load_recipe(recipe)) != before


def test_a_changed_dataset_reruns_training_in_a_finished_run(cli, run_copy, tmp_path,
                                                             tiny_cifar_folder):
    recipe, run = run_copy
    data = tmp_path / "data"
    shutil.copytree(tiny_cifar_folder, data)
    text = recipe.read_text().replace(str(tiny_cifar_folder), str(data))
    same = tmp_path / "same.yaml"
    same.write_text(recipe.read_text())
    moved = tmp_path / "moved.yaml"
    moved.write_text(text)
    cached = cli("build", same, "--out", run, "--dry-run")
    assert "train      cached" in cached.out
    (data / "train" / "cat" / "000.png").write_bytes((data / "train" / "dog" / "000.png")
                                                     .read_bytes())
    rerun = cli("build", moved, "--out", run, "--dry-run")
    assert "train      run" in rerun.out

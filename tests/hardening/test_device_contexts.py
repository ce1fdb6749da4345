"""`edgecnn device-run` reads a context it did not write: every file it reads must be inside the
context and listed with its sha256, and the context must have the shape the run reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecnn.hashing import sha256_file
from tests.hardening.conftest import assert_user_error, snapshot

FAST = ("--backends", "onnxruntime", "--batch", "1", "--iterations", "1", "--seconds", "0",
        "--rounds", "1")


@pytest.fixture(scope="module")
def context(artifact_run, tmp_path_factory) -> Path:
    from edgecnn.cli import main

    out = tmp_path_factory.mktemp("context") / "ctx"
    assert main(["container", str(artifact_run), "--out", str(out), "--eval-images", "50"]) == 0
    return out


@pytest.fixture
def ctx(context, tmp_path) -> Path:
    copy = tmp_path / "ctx"
    shutil.copytree(context, copy)
    return copy


def _edit(ctx: Path, change) -> None:
    path = ctx / "context.json"
    document = json.loads(path.read_text())
    document = change(document)
    path.write_text(json.dumps(document))


def test_the_untouched_context_runs(cli, ctx, tmp_path):
    outcome = cli("device-run", ctx, "--results", tmp_path / "results", *FAST)
    assert outcome.code == 0, outcome.err


def _drop(key):
    def change(document):
        document.pop(key)
        return document
    return change


def _model_path(path):
    def change(document):
        document["models"]["fp32"] = path
        return document
    return change


def _set(key, value):
    def change(document):
        document[key] = value
        return document
    return change


CASES = {
    "no-files-list": (_drop("files"), ["files"]),
    "empty-files-list": (_set("files", {}), ["files"]),
    "model-climbs-out": (_model_path("../../x.onnx"), ["model fp32", "'../../x.onnx'",
                                                        "not a path inside"]),
    "model-absolute": (_model_path("/etc/passwd"), ["model fp32", "not a path inside"]),
    "model-not-listed": (_model_path("models/unlisted.onnx"), ["not listed in files"]),
    "no-eval": (_drop("eval"), ["eval"]),
    "context-a-list": (lambda document: [document], ["JSON object"]),
    "mean-not-numbers": (_set("mean", "abc"), ["mean"]),
    "std-zero": (_set("std", [0, 1, 1]), ["std must be positive"]),
    "listed-file-outside": (lambda d: {**d, "files": {**d["files"], "../x": "0" * 64}},
                            ["'../x'", "not a path inside"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_context_is_refused(cli, ctx, tmp_path, case):
    change, fragments = CASES[case]
    (ctx / "models" / "unlisted.onnx").write_bytes((ctx / "models" / "model.fp32.onnx")
                                                   .read_bytes())
    _edit(ctx, change)
    before = snapshot(tmp_path)
    assert_user_error(cli("device-run", ctx, "--results", tmp_path / "results", *FAST),
                      *fragments)
    assert snapshot(tmp_path) == before


def test_a_link_that_leads_out_is_refused(cli, ctx, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(ctx / "models" / "model.fp32.onnx", outside)
    link = ctx / "models" / "model.fp32.onnx"
    link.unlink()
    link.symlink_to(outside)
    assert_user_error(cli("device-run", ctx, "--results", tmp_path / "results", *FAST),
                      "leads outside")


def test_labels_outside_the_classes_are_refused(cli, ctx, tmp_path):
    subset = ctx / "eval" / "subset.npz"
    with np.load(subset, allow_pickle=False) as data:
        images, classes = data["images"], data["classes"]
        labels = data["labels"].copy()
    labels[0] = 99
    np.savez_compressed(subset, images=images, labels=labels, classes=classes)
    _edit(ctx, lambda d: {**d, "files": {**d["files"], "eval/subset.npz": sha256_file(subset)}})
    assert_user_error(cli("device-run", ctx, "--results", tmp_path / "results", *FAST),
                      "labels must be 0..9")


def test_results_under_a_file_exit_2(cli, ctx, tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("")
    assert_user_error(cli("device-run", ctx, "--results", a_file, *FAST), "--results")
    assert_user_error(cli("device-run", ctx, "--results", a_file / "sub", *FAST), "--results")


def test_container_force_replaces_only_a_context(cli, artifact_run, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    assert_user_error(cli("container", artifact_run, "--out", user, "--force"),
                      "not an edgecnn container context")
    assert (user / "keep.txt").read_text() == "mine"


def test_container_on_a_corrupt_recipe_json_exits_2(cli, artifact_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(artifact_run, run)
    (run / "recipe.json").write_text('{"name": 3}')
    assert_user_error(cli("container", run, "--out", tmp_path / "ctx"), "recipe.json")
    assert not (tmp_path / "ctx").exists()

"""Training on a small real image folder: learning, resuming after a kill, fine-tuning the head."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edgecnn.models import create_model
from edgecnn.recipe import load_recipe
from edgecnn.settings import REPO_ROOT
from edgecnn.train.trainer import Trainer

TINY = [
    "train.epochs=3", "train.batch_size=50", "train.lr=0.05", "train.schedule=cosine",
    "data.val_size=50", "data.eval_batch_size=100",
]


def _recipe(dataset: Path, *extra: str, name: str = "resnet20_cifar10.yaml"):
    return load_recipe(REPO_ROOT / "recipes" / name, [f"data.dataset={dataset}", *TINY, *extra])


def test_training_writes_checkpoints_metrics_and_result(tiny_cifar_folder, tmp_path):
    result = Trainer(_recipe(tiny_cifar_folder), tmp_path).run()
    folder = tmp_path / "train"
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert result["test"]["samples"] == 100 and result["epochs"] == 3
    assert sorted(p.name for p in folder.glob("epoch-*")) == [
        "epoch-003.optim.safetensors", "epoch-003.safetensors"]
    model = create_model("resnet20", pretrained=str(folder / "best.safetensors"))
    assert model.card.params == 269_722


def test_imagenet_augmentation_trains_at_the_model_resolution(tiny_cifar_folder, tmp_path):
    # Train images are decoded at 32/0.875 = 37 px and randomly cropped back to 32; val and test
    # keep the plain 32 px view.
    recipe = _recipe(tiny_cifar_folder, "train.epochs=1", "data.augment=imagenet")
    result = Trainer(recipe, tmp_path).run()
    assert result["epochs"] == 1 and result["test"]["samples"] == 100


def test_training_lowers_the_loss(tiny_cifar_folder, tmp_path):
    # Without augmentation, 150 images are memorised: the loss must fall well below its start.
    recipe = _recipe(tiny_cifar_folder, "train.epochs=8", "train.warmup_epochs=0",
                     "train.batch_size=25", "data.augment=none")
    losses = [row["train_loss"] for row in Trainer(recipe, tmp_path).run()["curve"]]
    assert losses[-1] < losses[0] * 0.5


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tiny_cifar_folder, tmp_path):
    overrides = [f"data.dataset={tiny_cifar_folder}", *TINY, "train.epochs=4",
                 "train.precision=fp32"]
    command = [sys.executable, "-m", "edgecnn.cli", "train",
               str(REPO_ROOT / "recipes" / "resnet20_cifar10.yaml"),
               *[arg for o in overrides for arg in ("--set", o)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = subprocess.run([*command, "--out", str(tmp_path / "ref")], env=env,
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr
    # Start again elsewhere and kill it once two epochs are committed.
    proc = subprocess.Popen([*command, "--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "train" / "last.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if last.exists() and json.loads(last.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(last.read_text())["epoch"]
    assert 2 <= killed_at < 4, "the run finished before it could be killed"
    resumed = subprocess.run([*command, "--out", str(tmp_path / "killed")], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming resnet20_cifar10 after epoch {killed_at}" in resumed.stdout
    ref_w = load_file(str(tmp_path / "ref" / "train" / "best.safetensors"))
    res_w = load_file(str(tmp_path / "killed" / "train" / "best.safetensors"))
    assert ref_w.keys() == res_w.keys()
    assert all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)


def test_resume_refuses_a_different_recipe(tiny_cifar_folder, tmp_path):
    from edgecnn.errors import EdgeCNNError

    Trainer(_recipe(tiny_cifar_folder, "train.epochs=1"), tmp_path).run()
    with pytest.raises(EdgeCNNError, match="different recipe; use --force"):
        Trainer(_recipe(tiny_cifar_folder, "train.epochs=2"), tmp_path).run()
    Trainer(_recipe(tiny_cifar_folder, "train.epochs=2"), tmp_path).run(restart=True)


def test_finetune_recipe_trains_only_the_head(tiny_cifar_folder, tmp_path, shared):
    recipe = _recipe(tiny_cifar_folder, "train.epochs=2", name="resnet20_finetune_head.yaml")
    assert recipe.train.freeze == "backbone" and recipe.model.reset_classifier
    start = create_model("resnet20", pretrained=str(
        shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th")).state_dict()
    Trainer(recipe, tmp_path).run()
    trained = load_file(str(tmp_path / "train" / "best.safetensors"))
    backbone = [k for k in start if not k.startswith("linear.")]
    assert len(backbone) > 100
    # Weights and BatchNorm statistics of the backbone are exactly the checkpoint's.
    assert all(torch.equal(trained[k], start[k]) for k in backbone)
    assert not torch.equal(trained["linear.weight"], start["linear.weight"])

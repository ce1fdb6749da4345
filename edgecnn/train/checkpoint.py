"""Training checkpoints that survive being killed at any moment.

Each epoch writes ``epoch-NNN.safetensors`` (model), ``epoch-NNN.optim.safetensors`` (optimizer
tensors) and then, last, ``last.json`` naming them with the epoch, scheduler and history. Every
file is written to a temporary name and renamed, and ``last.json`` is the commit point: a run
killed mid-write resumes from the previous complete epoch. No pickle is written or read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from edgecnn.atomic import atomic_write_json

# the weights-file format is the models layer's (pruned checkpoints write it too)
from edgecnn.models.weights_file import save_tensors

LAST = "last.json"
BEST = "best.safetensors"


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], info: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for flat, value in list(tensors.items()) + list(info["scalars"].items()):
        index, _, key = flat.partition(".")
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}


def save_epoch(folder: Path, epoch: int, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, record: dict[str, Any]) -> None:
    """Write epoch ``epoch``'s checkpoint, commit it in ``last.json``, drop the one before."""
    folder.mkdir(parents=True, exist_ok=True)
    weights, optim = f"epoch-{epoch:03d}.safetensors", f"epoch-{epoch:03d}.optim.safetensors"
    save_tensors(folder / weights, model.state_dict())
    tensors, optim_info = _optimizer_tensors(optimizer)
    save_tensors(folder / optim, tensors)
    previous = read_last(folder)
    atomic_write_json(folder / LAST, {**record, "epoch": epoch, "weights": weights,
                                      "optimizer": optim, "optimizer_info": optim_info})
    if previous and previous["epoch"] != epoch:
        for name in (previous["weights"], previous["optimizer"]):
            (folder / name).unlink(missing_ok=True)


def read_last(folder: Path) -> dict[str, Any] | None:
    path = folder / LAST
    return json.loads(path.read_text()) if path.is_file() else None


def restore(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
            ) -> dict[str, Any]:
    """Load the committed checkpoint into ``model`` and ``optimizer``; return its record."""
    record = read_last(folder)
    assert record is not None
    model.load_state_dict(load_file(str(folder / record["weights"])), strict=True)
    tensors = load_file(str(folder / record["optimizer"]))
    optimizer.load_state_dict(_optimizer_state(tensors, record["optimizer_info"]))
    return record

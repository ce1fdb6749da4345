"""Structured channel pruning: whole channels removed, so a dense CNN really gets faster.

torch-pruning's dependency graph (DepGraph) decides which tensors must lose the same channels --
across residual additions, depthwise convolutions, squeeze-excitation blocks and DenseNet
concatenations -- so the pruned model stays consistent. edgecnn chooses what to ask for: a
channel ratio (per layer, or global) or a target fraction of the model's mult-adds, the
importance criterion, and what must not be pruned: the classifier's outputs (the class count)
and, implicitly, the stem's inputs (the image channels are not prunable). A model with an
operation DepGraph cannot follow offers an equivalent form it can (its ``make_prunable()``, e.g.
ResNet-20's zero-padding shortcuts as selection convolutions), applied before pruning and before
loading a pruned checkpoint.

MACs are counted with edgecnn's own profiler, the same count the reports show.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgecnn._optional import require
from edgecnn.errors import EdgeCNNError

IMPORTANCES = ("l1", "l2", "bn_scale", "taylor")
# A MACs target is reached in steps of this channel ratio (finer: closer to the target, slower).
MACS_TARGET_STEP = 0.02
MAX_CHANNEL_RATIO = 0.9


@dataclass
class PruneResult:
    params_before: int
    macs_before: int
    params_after: int
    macs_after: int
    importance: str
    steps: int

    @property
    def macs_fraction(self) -> float:
        return self.macs_after / self.macs_before

    def to_dict(self) -> dict:
        return {**asdict(self), "macs_fraction": self.macs_fraction}


def channel_multiple(round_to: int | str | None) -> int | None:
    """``round_to`` as a number: 'auto' is the channel block of ONNX Runtime's NCHWc convolution
    kernels on this CPU (16 floats with AVX-512, 8 with AVX2). ONNX Runtime converts a
    convolution to its blocked layout only when its channel counts are multiples of the block;
    others run unblocked, with layout reorders around them, which made arbitrary pruned widths
    slower than the dense model (benchmarks/README.md, pruning)."""
    if round_to != "auto":
        return round_to
    from edgecnn.bench.context import cpu_vector_extensions

    return 16 if "avx512f" in cpu_vector_extensions() else 8


def count(model: nn.Module, resolution: int) -> tuple[int, int]:
    """(params, MACs) of ``model`` at ``resolution``, on a meta-device copy."""
    from edgecnn.profile import profile_model

    profile = profile_model(copy.deepcopy(model).to("meta"), resolution)
    return profile.params, profile.macs


# Set on a model put in its prunable form, so a saved checkpoint says which form it holds.
PRUNABLE_FORM = "edgecnn_prunable_form"


def make_prunable(model: nn.Module) -> None:
    """Put ``model`` in the form DepGraph can follow, if it declares one (``make_prunable``)."""
    convert = getattr(model, "make_prunable", None)
    if callable(convert):
        convert()
        setattr(model, PRUNABLE_FORM, True)


def constant_layer_pruners(model: nn.Module) -> dict[type, object]:
    """torch-pruning pruners for layers whose weights are constants of the architecture
    (``constant_weights = True``: ResNet-20's selection shortcuts). They lose channels like
    any convolution, but through a pruner of their own, so the importance criteria skip them:
    0/1 weights say nothing about a channel's worth, and they have no gradient for Taylor."""
    tp = require("torch_pruning", "structured pruning")
    pruner = tp.pruner.function.ConvPruner()
    # by type: torch-pruning 1.6 matches its customized pruners with isinstance
    return {type(m): pruner for m in model.modules() if getattr(m, "constant_weights", False)}


def kept_layers(model: nn.Module, patterns: Sequence[str]) -> list[nn.Module]:
    """The layers named by ``prune.keep_layers`` (shell-style patterns over module names, e.g.
    ``layer*.conv2``), whose output channels the user wants kept; each pattern must match."""
    names = [name for name, module in model.named_modules()
             if name and isinstance(module, (nn.Conv2d, nn.Linear))]
    modules = dict(model.named_modules())
    kept = []
    for pattern in patterns:
        matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            raise EdgeCNNError(f"prune.keep_layers pattern {pattern!r} matches no convolution or "
                               f"linear layer of {type(model).__name__}; its layers are named "
                               f"like {', '.join(names[:4])}")
        kept += [modules[name] for name in matched]
    return kept


def classifier_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose outputs are the classes: never pruned."""
    card = getattr(model, "card", None)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if card is not None:
        heads = [m for m in linears if m.out_features == card.num_classes]
        if heads:
            return heads
    return linears[-1:]


def _importance(name: str):
    tp = require("torch_pruning", "structured pruning")
    if name not in IMPORTANCES:
        raise EdgeCNNError(f"prune.importance {name!r} is not one of {', '.join(IMPORTANCES)}")
    return {"l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn_scale": tp.importance.BNScaleImportance,
            "taylor": tp.importance.GroupTaylorImportance}[name]()


def prune_channels(model: nn.Module, resolution: int, *, ratio: float | None = None,
                   macs_fraction: float | None = None, importance: str = "l1",
                   global_pruning: bool = False, round_to: int | None = None,
                   keep_layers: Sequence[str] = (),
                   taylor_batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> PruneResult:
    """Prune ``model`` in place to ``ratio`` of each layer's channels removed, or until its MACs
    are at most ``macs_fraction`` of what they were, never removing output channels of the
    layers ``keep_layers`` names. ``taylor`` importance needs a labelled batch (gradients of the
    loss)."""
    tp = require("torch_pruning", "structured pruning")
    if (ratio is None) == (macs_fraction is None):
        raise EdgeCNNError("give exactly one of prune.ratio and prune.macs_fraction")
    if ratio is not None and not 0 < ratio <= MAX_CHANNEL_RATIO:
        raise EdgeCNNError(f"prune.ratio must be in (0, {MAX_CHANNEL_RATIO}], got {ratio}")
    if macs_fraction is not None and not 0 < macs_fraction < 1:
        raise EdgeCNNError(f"prune.macs_fraction must be in (0, 1), got {macs_fraction}")
    if importance == "taylor" and taylor_batch is None:
        raise EdgeCNNError("taylor importance needs a batch of training images")
    params_before, macs_before = count(model, resolution)  # as built, before make_prunable
    make_prunable(model)
    ignored = classifier_layers(model) + kept_layers(model, keep_layers)
    in_chans = getattr(getattr(model, "card", None), "in_chans", 3)
    example = torch.zeros(1, in_chans, resolution, resolution)
    if ratio is not None:
        steps, target_ratio = 1, ratio
    else:
        steps = round(MAX_CHANNEL_RATIO / MACS_TARGET_STEP)
        target_ratio = MAX_CHANNEL_RATIO
    was_training = model.training
    model.eval()
    pruner = tp.pruner.BasePruner(
        model, example, importance=_importance(importance), global_pruning=global_pruning,
        pruning_ratio=target_ratio, iterative_steps=steps,
        ignored_layers=ignored, round_to=round_to,
        customized_pruners=constant_layer_pruners(model))
    done = 0
    for _ in range(steps):
        if importance == "taylor":
            model.zero_grad()
            x, y = taylor_batch
            torch.nn.functional.cross_entropy(model(x), y).backward()
        pruner.step()
        done += 1
        if macs_fraction is not None and count(model, resolution)[1] <= macs_fraction * macs_before:
            break
    model.zero_grad(set_to_none=True)
    make_prunable(model)  # torch-pruning rebuilds pruned parameters trainable: re-freeze constants
    model.train(was_training)
    params_after, macs_after = count(model, resolution)
    if macs_fraction is not None and macs_after > macs_fraction * macs_before:
        raise EdgeCNNError(f"pruning {MAX_CHANNEL_RATIO:.0%} of the channels leaves "
                           f"{macs_after / macs_before:.0%} of the MACs, above "
                           f"prune.macs_fraction {macs_fraction}")
    return PruneResult(params_before, macs_before, params_after, macs_after, importance, done)

"""Changing a built model for transfer learning: its classifier, and freezing its first stages.

These work on every family without per-family code: the classifier is the last ``nn.Linear``,
and the stages are the blocks of ``features`` (MobileNet, EfficientNet, DenseNet) or the
top-level children (ResNets), with the stem's loose conv/BN leaves grouped as the first stage.
"""

from __future__ import annotations

from torch import nn

from edgecnn.errors import EdgeCNNError


def classifier_name(model: nn.Module) -> str:
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise EdgeCNNError(f"{type(model).__name__} has no linear classifier to replace")
    return linears[-1]


def replace_classifier(model: nn.Module, num_classes: int) -> nn.Linear:
    """A freshly initialised classifier with ``num_classes`` outputs in place of the old one."""
    name = classifier_name(model)
    old = model.get_submodule(name)
    new = nn.Linear(old.in_features, num_classes, device=old.weight.device)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return new


def backbone_stages(model: nn.Module) -> list[list[nn.Module]]:
    """The backbone as an ordered list of stages, each a list of modules; classifier excluded."""
    head = classifier_name(model).split(".")[0]
    features = getattr(model, "features", None)
    children = (list(features.children()) if isinstance(features, nn.Sequential)
                else [m for n, m in model.named_children() if n != head])
    stages: list[list[nn.Module]] = []
    stem: list[nn.Module] = []
    for module in children:
        if not any(p.numel() for p in module.parameters()):
            continue
        if next(module.children(), None) is None and not stages:
            stem.append(module)  # loose conv/bn leaves before the first block: the stem
            continue
        if stem:
            stages.append(stem)
            stem = []
        stages.append([module])
    if stem:
        stages.append(stem)
    return stages


def freeze(model: nn.Module, what: str | int) -> list[nn.Module]:
    """Freeze ``"backbone"`` (all but the classifier) or the first N stages; returns them.

    Frozen modules get ``requires_grad=False``; the trainer also keeps them in eval mode, so
    their BatchNorm statistics stay those of the checkpoint.
    """
    if what == "none" or what == 0:
        return []
    stages = backbone_stages(model)
    if what == "backbone":
        chosen = stages
    else:
        if not isinstance(what, int) or what > len(stages):
            raise EdgeCNNError(f"train.freeze: this model has {len(stages)} stages; got {what!r}")
        chosen = stages[:what]
    frozen = [m for stage in chosen for m in stage]
    for module in frozen:
        module.requires_grad_(False)
    return frozen

"""The model registry: every architecture by name, with what a deployment needs to know of it.

A family module registers a builder with :func:`register_model`; :func:`create_model` is the one
way to build a model (so the CIFAR stem, separable rewrite and checkpoint loading apply uniformly).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgeCNNError, closest

if TYPE_CHECKING:
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FAMILIES = ("resnet", "cifar_resnet", "densenet", "mobilenet", "efficientnet", "searchable")
SEPARABLE_MODES = ("depthwise", "spatial")


@dataclass(frozen=True)
class ModelSpec:
    """What is known of an architecture before it is built.

    ``torchvision_name`` is set where our module has exactly torchvision's state_dict keys and
    shapes (checked against ../shared/reference by the tests).
    """

    name: str
    family: str
    builder: Callable[..., nn.Module] = field(repr=False)
    resolution: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    description: str = ""
    torchvision_name: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCard:
    """What a built model carries (``model.card``): its spec as built, and how it was built.

    ``params`` counts every parameter (torchvision's ``num_params``); mult-adds depend on the
    input resolution and are computed on demand by :meth:`macs`, on the meta device.
    """

    name: str
    family: str
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    in_chans: int
    params: int
    build_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)

    def macs(self, resolution: int | None = None) -> int:
        """Mult-adds of one image at ``resolution`` (default: the model's own)."""
        from edgecnn.profile import profile_model

        meta_model = create_model(self.name, device="meta", **self.build_kwargs)
        return profile_model(meta_model, resolution or self.resolution).macs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "resolution": self.resolution,
            "mean": list(self.mean), "std": list(self.std), "num_classes": self.num_classes,
            "in_chans": self.in_chans, "params": self.params, "build_kwargs": self.build_kwargs,
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, family: str, resolution: int, **spec_fields: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(num_classes=, in_chans=, cifar_stem=, **options) -> nn.Module``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; add it to FAMILIES")

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name, family=family, builder=builder, resolution=resolution, **spec_fields
        )
        return builder

    return decorate


def _ensure_families_imported() -> None:
    # Importing the family modules runs their @register_model decorators.
    from edgecnn._optional import require

    require("torch", "building a model")
    from edgecnn.models import (  # noqa: F401
        cifar_resnet,
        densenet,
        efficientnet,
        mobilenet,
        resnet,
        searchable,
    )


def list_models(family: str | None = None) -> list[str]:
    """Registered names, in registration order (families grouped), optionally of one family."""
    _ensure_families_imported()
    if family is not None and family not in FAMILIES:
        raise EdgeCNNError(f"unknown model family {family!r}; valid: {', '.join(FAMILIES)}")
    names = [n for n, s in _REGISTRY.items() if family is None or s.family == family]
    # Families in the order of FAMILIES, each in registration order (sorted() is stable).
    return sorted(names, key=lambda n: FAMILIES.index(_REGISTRY[n].family))


def get_spec(name: str) -> ModelSpec:
    _ensure_families_imported()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EdgeCNNError(
            f"unknown architecture {name!r}; {closest(name, list(_REGISTRY))}"
        ) from None


class ModelOptionsError(EdgeCNNError):
    """A family's builder refused an option's value (``width_mult=0``, a string for a number)."""


def create_model(
    name: str,
    pretrained: str | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    cifar_stem: bool = False,
    separable: str | None = None,
    resolution: int | None = None,
    device: Any = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered architecture, optionally loading a checkpoint.

    Args:
        pretrained: a checkpoint file (torchvision ``.pth``, CIFAR-ResNet ``.th``,
            EfficientNet-PyTorch layout, or ``.safetensors``), loaded with ``weights_only=True``
            and ``strict=True``; a mismatch raises an error naming the missing/unexpected keys.
        num_classes: classifier outputs (default: the spec's, 1000 for ImageNet models).
        cifar_stem: a 3x3 stride-1 stem with no early downsampling, for 32x32 inputs.
        separable: ``"depthwise"`` or ``"spatial"`` rewrites every full k x k convolution
            (k > 1, groups 1) except the stem (see :mod:`edgecnn.models.separable`).
        resolution: the input size this model is meant for (recorded in ``model.card``).
        device: where to build; ``"meta"`` builds shapes only, for counting.
        overrides: family options such as ``width_mult`` or ``phi``.
    """
    spec = get_spec(name)  # checks that torch is installed
    import torch

    if separable is not None and separable not in SEPARABLE_MODES:
        raise EdgeCNNError(
            f"separable={separable!r} is not valid; use one of {', '.join(SEPARABLE_MODES)}"
        )
    if num_classes is not None and num_classes < 1:
        raise EdgeCNNError(f"num_classes must be >= 1, got {num_classes}")
    if in_chans < 1:
        raise EdgeCNNError(f"in_chans must be >= 1, got {in_chans}")
    kwargs = {**spec.defaults, **overrides}
    n_cls = spec.num_classes if num_classes is None else num_classes
    _check_overrides(spec, overrides)
    with torch.device(device) if device is not None else nullcontext():
        try:
            model = spec.builder(num_classes=n_cls, in_chans=in_chans, cifar_stem=cifar_stem,
                                 **kwargs)
        except (ValueError, TypeError) as exc:
            # a family refusing an option value (width_mult=0, a kernel of 4) is the user's
            # input, said in one line; the builder's own exception stays the cause
            given = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "its defaults"
            raise ModelOptionsError(f"{name} cannot be built with {given}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if separable is not None:
            from edgecnn.models.separable import make_separable

            make_separable(model, separable)
    if pretrained is not None:
        from edgecnn.models.checkpoints import load_checkpoint

        load_checkpoint(model, pretrained)
    default_res = getattr(model, "default_resolution", None) or spec.resolution
    if cifar_stem and resolution is None:
        default_res = 32
    build_kwargs = dict(overrides, num_classes=n_cls, in_chans=in_chans, cifar_stem=cifar_stem,
                        separable=separable)
    model.card = ModelCard(  # type: ignore[assignment]
        name=name, family=spec.family, resolution=resolution or default_res,
        mean=getattr(model, "mean", spec.mean), std=getattr(model, "std", spec.std),
        num_classes=n_cls, in_chans=in_chans,
        params=sum(p.numel() for p in model.parameters()), build_kwargs=build_kwargs,
    )
    return model


def _check_overrides(spec: ModelSpec, overrides: dict[str, Any]) -> None:
    """Reject options the builder does not take, naming the ones it does."""
    params = inspect.signature(spec.builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        valid = sorted(set(params) - {"num_classes", "in_chans", "cifar_stem"})
        raise EdgeCNNError(
            f"{spec.name}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid) or 'none'}"
        )

"""The user's own model: ``package.module:function`` returning an ``nn.Module``.

A recipe's ``model.entry`` names a function the user wrote (``mynets.py: def small_net(...)``);
it is imported with the recipe's folder first on the import path, called with ``model.kwargs``,
and the module it returns gets the same :class:`~edgecnn.models.registry.ModelCard` a registered
architecture carries, so training, pruning, every export and every quantizer treat it alike.
The card's origin is recorded with the sha256 of the function's source file, so a changed file
is a new model to the build's caches.

What the function does not declare comes from the recipe: the input resolution
(``model.resolution``, or the module's ``default_resolution`` attribute) and the normalisation
(``data.mean``/``data.std``, or the module's ``mean``/``std`` attributes); without them the
build stops, since a guessed normalisation gives a model that silently misclassifies.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgeCNNError, first_line

if TYPE_CHECKING:
    from collections.abc import Iterator

    from torch import nn

FAMILY = "custom"


@dataclass(frozen=True)
class EntryPoint:
    """A resolved entry point: the function, and the file that defines it."""

    text: str
    function: Any
    source_file: Path | None

    def source_sha256(self) -> str | None:
        from edgecnn.hashing import sha256_file

        return sha256_file(self.source_file) if self.source_file else None


@contextmanager
def _import_path(folder: str | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with suppress(ValueError):
            sys.path.remove(folder)


def resolve_entry(text: str, search_path: str | None = None) -> EntryPoint:
    """Import ``package.module:function``; every failure is one error naming the entry point."""
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise EdgeCNNError(f"model.entry {text!r} must look like package.module:function")
    with _import_path(search_path):
        try:
            module = importlib.import_module(module_name)
        # the user's module may raise anything while importing, even SystemExit
        except (Exception, SystemExit) as exc:
            where = f" (searched {search_path} first)" if search_path else ""
            raise EdgeCNNError(f"model.entry {text!r}: module {module_name!r} does not import"
                               f"{where}: {type(exc).__name__}: {first_line(exc)}") from exc
    function = getattr(module, attr, None)
    if function is None:
        public = sorted(n for n, v in vars(module).items()
                        if callable(v) and not n.startswith("_"))[:12]
        raise EdgeCNNError(f"model.entry {text!r}: module {module_name!r} has no {attr!r}; its "
                           f"callables: {', '.join(public) or 'none'}")
    if not callable(function):
        raise EdgeCNNError(f"model.entry {text!r}: {attr!r} is a {type(function).__name__}, "
                           "not a function that returns an nn.Module")
    source = getattr(module, "__file__", None)
    return EntryPoint(text, function, Path(source).resolve() if source else None)


def build_entry_model(entry: EntryPoint, kwargs: dict[str, Any], *, num_classes: int,
                      in_chans: int, resolution: int | None,
                      mean: tuple | None, std: tuple | None, device: Any = None) -> nn.Module:
    """Call the entry point and give the module its card.

    ``num_classes`` is passed when the function takes it and ``kwargs`` does not set it, so a
    model written for any class count fits the recipe's dataset.
    """
    from contextlib import nullcontext

    import torch
    from torch import nn

    from edgecnn.models.registry import ModelCard

    call = dict(kwargs)
    params = inspect.signature(entry.function).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "num_classes" not in call and ("num_classes" in params or takes_any):
        call["num_classes"] = num_classes
    try:
        with torch.device(device) if device is not None else nullcontext():
            model = entry.function(**call)
    except (Exception, SystemExit) as exc:  # the user's constructor: a bad kwarg, ...
        raise EdgeCNNError(f"model.entry {entry.text!r} with kwargs {kwargs} raised "
                           f"{type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise EdgeCNNError(f"model.entry {entry.text!r} returned a {type(model).__name__}, "
                           "not an nn.Module")
    res = resolution or getattr(model, "default_resolution", None)
    if not isinstance(res, int) or res < 1:
        raise EdgeCNNError(f"model.entry {entry.text!r} declares no input size (no "
                           "default_resolution attribute); set model.resolution")
    model_mean, model_std = mean or getattr(model, "mean", None), std or getattr(model, "std",
                                                                                  None)
    if model_mean is None or model_std is None:
        raise EdgeCNNError(f"model.entry {entry.text!r} declares no input normalisation (no "
                           "mean/std attributes); set data.mean and data.std")
    model.card = ModelCard(  # type: ignore[assignment]
        name=f"entry:{entry.text}", family=FAMILY, resolution=res,
        mean=tuple(model_mean), std=tuple(model_std),
        num_classes=num_classes, in_chans=in_chans,
        params=sum(p.numel() for p in model.parameters()), build_kwargs=dict(kwargs))
    return model


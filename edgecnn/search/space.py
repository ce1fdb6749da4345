"""From a search space to recipes: what an Optuna trial picks, the cheapest point of the
space, and the recipe of a candidate for the latency phase (untrained) or the accuracy phase
(trained with the base recipe's schedule)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from edgecnn.recipe.loading import set_field, validate_recipe
from edgecnn.recipe.schema import Recipe
from edgecnn.search.spec import SearchFile, Space, as_choices

ARCH = "searchable_mbconv"


def suggest(trial, space: Space) -> dict[str, Any]:
    """The recipe's model section for ``trial`` (an ``optuna.Trial``): every choice with more
    than one value is a categorical parameter named after its place (``s2.kernel``)."""
    def pick(name: str, values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else trial.suggest_categorical(name, values)

    stages = [{field: pick(f"s{i}.{field}", values)
               for field, values in stage.choices().items()}
              for i, stage in enumerate(space.stages)]
    return model_section(space, pick("resolution", as_choices(space.resolution)),
                         pick("stem", as_choices(space.stem)), pick("head", as_choices(space.head)),
                         stages)


def cheapest(space: Space) -> dict[str, Any]:
    """The point of the space with the fewest channels, blocks, the smallest kernels and
    expansion, no SE and the lowest resolution: if it misses a MACs, parameter or latency
    budget, so does every other point."""
    stages = []
    for stage in space.stages:
        choices = stage.choices()
        picked = {field: min(values) for field, values in choices.items()
                  if field not in ("activation", "se", "stride")}
        picked["se"] = False not in choices["se"]
        picked["stride"] = max(choices["stride"])  # downsampling early is cheaper
        # relu6 is the cheapest activation on every runtime; otherwise the first choice
        picked["activation"] = ("relu6" if "relu6" in choices["activation"]
                                else choices["activation"][0])
        stages.append(picked)
    return model_section(space, min(as_choices(space.resolution)), min(as_choices(space.stem)),
                         min(as_choices(space.head)), stages)


def model_section(space: Space, resolution: int, stem: int, head: int,
                  stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"arch": ARCH, "cifar_stem": space.cifar_stem, "resolution": resolution,
            "options": {"stem": stem, "head": head, "dropout": space.dropout, "stages": stages}}


def candidate_key(model: dict[str, Any]) -> str:
    """A name for a candidate from what it is: the same architecture proposed twice (or again
    after a killed search) is built once."""
    text = json.dumps(model, sort_keys=True, separators=(",", ":"))
    return "c-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def candidate_recipe(base: dict[str, Any], spec: SearchFile, model: dict[str, Any] | None,
                     name: str, run_dir: Path, folder: Path, *, trained: bool,
                     proxy: bool = True) -> Recipe:
    """The base recipe with the candidate's model and (``proxy``) the search's ``set``
    (``model=None``: the reference recipe as it is), built only for the objective's backend.
    Untrained, for the latency phase: random weights (the same graph and kernels, so the
    same latency) and no accuracy-aware fallback, which random weights cannot judge."""
    raw = copy.deepcopy(base)
    if model is not None:
        raw["model"] = copy.deepcopy(model)
    if model is not None and proxy:
        for key, value in spec.set.items():  # the proxy training: candidates only
            set_field(raw, key, copy.deepcopy(value), f"search {spec.name} set")
    objective = spec.objective
    export = raw.setdefault("export", {})
    export["targets"] = [objective.backend]
    bench = raw.setdefault("benchmark", {})
    bench.update(backends=[objective.backend], batch_sizes=[objective.batch],
                 threads=objective.threads)
    bench.pop("device", None)
    if not trained:
        raw.pop("train", None)
        raw.pop("prune", None)
        if isinstance(raw.get("model"), dict):
            raw["model"].pop("pretrained", None)
        if isinstance(raw.get("quantize"), dict):
            raw["quantize"]["max_accuracy_drop"] = None
    raw["name"], raw["output"] = name, str(run_dir)
    return validate_recipe(raw, f"search {spec.name} candidate {name}", folder)

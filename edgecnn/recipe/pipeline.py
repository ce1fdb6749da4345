"""The build: a recipe's stages run in order into a run directory, each one resumable.

A stage writes its files into ``RUN_DIR/<stage>/`` and then, last, ``manifest.json``: what it
was built from (its recipe sections, the sha256 of its input artifacts, library versions) and
the sha256 of what it wrote. A rerun skips a stage whose manifest matches what it would be built
from now and whose outputs are intact; anything else is rebuilt, so a build killed at any point
resumes and ends with the same artifacts. ``force`` rebuilds everything.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edgecnn import __version__
from edgecnn.atomic import atomic_write_json
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file
from edgecnn.recipe import inputs
from edgecnn.recipe.schema import Recipe
from edgecnn.recipe.variants import variants
from edgecnn.rundir import MANIFEST, RECIPE_FILE, read_manifest
from edgecnn.targets.context import versions

# Raised when what stages write or summarise changes shape, so that run directories of an older
# edgecnn are rebuilt rather than misread (trainings are reused from the cache either way).
BUILD_FORMAT = 2


@dataclass
class BuildContext:
    recipe: Recipe
    run_dir: Path
    console: Console
    # Summaries of the stages done so far (from their manifests), by stage name.
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    _dataset_content: str | None = field(default=None, repr=False)

    def dataset_content(self) -> str:
        """The digest of what the recipe's dataset holds (:mod:`edgecnn.data.fingerprint`),
        computed once per build: a stage whose data changed is rebuilt."""
        if self._dataset_content is None:
            from edgecnn.data.fingerprint import dataset_fingerprint

            self._dataset_content = dataset_fingerprint(self.recipe.data.dataset)
        return self._dataset_content

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def artifact(self, stage: str, key: str) -> Path:
        """A file a finished stage produced, by the key it gave it in its summary."""
        return self.run_dir / self.done[stage]["artifacts"][key]

    # What a target's own stage reads of the build (edgecnn.targets.base.BuildInputs); the
    # recipe's stages call the same functions of edgecnn.recipe.inputs directly.

    def variants(self) -> list[str]:
        return variants(self.recipe)

    def load_model(self, variant: str):
        return inputs.load_model(self, variant)

    def check_images(self) -> np.ndarray:
        return inputs.check_images(self)

    def calibration_array(self) -> np.ndarray:
        return inputs.calibration_images(self).images

    def resolution(self) -> int:
        return inputs.resolution(self)

    def rel(self, path: Path) -> str:
        return inputs.rel(self, path)


@dataclass(frozen=True)
class Stage:
    """One step of the build.

    ``sections`` names the recipe sections (``export``) or fields (``benchmark.threads``) it
    reads, and nothing else of the recipe may change what it writes: a change to another field
    leaves it cached; ``inputs`` lists the earlier stages' artifacts it reads; ``run`` writes
    into the stage folder and returns a summary whose ``artifacts`` maps keys to paths relative
    to the run directory.
    """

    name: str
    sections: tuple[str, ...]
    run: Callable[[BuildContext, Path], dict[str, Any]]
    inputs: Callable[[BuildContext], list[Path]] = lambda ctx: []
    enabled: Callable[[Recipe], bool] = lambda recipe: True
    keep_partial: bool = False  # the stage resumes its own partial work (training)
    # Facts of this machine the stage's output depends on (a TensorRT engine: the GPU and the
    # TensorRT version); a change rebuilds the stage.
    environment: Callable[[BuildContext], dict[str, Any]] = lambda ctx: {}


def stage_fingerprint(stage: Stage, ctx: BuildContext) -> dict[str, Any]:
    recipe = ctx.recipe.model_dump(mode="json")
    data = {"dataset_content": ctx.dataset_content()} if "data" in stage.sections else {}
    return {
        "stage": stage.name, "edgecnn": __version__, "format": BUILD_FORMAT,
        "recipe": {s: recipe_field(recipe, s) for s in stage.sections}, **data,
        "inputs": {_display(p, ctx.run_dir): sha256_file(p) for p in stage.inputs(ctx)},
        "environment": stage.environment(ctx),
    }


def recipe_field(recipe: dict[str, Any], dotted: str) -> Any:
    """A section (``export``) or a field (``benchmark.threads``) of a dumped recipe."""
    node: Any = recipe
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _display(path: Path, run_dir: Path) -> str:
    # Artifacts of the run by their place in it; outside files (a checkpoint) by their path.
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def _intact(manifest: dict[str, Any], run_dir: Path) -> bool:
    return all((run_dir / rel).is_file() and sha256_file(run_dir / rel) == digest
               for rel, digest in manifest["outputs"].items())


def plan(stages: list[Stage], ctx: BuildContext) -> list[tuple[Stage, str]]:
    """(stage, 'skip: disabled' | 'run' | 'cached') for a dry run; inputs of later stages are not
    known before earlier ones run, so a stage after one that runs shows 'run'."""
    rows, rebuilding = [], False
    for stage in stages:
        if not stage.enabled(ctx.recipe):
            rows.append((stage, "skipped (not in the recipe)"))
            continue
        manifest = read_manifest(ctx.stage_dir(stage.name))
        cached = False
        if manifest and not rebuilding:
            try:
                cached = (manifest["fingerprint"] == stage_fingerprint(stage, ctx)
                          and _intact(manifest, ctx.run_dir))
            except (KeyError, FileNotFoundError):
                cached = False
        if cached:
            ctx.done[stage.name] = manifest["summary"]
        rebuilding = rebuilding or not cached
        rows.append((stage, "cached" if cached else "run"))
    return rows


def run_stages(stages: list[Stage], ctx: BuildContext, force: bool = False) -> dict[str, Any]:
    """Run (or skip, when cached) every stage into ``ctx.run_dir``, which the caller has claimed
    (:class:`edgecnn.rundir.RunDirectory`). A stage that fails leaves no folder behind, except a
    stage that resumes its own partial work (training) when it is interrupted."""
    atomic_write_json(ctx.run_dir / RECIPE_FILE, ctx.recipe.model_dump(mode="json"))
    for stage in stages:
        folder = ctx.stage_dir(stage.name)
        if not stage.enabled(ctx.recipe):
            ctx.console.print(f"[dim]{stage.name:<10} skipped (not in the recipe)[/dim]")
            continue
        _check_stage_folder(folder, stage.name)
        fingerprint = stage_fingerprint(stage, ctx)
        manifest = None if force else read_manifest(folder)
        if manifest and manifest.get("fingerprint") == fingerprint and _intact(manifest,
                                                                               ctx.run_dir):
            ctx.done[stage.name] = manifest["summary"]
            ctx.console.print(f"{stage.name:<10} cached ({manifest['finished']})")
            continue
        (folder / MANIFEST).unlink(missing_ok=True)
        if folder.exists() and not (stage.keep_partial and not force):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ctx.console.print(f"[bold]{stage.name:<10}[/bold] running")
        started = time.time()
        try:
            summary = stage.run(ctx, folder)
        except BaseException as exc:
            # What resume uses are finished stages (with manifests); a half-made folder would
            # only look like one. An interrupted training keeps its checkpoints to resume from.
            if not (stage.keep_partial and isinstance(exc, KeyboardInterrupt)):
                shutil.rmtree(folder, ignore_errors=True)
            raise
        outputs = {rel: sha256_file(ctx.run_dir / rel)
                   for rel in summary.get("artifacts", {}).values()}
        ctx.done[stage.name] = summary
        atomic_write_json(folder / MANIFEST, {
            "fingerprint": fingerprint, "summary": summary, "outputs": outputs,
            "versions": versions(), "seconds": round(time.time() - started, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()),
        })
        ctx.console.print(f"{stage.name:<10} done in {time.time() - started:.1f} s")
    return ctx.done


def _check_stage_folder(folder: Path, stage: str) -> None:
    """A file or link where a stage writes its folder is not edgecnn's to delete."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise EdgeCNNError(f"{folder} is a {'link' if folder.is_symlink() else 'file'} where "
                           f"the {stage} stage writes its folder; move it out of the run "
                           "directory")

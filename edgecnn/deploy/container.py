"""``edgecnn container RUN_DIR``: a Docker build context for the on-device run.

TensorRT engines must be built on the device that runs them, so the context carries what they
are built from -- the run's ONNX artifacts (FP32, an FP16 copy, INT8 for ONNX Runtime, INT8 in
TensorRT's Q/DQ layout; those of the pruned model when the recipe prunes), its recipe, a small
evaluation subset (uint8 images and labels, so the device needs no dataset) -- plus edgecnn's own
source for the torch-free install, and the Dockerfile. ``context.json`` lists every file with its
sha256; ``COMMANDS.md`` gives the exact ``docker build`` / ``docker run`` lines. The context is
written to a temporary folder and renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn import __version__
from edgecnn.artifacts import DENSE, PRUNED, file_stem, split_name, suffix
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file
from edgecnn.rundir import read_manifest
from edgecnn.settings import REPO_ROOT

if TYPE_CHECKING:
    from edgecnn.recipe.schema import Recipe

DOCKERFILE = REPO_ROOT / "Dockerfile.jetson"
# The quantize stage's artifacts the on-device run uses (edgecnn.deploy.device_run).
DEVICE_MODELS = ("int8", "int8_tensorrt")
# JetPack release -> the l4t-jetpack base image it runs on (NGC). JetPack 7 (L4T r38, Thor) has
# no l4t-jetpack image: give its base with --base-image.
JETPACK_BASES = {"6.0": "nvcr.io/nvidia/l4t-jetpack:r36.3.0",
                 "6.1": "nvcr.io/nvidia/l4t-jetpack:r36.4.0"}
IMAGE = "edgecnn-device"
DEFAULT_EVAL_IMAGES = 1000


def _base_image(jetpack: str, base_image: str | None) -> str:
    if base_image:
        return base_image
    if jetpack not in JETPACK_BASES:
        raise EdgeCNNError(f"--jetpack {jetpack} has no known base image (known: "
                           f"{', '.join(JETPACK_BASES)}); give one with --base-image")
    return JETPACK_BASES[jetpack]


def _finished(run_dir: Path, stage: str) -> dict[str, Any]:
    manifest = read_manifest(run_dir / stage)
    if manifest is None:
        raise EdgeCNNError(f"{run_dir} has no finished {stage} stage; run `edgecnn build` on its "
                           "recipe first")
    return manifest["summary"]


def _eval_subset(recipe, card: dict, images: int):
    from edgecnn.data import load_split

    data = recipe.data
    split = load_split(data.dataset, data.eval_split, size=card["resolution"],
                       val_size=data.val_size, seed=data.split_seed)
    count = min(images, len(split))
    # evenly spaced over the split, so every class is represented as in the full split
    picks = np.linspace(0, len(split) - 1, count).round().astype(np.int64)
    return split.subset(picks, f"{split.description}, {count} evenly spaced images"), picks


def write_context(run_dir: Path, out: Path, recipe: Recipe, *, jetpack: str = "6.1",
                  base_image: str | None = None, eval_images: int = DEFAULT_EVAL_IMAGES,
                  force: bool = False) -> dict[str, Any]:
    """Write the build context of the run ``run_dir`` into ``out``; returns its context.json.
    ``recipe``: the run's own (:func:`edgecnn.recipe.loading.load_run_recipe`)."""
    from edgecnn.quantize.modelopt_fp16 import fp16_onnx

    if not DOCKERFILE.is_file():
        raise EdgeCNNError(f"{DOCKERFILE} not found: `edgecnn container` runs from a source "
                           "checkout of edgecnn (pip install -e .)")
    run_dir = Path(run_dir)
    card = _finished(run_dir, "model")
    export = _finished(run_dir, "export")
    quantize = read_manifest(run_dir / "quantize")
    # The model to deploy: the pruned one when the recipe pruned, else the dense one.
    pruned = read_manifest(run_dir / "prune")
    variant = PRUNED if pruned is not None else DENSE
    size = pruned["summary"] if pruned is not None else card
    base = _base_image(jetpack, base_image)
    if eval_images < 1:
        raise EdgeCNNError(f"--eval-images must be >= 1, got {eval_images}")
    if out.exists() and not force:
        raise EdgeCNNError(f"{out} exists; choose another --out or pass --force to replace it")
    if out.exists() and not (out.is_dir() and (out / "context.json").is_file()):
        # --force replaces a context this command wrote, never another folder or file
        raise EdgeCNNError(f"{out} exists and is not an edgecnn container context (no "
                           "context.json); --force only replaces a context: choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    except OSError as exc:
        raise EdgeCNNError(f"--out {out} cannot be written: {exc.strerror}") from exc
    try:
        models = staging / "models"
        models.mkdir()
        files = {"fp32": models / "model.fp32.onnx"}
        shutil.copy2(run_dir / export["artifacts"][f"fp32{suffix(variant)}"], files["fp32"])
        files["fp16"] = fp16_onnx(files["fp32"], models / "model.fp16.onnx")
        if quantize is not None:
            for name, rel in quantize["summary"]["artifacts"].items():
                plain, of_variant = split_name(name)
                # the device runs ONNX Runtime and TensorRT, and sees one model, plainly named
                if of_variant == variant and plain in DEVICE_MODELS:
                    files[plain] = models / Path(rel).name.replace(f"{file_stem(variant)}.",
                                                                   "model.")
                    shutil.copy2(run_dir / rel, files[plain])
        subset, picks = _eval_subset(recipe, card, eval_images)
        (staging / "eval").mkdir()
        np.savez_compressed(staging / "eval" / "subset.npz", images=subset.images,
                            labels=subset.labels, classes=np.asarray(subset.classes))
        (staging / "recipe.yaml").write_text(_yaml(recipe.model_dump(mode="json")))
        _copy_source(staging / "src")
        shutil.copy2(DOCKERFILE, staging / "Dockerfile")
        commands = {
            "build": f"docker build --build-arg BASE_IMAGE={base} --build-arg JETPACK={jetpack} "
                     f"-t {IMAGE} {out}",
            "run": f'docker run --rm --runtime nvidia -v "$PWD/results:/results" {IMAGE}',
            "without_docker": f"pip install '{out}/src[runtime,tensorrt-runtime]' && "
                              f"edgecnn device-run {out} --results results",
        }
        context = {
            "edgecnn_version": __version__, "recipe": recipe.name, "arch": card["name"],
            "variant": variant, "params": size["params"], "macs": size["macs"],
            "resolution": card["resolution"], "mean": card["mean"], "std": card["std"],
            "classes": card["classes"], "source_run": str(run_dir.resolve()),
            "models": {k: f"models/{p.name}" for k, p in files.items()},
            "eval": {"file": "eval/subset.npz", "images": len(subset),
                     "description": subset.description,
                     "indices_sha256": _sha256_bytes(picks.tobytes())},
            "tensorrt": recipe.export.tensorrt.model_dump(mode="json"),
            "benchmark": recipe.benchmark.model_dump(mode="json"),
            "jetpack": jetpack, "base_image": base, "commands": commands,
            "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        (staging / "COMMANDS.md").write_text(_commands_text(context))
        context["files"] = {str(p.relative_to(staging)): sha256_file(p)
                            for p in sorted(staging.rglob("*")) if p.is_file()}
        (staging / "context.json").write_text(json.dumps(context, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return context


def _copy_source(target: Path) -> None:
    """edgecnn's package and pyproject, enough for `pip install src[runtime,tensorrt-runtime]`."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, target / name)
    shutil.copytree(REPO_ROOT / "edgecnn", target / "edgecnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def _commands_text(context: dict) -> str:
    c = context["commands"]
    return (f"# On-device run of {context['recipe']} ({context['arch']})\n\n"
            f"On the Jetson (JetPack {context['jetpack']}, base image {context['base_image']}):\n\n"
            f"    {c['build']}\n    mkdir -p results && {c['run']}\n\n"
            "Results: results/results.json (rows in the shape of report.json, plus the device: "
            "Jetson model, L4T/JetPack, TensorRT, power mode, clocks, temperatures; a field that "
            "cannot be read is null, with the reason under `unavailable`).\n\n"
            f"Without Docker (a Jetson with JetPack's TensorRT):\n\n    {c['without_docker']}\n")

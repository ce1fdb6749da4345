"""A recipe's ``model.onnx``: a classifier graph another tool made, deployed as it is.

The model stage describes it from the graph alone (params and MACs counted from its nodes by
:mod:`edgecnn.profile.onnx_counting`, resolution and classes from its input and output), with the
normalisation the recipe states; the export stage brings it into edgecnn's form
(:mod:`edgecnn.export.onnx_import`: opset upgraded, input ``input``, dynamic batch, edgecnn's
metadata) and checks the result against the given file on real images, as a torch export is
checked against its torch model. Quantize, evaluate, benchmark, report and container then work
on it as on any exported model; what needs the torch model is refused by the schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.inputs import rel
from edgecnn.settings import resolve_path

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext
    from edgecnn.recipe.schema import Recipe

FAMILY = "onnx"


def onnx_source(recipe: Recipe) -> Path:
    return Path(resolve_path(recipe.model.onnx))


def onnx_card(recipe: Recipe, classes: list[str]) -> dict[str, Any]:
    """What the build knows of the graph before touching it: its signature and its counts."""
    from edgecnn.hashing import sha256_file
    from edgecnn.profile.onnx_counting import count_onnx

    m, d = recipe.model, recipe.data
    source = onnx_source(recipe)
    info = check_onnx_model(recipe, dry_import=False)  # preflight did the import already
    resolution = m.resolution or info.resolution
    if len(classes) != info.num_classes:
        raise EdgeCNNError(f"model.onnx {source} outputs {info.num_classes} classes, but "
                           f"dataset {d.dataset!r} has {len(classes)}; evaluate it on data of "
                           "its own classes")
    counts = count_onnx(source, resolution)
    return {"name": f"onnx:{source.name}", "family": FAMILY, "resolution": resolution,
            "mean": list(d.mean), "std": list(d.std), "num_classes": info.num_classes,
            "in_chans": info.in_chans, "params": counts.params, "macs": counts.macs,
            "build_kwargs": {}, "classes": classes,
            "onnx": {"source": str(source), "sha256": sha256_file(source),
                     "opset": info.opset, "input_name": info.input_name,
                     "batch": info.batch}}


def check_onnx_model(recipe: Recipe, dry_import: bool = True):
    """The graph's signature, checked against the recipe: one clear error per problem. With
    ``dry_import`` (validate, preflight) the whole import also runs into a temporary folder --
    opset conversion, dynamic batch, numeric check -- so a graph the export stage would refuse
    stops the build before it creates anything."""
    from edgecnn.export.onnx_import import inspect_onnx

    m, d = recipe.model, recipe.data
    source = onnx_source(recipe)
    info = inspect_onnx(source)
    if info.in_chans != m.in_chans:
        raise EdgeCNNError(f"model.onnx {source} takes {info.in_chans} input channels, but "
                           f"model.in_chans is {m.in_chans}; set model.in_chans: "
                           f"{info.in_chans}")
    if info.resolution is None and m.resolution is None:
        raise EdgeCNNError(f"model.onnx {source} has a symbolic input size; set "
                           "model.resolution")
    if info.resolution is not None and m.resolution not in (None, info.resolution):
        raise EdgeCNNError(f"model.onnx {source} takes {info.resolution}x{info.resolution} "
                           f"images, but model.resolution is {m.resolution}; drop "
                           "model.resolution or set it to that size")
    if d.mean is None or d.std is None:
        raise EdgeCNNError(f"model.onnx {source}: an ONNX file does not say how its inputs are "
                           "normalised; set data.mean and data.std (images are scaled to [0, 1] "
                           "first)")
    if dry_import:
        import tempfile

        from edgecnn.export.onnx_import import import_onnx

        with tempfile.TemporaryDirectory(prefix="edgecnn-onnx-check-") as work:
            import_onnx(source, Path(work) / "model.onnx", opset=recipe.export.onnx.opset,
                        resolution=m.resolution or info.resolution, in_chans=m.in_chans,
                        metadata={})
    return info


def import_checked(ctx: BuildContext, folder: Path, x: np.ndarray) -> dict[str, Any]:
    """The export stage of an ONNX model: the graph in edgecnn's form, then compared with the
    given file on the check images ``x`` (fed at the given graph's own batch)."""
    from edgecnn.artifacts import ArtifactKey
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.export.onnx_import import import_onnx

    card, cfg = ctx.done["model"], ctx.recipe.export.onnx
    source = onnx_source(ctx.recipe)
    path = folder / "model.fp32.onnx"
    metadata = {
        "edgecnn_version": __version__, "arch": card["name"],
        "num_classes": str(card["num_classes"]), "mean": json.dumps(card["mean"]),
        "std": json.dumps(card["std"]), "layout": "NCHW", "resolution": str(card["resolution"]),
        "in_chans": str(card["in_chans"]), "input_range": "RGB in [0, 1], then (x - mean) / std",
    }
    imported = import_onnx(source, path, opset=cfg.opset, resolution=card["resolution"],
                           in_chans=card["in_chans"], metadata=metadata)
    batch = card["onnx"]["batch"]
    step = batch if isinstance(batch, int) else len(x)
    usable = len(x) - len(x) % step
    if usable == 0:
        raise EdgeCNNError(f"model.onnx {source} has a fixed batch of {step}, more than the "
                           f"{len(x)} check images; raise export.onnx.check_samples to {step}")
    reference_runner = OnnxRuntimeRunner(source)
    reference = np.concatenate([reference_runner.run(x[i:i + step])
                                for i in range(0, usable, step)])
    exported = OnnxRuntimeRunner(path).run(x[:len(reference)])
    diff = float(np.abs(reference - exported).max())
    agree = float((reference.argmax(1) == exported.argmax(1)).mean() * 100)
    ctx.console.print(f"  {path.name}: from {source.name} (opset {imported.opset_before} -> "
                      f"{imported.opset_after}, input {imported.input_name_before!r}, batch "
                      f"{imported.batch_before} -> dynamic); given vs imported graph on "
                      f"{len(reference)} test images: max |diff| {diff:.2e}, top-1 agreement "
                      f"{agree:.1f}%")
    if not diff <= cfg.max_abs_diff:
        raise EdgeCNNError(f"the imported {path.name} differs from {source} by {diff:.3e} "
                           f"(> export.onnx.max_abs_diff {cfg.max_abs_diff})")
    check = {"max_abs_diff": diff, "top1_agreement": agree}
    backends = ["onnxruntime"] + (["openvino"] if "openvino" in ctx.recipe.export.targets
                                  else [])
    return {"opset": imported.opset_after, "simplifier": None, "max_abs_diff": diff,
            "top1_agreement": agree, "check_samples": len(reference),
            "checks": {"dense": check}, "metadata": metadata, "imported": imported.to_dict(),
            "artifacts": {"fp32": rel(ctx, path)},
            "runs": {str(ArtifactKey(b, "fp32")): "fp32" for b in backends}}

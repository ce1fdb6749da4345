"""Torch -> ONNX: dynamic batch, named input/output, metadata in the file, simplified, checked.

The export uses torch's maintained exporter (``torch.onnx.export(dynamo=True)``, built on
torch.export), writes one self-contained file, records in ``metadata_props`` what a deployment
needs to feed the model (arch, mean/std, layout, class count, resolution, edgecnn version), and
simplifies with onnxslim (pure Python; recorded in the result) before the ONNX checker runs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MIN_OPSET = 17


@dataclass
class OnnxExport:
    path: Path
    opset: int
    simplifier: str | None
    metadata: dict[str, str]
    nodes_before: int
    nodes_after: int


def model_metadata(model: nn.Module, resolution: int) -> dict[str, str]:
    card = model.card
    return {
        "edgecnn_version": __version__, "arch": card.name, "num_classes": str(card.num_classes),
        "mean": json.dumps(list(card.mean)), "std": json.dumps(list(card.std)),
        "layout": "NCHW", "resolution": str(resolution), "in_chans": str(card.in_chans),
        "input_range": "RGB in [0, 1], then (x - mean) / std",
    }


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def export_onnx(
    model: nn.Module, path: Path, resolution: int, *, opset: int = 18,
    dynamic_batch: bool = True, simplify: bool = True, extra_metadata: dict[str, Any] | None = None,
) -> OnnxExport:
    """Export ``model`` (eval mode, CPU) to ``path`` atomically; see the module docstring."""
    import onnx
    import torch

    if opset < MIN_OPSET:
        raise EdgeCNNError(f"export.onnx.opset must be >= {MIN_OPSET}, got {opset}")
    model = model.eval().cpu()
    card = model.card
    example = torch.randn(2, card.in_chans, resolution, resolution)
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # The exporter logs every phase at INFO level; keep the build output to our own lines.
        logging.getLogger("torch.onnx").setLevel(logging.WARNING)
        # It also warns that torchvision's detection ops (nms, roi_align, ...) cannot be
        # registered without torchvision; no classification model here uses them.
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # torch 2.13's own pytree deprecation, raised inside torch.export, not by our code.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                                    category=FutureWarning)
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=True, dynamic_shapes=_arg_shapes(model, dynamic),
                external_data=False, verbose=False, report=False,
            )
        program.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp))
        nodes_before = len(proto.graph.node)
        simplifier = None
        if simplify:
            proto, simplifier = _simplify(proto)
        meta = {**model_metadata(model, resolution), **{k: str(v) for k, v in
                                                         (extra_metadata or {}).items()}}
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except EdgeCNNError:
        raise
    except Exception as exc:
        raise EdgeCNNError(f"ONNX export of {card.name} failed: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return OnnxExport(path, opset, simplifier, meta, nodes_before, len(proto.graph.node))


def _arg_shapes(model: nn.Module, dynamic: dict | None) -> dict | None:
    """torch.export names dynamic shapes by the forward argument's name, which varies."""
    import inspect

    if dynamic is None:
        return None
    first = next(iter(inspect.signature(model.forward).parameters))
    return {first: dynamic["x"]}


def _simplify(proto: Any) -> tuple[Any, str]:
    import onnxslim

    slim = onnxslim.slim(proto)
    return slim, f"onnxslim {onnxslim.__version__}"

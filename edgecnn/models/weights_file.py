"""Model weights as safetensors files with edgecnn's metadata: written atomically, the same
bytes for the same inputs. Used by training checkpoints and pruned models alike (no pickle is
written or read)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from edgecnn.atomic import commit, temporary_path

# safetensors stores metadata as a hash map whose key order changes from process to process, so
# a file with several keys has different bytes each time it is written; all of edgecnn's metadata
# travels as one sorted JSON string under this key, and identical inputs give identical files.
METADATA_KEY = "edgecnn"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None
                 ) -> None:
    tmp = temporary_path(path)
    packed = {METADATA_KEY: json.dumps(meta, sort_keys=True)} if meta else None
    try:
        # safetensors refuses tensors that share memory; contiguous clones avoid that.
        save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(tmp),
                  metadata=packed)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, path)


def unpack_metadata(raw: dict[str, str] | None) -> dict[str, str]:
    """The metadata :func:`save_tensors` wrote (files of older versions: their plain keys)."""
    raw = raw or {}
    if set(raw) == {METADATA_KEY}:
        try:
            meta = json.loads(raw[METADATA_KEY])
        except ValueError:
            return raw
        return meta if isinstance(meta, dict) else raw
    return raw

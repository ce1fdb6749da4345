"""Top-1, top-5 and per-class accuracy of any runner on a split, and agreement between runners.

Numpy only (no torch), so the runtime-only install evaluates ONNX and TensorRT artifacts too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.backends.base import Runner
from edgecnn.data.eval_batches import eval_batches
from edgecnn.data.splits import ImageSet


@dataclass
class EvalResult:
    top1: float
    top5: float
    per_class: dict[str, float]
    samples: int
    predictions: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "top5": self.top5, "samples": self.samples,
                "per_class": self.per_class}


def evaluate(runner: Runner, data: ImageSet, mean, std, batch_size: int = 256,
             progress: Any = None) -> EvalResult:
    """Accuracy in percent over every image of ``data`` (no sample is dropped)."""
    top1_hits = top5_hits = 0
    predictions = []
    for x, labels in eval_batches(data, batch_size, mean, std):
        logits = runner.run(x)
        k = min(5, logits.shape[1])
        topk = np.argpartition(-logits, k - 1, axis=1)[:, :k] if k < logits.shape[1] else (
            np.argsort(-logits, axis=1))
        best = logits.argmax(axis=1)
        top1_hits += int((best == labels).sum())
        top5_hits += int((topk == labels[:, None]).any(axis=1).sum())
        predictions.append(best)
        if progress is not None:
            progress(len(labels))
    pred = np.concatenate(predictions)
    per_class = {}
    for index, name in enumerate(data.classes):
        mask = data.labels == index
        if mask.any():
            # hits * 100 / count, so 949 of 1000 reads 94.9 rather than 94.89999999999999
            per_class[name] = int((pred[mask] == index).sum()) * 100 / int(mask.sum())
    n = len(data)
    return EvalResult(100.0 * top1_hits / n, 100.0 * top5_hits / n, per_class, n, pred)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Percent of samples on which two runners give the same top-1 class (e.g. FP32 vs INT8)."""
    if a.shape != b.shape:
        raise ValueError(f"prediction arrays differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("agreement needs at least one prediction")
    return int((a == b).sum()) * 100 / a.size

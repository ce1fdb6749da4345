"""Which artifact to ship per backend: never an INT8 model that is not faster than its FP32 one.

INT8 (or FP16) costs some accuracy; it is worth shipping only where it buys speed on the runtime
that will run it. On small, overhead-bound models (the demo's 7.8 M-MAC MobileNet v2 at batch 1)
or with Q/DQ laid out for another runtime it can tie or lose. For every backend and model
variant, the precisions the build measured side by side (same alternating rounds) are compared at
each batch size, and the fastest is recommended only if it beats FP32 by at least ``MIN_GAIN``: a
smaller difference is within what these shared machines wander between rounds, and then FP32
loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.report.tables import variant_label
from edgecnn.targets.registry import cpu_runtime_names

MIN_GAIN = 0.05  # a lower precision must be at least 5% faster than FP32 to be worth its cost


@dataclass(frozen=True)
class ArtifactChoice:
    artifact: str
    reason: str
    faster_than_reference: bool


def choose_artifact(p50_ms: dict[str, float], *, reference: str = "fp32",
                    min_gain: float = MIN_GAIN) -> ArtifactChoice:
    """The fastest of ``p50_ms`` (candidate -> median latency), unless none beats ``reference``
    by more than ``min_gain`` (a fraction), in which case the reference is kept."""
    if reference not in p50_ms:
        raise EdgeCNNError(f"latency of the reference artifact {reference!r} is missing; "
                           f"measured: {', '.join(p50_ms) or 'none'}")
    if any(v <= 0 for v in p50_ms.values()):
        raise EdgeCNNError(f"latencies must be positive, got {p50_ms}")
    base = p50_ms[reference]
    candidates = {k: v for k, v in p50_ms.items() if k != reference}
    if not candidates:
        return ArtifactChoice(reference, "nothing else was measured", False)
    best = min(candidates, key=candidates.get)
    ratio = candidates[best] / base
    if ratio <= 1.0 - min_gain:
        return ArtifactChoice(best, f"{best} runs at {ratio:.2f}x the {reference} time", True)
    return ArtifactChoice(
        reference, f"not faster than {reference}: the best, {best}, runs at {ratio:.2f}x its "
                   f"time (needs <= {1 - min_gain:.2f}x); {reference} loses no accuracy", False)


def recommend(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One recommendation per (backend, variant, batch size) with FP32 and another precision,
    and a note for every place where INT8 is not faster than FP32."""
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        group = groups.setdefault((row["backend"], variant_label(row)), {})
        group[row["precision"]] = row
    picks, notes = [], []
    for (backend, variant), by_precision in groups.items():
        if "fp32" not in by_precision or len(by_precision) < 2:
            continue
        batches = set.intersection(*(set(r.get("latency", {})) for r in by_precision.values()))
        slower = []
        for batch in sorted(batches, key=int):
            p50 = {p: r["latency"][batch]["p50_ms"] for p, r in by_precision.items()}
            choice = choose_artifact(p50)
            picks.append({"backend": backend, "variant": variant, "batch": int(batch),
                          "precision": choice.artifact,
                          "artifact": by_precision[choice.artifact]["artifact"],
                          "reason": choice.reason})
            if "int8" in p50 and p50["int8"] > p50["fp32"] * (1 - MIN_GAIN):
                slower.append(f"batch {batch} ({p50['int8']:.3f} vs {p50['fp32']:.3f} ms)")
        if slower:
            where = backend if variant == "dense" else f"{backend} ({variant})"
            notes.append(f"INT8 is not faster than FP32 on {where} at {', '.join(slower)}: "
                         "ship FP32 there")
    return picks, notes


# Runtimes that run on the host CPU: the candidates of "which artifact is fastest on this CPU".
# (TensorRT runs on a GPU; the torch rows are the eager baseline, not a deployment artifact.)
CPU_BACKENDS = cpu_runtime_names()


def fastest_on_cpu(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model (run and variant), batch size and machine: the fastest artifact across every
    CPU runtime measured, with its top-1 drop against the model's FP32 reference (the FP32
    ONNX in ONNX Runtime) and its latency against the FP32 artifact of its own runtime -- the
    answer to "what do I ship on this CPU?", where :func:`recommend` answers per runtime."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["backend"] not in CPU_BACKENDS:
            continue
        for batch, stats in row.get("latency", {}).items():
            key = (row["run"], variant_label(row), int(batch),
                   (row.get("context") or {}).get("cpu"))
            groups.setdefault(key, []).append({**row, "_p50": stats["p50_ms"]})
    picks = []
    for (run, variant, batch, _), candidates in groups.items():
        best = min(candidates, key=lambda r: r["_p50"])
        reference = next((r for r in candidates if r["backend"] == "onnxruntime"
                          and r["precision"] == "fp32"), None)
        own_fp32 = next((r for r in candidates if r["backend"] == best["backend"]
                         and r["precision"] == "fp32"), None)
        drop = (reference["top1"] - best["top1"]
                if reference and reference.get("top1") is not None
                and best.get("top1") is not None else None)
        picks.append({"run": run, "variant": variant, "batch": batch,
                      "backend": best["backend"], "precision": best["precision"],
                      "artifact": best["artifact"], "p50_ms": best["_p50"],
                      "top1": best.get("top1"), "top1_drop": drop,
                      "vs_own_fp32": best["_p50"] / own_fp32["_p50"] if own_fp32 else None,
                      "runtimes": sorted({r["backend"] for r in candidates})})
    return sorted(picks, key=lambda p: (p["run"], p["variant"], p["batch"]))

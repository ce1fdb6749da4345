"""The report of one build: one row per artifact, written as report.json, report.md and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.atomic import atomic_write_bytes, atomic_write_json
from edgecnn.report.plots import plot_accuracy
from edgecnn.report.recommend import fastest_on_cpu
from edgecnn.report.tables import fastest_table, markdown_table, recommendation_table

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext


def build_rows(ctx: BuildContext, artifacts: dict[str, Path]) -> list[dict[str, Any]]:
    """One row per benchmarked artifact; ``artifacts`` maps artifact keys to their files."""
    from edgecnn.artifacts import PRUNED, ArtifactKey

    card = ctx.done["model"]
    evaluation = ctx.done["evaluate"]["results"]
    bench = ctx.done["benchmark"]
    pruned = ctx.done.get("prune", {})
    rows = []
    for key, per_batch in bench["results"].items():
        backend, precision, variant = ArtifactKey.parse(key)
        if backend == "torch":
            # The torch model is not evaluated on its own: the export stage proved the FP32
            # ONNX computes the same function (max |diff| within its tolerance).
            acc = evaluation.get(str(ArtifactKey("onnxruntime", "fp32", variant)), {})
            artifact = _torch_weights(ctx, variant)
        else:
            acc = evaluation.get(key, {})
            artifact = artifacts[key]
        size = card if variant != PRUNED else pruned
        rows.append({
            "run": ctx.recipe.name, "arch": card["name"],
            "artifact": str(artifact.relative_to(ctx.run_dir)
                            if artifact.is_relative_to(ctx.run_dir) else artifact),
            "precision": precision, "backend": backend, "variant": variant,
            "params": size["params"], "macs": size["macs"], "resolution": card["resolution"],
            "file_bytes": artifact_bytes(artifact) if backend != "torch" else None,
            "top1": acc.get("top1"), "top5": acc.get("top5"),
            "agreement_with_fp32": acc.get("agreement_with_fp32", 100.0 if precision == "fp32"
                                           else None),
            "eval_split": ctx.done["evaluate"]["split"],
            "latency": per_batch, "context": bench["context"],
        })
    return rows


def artifact_bytes(path: Path) -> int:
    """What the model takes on disk: an OpenVINO IR is its .xml and its .bin weights."""
    size = path.stat().st_size
    weights = path.with_suffix(".bin")
    return size + weights.stat().st_size if path.suffix == ".xml" and weights.is_file() else size


def _torch_weights(ctx: BuildContext, variant: str) -> Path:
    from edgecnn.artifacts import PRUNED

    if variant == PRUNED:
        return ctx.artifact("prune", "weights")
    return (ctx.artifact("train", "weights") if "train" in ctx.done
            else Path(ctx.recipe.model.pretrained or "random-init"))


def build_notes(ctx: BuildContext) -> list[str]:
    """Targets of the recipe that produced nothing here, and why; what pruning did."""
    targets = ctx.done.get("compile", {}).get("targets", {})
    notes = [data_note(ctx)]
    notes += [f"target {name} stopped: {t['reason']}" for name, t in targets.items()
              if t.get("status") == "stopped"]
    if "prune" in ctx.done:
        notes.append(pruning_note(ctx.done["prune"]))
    for variant, record in ctx.done.get("quantize", {}).get("variants", {}).items():
        for target, info in record.items():
            if isinstance(info, dict) and info.get("accuracy_aware"):
                notes.append(fallback_note(target, variant, info["accuracy_aware"]))
    return notes


def coverage_notes(ctx: BuildContext, recommended: list[dict[str, Any]]) -> list[str]:
    """Beside "ship FP32": for every INT8 artifact that is not faster than FP32 at some batch,
    what its runtime left outside the int8 kernels (the benchmark stage's ``int8_coverage``),
    so the user sees which ops to change."""
    from edgecnn.artifacts import ArtifactKey

    slow = {(p["backend"], p["variant"]) for p in recommended if p["precision"] == "fp32"}
    notes = []
    for key, coverage in ctx.done["benchmark"].get("int8_coverage", {}).items():
        artifact = ArtifactKey.parse(key)
        if (artifact.backend, artifact.variant) in slow:
            notes.append(f"why INT8 is not faster on {artifact.backend}"
                         + (f" ({artifact.variant})" if artifact.variant != "dense" else "")
                         + f": {coverage['description']}")
    return notes


def data_note(ctx: BuildContext) -> str:
    """Which images every accuracy was measured on, and which calibrated the INT8 models: a
    reader must see that the two do not overlap."""
    evaluate = ctx.done["evaluate"]
    text = f"top-1 measured on {evaluate['split']}"
    quantize = ctx.done.get("quantize")
    if quantize:
        text += (f"; INT8 calibrated on {quantize['samples']} images of "
                 f"{quantize['calibration_split']}")
        if quantize.get("selection"):
            text += f"; accuracy-aware choice on {quantize['selection']}"
    return text


def fallback_note(target: str, variant: str, aware: dict[str, Any]) -> str:
    """One line: what the accuracy-aware mode returned to float, and what that cost."""
    layers = aware.get("fallback_layers") or []
    text = (f"int8 {target} ({variant}), accuracy-aware (max drop "
            f"{aware['max_accuracy_drop']}): selection top-1 FP32 {aware['fp32_top1']:.2f}%, "
            f"INT8 {aware['top1']:.2f}%")
    if not layers:
        return text + "; no layer returned to float"
    text += (f"; {len(layers)} layer(s) in float: {', '.join(layers[:8])}"
             + (" ..." if len(layers) > 8 else ""))
    p50 = aware.get("p50_ms")
    if p50:
        text += (f"; p50 b1 FP32 {p50['fp32']:.3f} ms, full INT8 {p50['int8_full']:.3f} ms, "
                 f"with float layers {p50['int8_fallback']:.3f} ms")
    return text


def pruning_note(prune: dict[str, Any]) -> str:
    """One line: how the pruned variant was made and what its fine-tuning cost."""
    text = (f"pruned ({prune['method']}): params {prune['params_before']:,} -> "
            f"{prune['params']:,}, MACs {prune['macs_before']:,} -> {prune['macs']:,} "
            f"({prune['macs_fraction']:.2f} of dense) in {len(prune['steps'])} step(s)")
    if prune.get("finetune_epochs"):
        text += (f"; fine-tuned {prune['finetune_epochs']} epoch(s) in "
                 f"{prune['finetune_seconds']:.0f} s")
    else:
        text += "; not fine-tuned"
    if prune["method"] == "unstructured":
        text += f"; {prune['steps'][-1]['note']}"
    if prune["method"] == "two_four":  # params and MACs count the zeros: say what is sparse
        step = prune["steps"][-1]
        text += (f"; {step['pruned_layers']} layers 2:4-sparse, {len(step['dense_layers'])} "
                 "left dense (depthwise, or inputs not a multiple of 4)")
    return text


def _recommendation_section(picks: list[dict[str, Any]] | None) -> str:
    """The build's recommendation (report.json's ``recommended``) in report.md too: the reader
    of the Markdown report is the one deciding what to ship. None (a merged report of several
    builds or devices, which recommends nothing) adds nothing."""
    if picks is None:
        return ""
    if not picks:
        return "\n## Recommended\n\nNo backend measured FP32 beside another precision.\n"
    return f"\n## Recommended\n\n{recommendation_table(picks)}\n"


def _fastest_section(picks: list[dict[str, Any]]) -> str:
    """Across runtimes: which artifact is fastest on this CPU, per model and batch, and what
    it costs in top-1 (where more than one CPU runtime was measured)."""
    shown = [p for p in picks if len(p["runtimes"]) > 1]
    if not shown:
        return ""
    return f"\n## Fastest on this CPU, across runtimes\n\n{fastest_table(shown)}\n"


def write_report(rows: list[dict[str, Any]], folder: Path, title: str,
                 notes: list[str] | None = None, extra: dict[str, Any] | None = None,
                 json_name: str = "report.json") -> dict[str, Path]:
    """report.json (or ``json_name``, with ``extra`` keys), report.md and the two plots."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / json_name, "markdown": folder / "report.md",
             "plot_macs": folder / "top1_vs_macs.png",
             "plot_latency": folder / "top1_vs_latency.png"}
    fastest = fastest_on_cpu(rows)
    atomic_write_json(files["json"], {"title": title, "rows": rows, "notes": notes or [],
                                      "fastest_on_cpu": fastest, **(extra or {})})
    context = rows[0]["context"] if rows else {}
    text = (f"# {title}\n\n{markdown_table(rows)}\n\nMeasured on {context.get('cpu')} "
            f"({', '.join(context.get('cpu_extensions') or []) or 'no SIMD flags read'}; "
            f"{context.get('logical_cores')} logical cores, threads "
            f"{context.get('threads') or 'default'}), {context.get('os')}; "
            f"libraries {json.dumps(context.get('libraries', {}))}.\n"
            + "".join(f"\n- {note}" for note in notes or []) + ("\n" if notes else "")
            + _recommendation_section((extra or {}).get("recommended"))
            + _fastest_section(fastest))
    atomic_write_bytes(files["markdown"], text.encode())
    plot_accuracy(rows, "macs", files["plot_macs"], title)
    plot_accuracy(rows, "latency", files["plot_latency"], title)
    return files

"""The report of one build: one row per artifact, written as report.json, report.md and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.atomic import atomic_write_bytes, atomic_write_json
from edgecnn.report.plots import plot_accuracy
from edgecnn.report.tables import markdown_table

if TYPE_CHECKING:
    from edgecnn.recipe.pipeline import BuildContext


def build_rows(ctx: BuildContext, artifacts: dict[str, Path]) -> list[dict[str, Any]]:
    """One row per benchmarked artifact; ``artifacts`` maps 'backend/precision' to its file."""
    card = ctx.done["model"]
    evaluation = ctx.done["evaluate"]["results"]
    bench = ctx.done["benchmark"]
    rows = []
    for key, per_batch in bench["results"].items():
        backend, precision = key.split("/")
        if backend == "torch":
            # The torch model is not evaluated on its own: the export stage proved the FP32
            # ONNX computes the same function (max |diff| within its tolerance).
            acc = evaluation.get("onnxruntime/fp32", {})
            artifact = (ctx.artifact("train", "weights") if "train" in ctx.done
                        else Path(ctx.recipe.model.pretrained or "random-init"))
        else:
            acc = evaluation.get(key, {})
            artifact = artifacts[key]
        rows.append({
            "run": ctx.recipe.name, "arch": card["name"],
            "artifact": str(artifact.relative_to(ctx.run_dir)
                            if artifact.is_relative_to(ctx.run_dir) else artifact),
            "precision": precision, "backend": backend, "params": card["params"],
            "macs": card["macs"], "resolution": card["resolution"],
            "file_bytes": artifact.stat().st_size if backend != "torch" else None,
            "top1": acc.get("top1"), "top5": acc.get("top5"),
            "agreement_with_fp32": acc.get("agreement_with_fp32", 100.0 if precision == "fp32"
                                           else None),
            "eval_split": ctx.done["evaluate"]["split"],
            "latency": per_batch, "context": bench["context"],
        })
    return rows


def build_notes(ctx: BuildContext) -> list[str]:
    """Targets of the recipe that produced nothing here, and why."""
    targets = ctx.done.get("compile", {}).get("targets", {})
    return [f"target {name} stopped: {t['reason']}" for name, t in targets.items()
            if t.get("status") == "stopped"]


def write_report(rows: list[dict[str, Any]], folder: Path, title: str,
                 notes: list[str] | None = None, extra: dict[str, Any] | None = None,
                 json_name: str = "report.json") -> dict[str, Path]:
    """report.json (or ``json_name``, with ``extra`` keys), report.md and the two plots."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / json_name, "markdown": folder / "report.md",
             "plot_macs": folder / "top1_vs_macs.png",
             "plot_latency": folder / "top1_vs_latency.png"}
    atomic_write_json(files["json"], {"title": title, "rows": rows, "notes": notes or [],
                                      **(extra or {})})
    context = rows[0]["context"] if rows else {}
    text = (f"# {title}\n\n{markdown_table(rows)}\n\nMeasured on {context.get('cpu')} "
            f"({', '.join(context.get('cpu_extensions') or []) or 'no SIMD flags read'}; "
            f"{context.get('logical_cores')} logical cores, threads "
            f"{context.get('threads') or 'default'}), {context.get('os')}; "
            f"libraries {json.dumps(context.get('libraries', {}))}.\n"
            + "".join(f"\n- {note}" for note in notes or []) + ("\n" if notes else ""))
    atomic_write_bytes(files["markdown"], text.encode())
    plot_accuracy(rows, "macs", files["plot_macs"], title)
    plot_accuracy(rows, "latency", files["plot_latency"], title)
    return files

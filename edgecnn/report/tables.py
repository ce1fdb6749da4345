"""Rows of a report as a Markdown table (the one ``edgecnn build`` prints) or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from edgecnn.profile.summary import human, human_bytes

COLUMNS = ("run", "precision", "backend", "top1", "agreement", "params", "MACs", "size",
           "p50 b1 (ms)", "best img/s")


def _p50(row: dict[str, Any], batch: str = "1") -> float | None:
    stats = row.get("latency", {}).get(batch)
    return stats["p50_ms"] if stats else None


def _cells(row: dict[str, Any]) -> list[str]:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}%"

    p50 = _p50(row)
    best = max((s["throughput"] for s in row.get("latency", {}).values()), default=None)
    return [
        row["run"], row["precision"], row["backend"], pct(row.get("top1")),
        pct(row.get("agreement_with_fp32")), human(row["params"]), human(row["macs"]),
        human_bytes(row["file_bytes"]) if row.get("file_bytes") else "-",
        "-" if p50 is None else f"{p50:.3f}", "-" if best is None else f"{best:.0f}",
    ]


def device_label(row: dict[str, Any]) -> str:
    """Where a row was measured: the device-run's label, else the GPU for GPU backends, else the
    CPU model from the run context."""
    if row.get("device"):
        return row["device"]
    context = row.get("context") or {}
    gpus = context.get("gpus") or []
    if row.get("backend") == "tensorrt" and gpus:
        return gpus[0].get("name", "GPU")
    return context.get("cpu") or "unknown device"


def variant_label(row: dict[str, Any]) -> str:
    """Which model of the run a row measured: dense, or pruned (rows of older reports: dense)."""
    return row.get("variant") or "dense"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table; a device column is added when the rows come from more than one device, and
    a variant column when they hold more than one model variant (dense and pruned)."""
    devices = len({device_label(r) for r in rows}) > 1
    several_variants = len({variant_label(r) for r in rows}) > 1
    columns = (("device",) if devices else ()) + COLUMNS[:1] + (
        ("variant",) if several_variants else ()) + COLUMNS[1:]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = _cells(r)
        cells = ([device_label(r)] if devices else []) + cells[:1] + (
            [variant_label(r)] if several_variants else []) + cells[1:]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


RECOMMENDATION_COLUMNS = ("backend", "variant", "batch", "ship", "artifact", "why")


def recommendation_table(picks: list[dict[str, Any]]) -> str:
    """What to ship per backend, variant and batch size (``report.recommend``'s picks), with
    the reason: the report's answer to "INT8 or FP32?", beside the figures behind it."""
    lines = ["| " + " | ".join(RECOMMENDATION_COLUMNS) + " |",
             "|" + "---|" * len(RECOMMENDATION_COLUMNS)]
    lines += [f"| {p['backend']} | {p['variant']} | {p['batch']} | {p['precision']} | "
              f"{p['artifact']} | {p['reason']} |" for p in picks]
    return "\n".join(lines)


def fastest_table(picks: list[dict[str, Any]]) -> str:
    """The fastest artifact per model and batch across the CPU runtimes
    (``report.recommend.fastest_on_cpu``)."""
    lines = ["| run | variant | batch | fastest | artifact | p50 (ms) | vs its runtime's fp32 | "
             "top-1 | drop vs fp32 | runtimes compared |", "|" + "---|" * 10]
    for p in picks:
        ratio = f"{p['vs_own_fp32']:.2f}x" if p["vs_own_fp32"] is not None else "-"
        top1 = f"{p['top1']:.2f}%" if p["top1"] is not None else "-"
        drop = f"{p['top1_drop']:.2f}" if p["top1_drop"] is not None else "-"
        lines.append(f"| {p['run']} | {p['variant']} | {p['batch']} | {p['backend']} "
                     f"{p['precision']} | {p['artifact']} | {p['p50_ms']:.3f} | {ratio} | "
                     f"{top1} | {drop} | {', '.join(p['runtimes'])} |")
    return "\n".join(lines)


def csv_table(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(_cells(r) for r in rows)
    return out.getvalue()

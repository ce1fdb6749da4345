"""Top-1 against mult-adds or latency, one point per artifact, as PNG (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = {"fp32": "o", "int8": "s", "fp16": "^", "bf16": "v"}
# The smallest top-1 range a plot shows: a narrower one turns a 0.06-point spread into a
# full-height drop.
MIN_TOP1_SPAN = 4.0


def readable_axes(ax, top1: list[float]) -> None:
    """Plain tick labels on the log x axis (2, 5, 10, not 2x10^0) and a y range of at least
    :data:`MIN_TOP1_SPAN` points around the values."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(NullFormatter())
    if top1:
        low, high = min(top1), max(top1)
        pad = max((MIN_TOP1_SPAN - (high - low)) / 2, 0.5)
        ax.set_ylim(max(low - pad, 0), min(high + pad, 100))


def plot_accuracy(rows: list[dict[str, Any]], x_axis: str, path: Path, title: str) -> None:
    """``x_axis`` is ``"macs"`` or ``"latency"`` (p50 at batch 1, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.report.tables import device_label, variant_label

    several = len({device_label(r) for r in rows}) > 1
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for row in rows:
        if row.get("top1") is None:
            continue
        if x_axis == "macs":
            x = row["macs"] / 1e6
        else:
            stats = row.get("latency", {}).get("1")
            if stats is None:
                continue
            x = stats["p50_ms"]
        variant = "" if variant_label(row) == "dense" else f" {variant_label(row)}"
        label = f"{row['run']}{variant} {row['precision']} ({row['backend']})"
        if several:  # one colour per device is not enough with several runs: say it in words
            label = f"{device_label(row)}: {label}"
        ax.scatter([x], [row["top1"]], marker=MARKERS.get(row["precision"], "D"), s=60,
                   label=label)
    readable_axes(ax, [r["top1"] for r in rows if r.get("top1") is not None])
    ax.set_xlabel("mult-adds (M)" if x_axis == "macs" else "p50 latency, batch 1 (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.collections:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)

"""A sweep's plots: top-1 against a cost, one colour per architecture family, one marker per
precision, every point labelled with its run, the Pareto frontier drawn as a line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn.report.plots import MARKERS, readable_axes
from edgecnn.sweep.frontier import pareto_front


def plot_frontier(rows: list[dict[str, Any]], cost: Callable[[dict[str, Any]], float | None],
                  xlabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = [(cost(r), r) for r in rows if r.get("top1") is not None and cost(r) is not None]
    families = sorted({r["family"] for _, r in points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(8.0, 5.6), dpi=120)
    for x, row in points:
        ax.scatter([x], [row["top1"]], color=colours[row["family"]], s=46, zorder=3,
                   marker=MARKERS.get(row["precision"], "D"), edgecolors="black",
                   linewidths=0.4)
        ax.annotate(row["run"], (x, row["top1"]), textcoords="offset points", xytext=(4, 3),
                    fontsize=6.5, color="0.25")
    front = pareto_front([r for _, r in points], cost)
    if front:
        ax.plot([cost(r) for r in front], [r["top1"] for r in front], color="0.35",
                linewidth=1.0, linestyle="--", zorder=2, label="Pareto frontier")
    readable_axes(ax, [r["top1"] for _, r in points])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=colours[f], marker="o", linestyle="", label=f)
               for f in families]
    handles += [Line2D([], [], color="0.3", marker=MARKERS.get(p, "D"), linestyle="", label=p)
                for p in sorted({r["precision"] for _, r in points})]
    handles += [Line2D([], [], color="0.35", linestyle="--", label="frontier")] if front else []
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)

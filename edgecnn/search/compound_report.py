"""What a compound-scaling search leaves: compound.md (the grid at phi = 1, the triple found
beside the paper's, and per phi the compound model against each single dimension at equal
mult-adds) and top1_vs_macs_scaling.png (one line per way of scaling, as the paper's Figure 8).
compound.json, written by the runner, holds every figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.atomic import atomic_write_bytes

KINDS = ("compound", "depth", "width", "resolution")


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _timing_words(timing: dict[str, dict[str, Any]]) -> str:
    """How each phase's p50s were measured: side by side, or (where that timing failed) each
    build's own benchmark, which a busy moment can skew."""
    words = []
    for phase, t in timing.items():
        words.append(f"{phase}: timed side by side" if t.get("side_by_side") else
                     f"{phase}: each build's own benchmark, NOT side by side (the side-by-side "
                     f"timing failed: {(t.get('compare_error') or 'disabled')[:120]})")
    return "; ".join(words) + "." if words else "timed side by side within each phase."


def write_compound_report(folder: Path, result: dict[str, Any]) -> dict[str, Path]:
    files = {"json": folder / "compound.json", "md": folder / "compound.md"}
    atomic_write_bytes(files["md"], markdown(result).encode())
    plot = folder / "top1_vs_macs_scaling.png"
    if plot_scaling(result, plot):
        files["plot"] = plot
    return files


def markdown(result: dict[str, Any]) -> str:
    o, found, paper = result["objective"], result["found"], result["paper"]
    precision = o["precision"].upper()
    lines = [f"# Compound scaling: {result['name']}", "",
             f"Baseline: {result['baseline']['model']['arch']} "
             f"{result['baseline']['model'].get('options', {})} at "
             f"{result['baseline']['resolution']} px. Every point trained with the search's proxy "
             f"schedule; top-1 on the evaluation split; p50 of the {precision} artifact on "
             f"{o['backend']} at batch {o['batch']}, {o['threads']} threads, "
             + _timing_words(result.get("timing", {})), "",
             f"Found at phi 1 (best FP32 top-1 of the grid points with ~{result['target']:g}x "
             f"the baseline's mult-adds, counted): alpha {found['alpha']:g}, beta "
             f"{found['beta']:g}, gamma {found['gamma']:g}; the paper's: alpha "
             f"{paper['alpha']}, beta {paper['beta']}, gamma {paper['gamma']}.", "",
             "## Grid at phi 1", "",
             "| point | alpha (depth) | beta (width) | resolution | alpha*beta^2*gamma^2 | "
             f"MACs (M) | MACs / baseline | FP32 top-1 | {precision} top-1 | p50 (ms) | error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["grid"]:
        lines.append(f"| {r['name']} | {r['depth']:g} | {r['width']:g} | {r['resolution']} | "
                     f"{r['flops_factor']:.3f} | {r['macs'] / 1e6:.2f} | {r['macs_ratio']:.3f} | "
                     f"{_fmt(r['top1_fp32'])} | "
                     f"{_fmt(r['top1'])} | {_fmt(r['p50_ms'], 3)} | {(r['error'] or '')[:80]} |")
    lines += ["", "## Scaled: compound against one dimension at equal mult-adds", "",
              "| phi | scaling | depth x | width x | resolution | MACs (M) | MACs / compound | "
              f"FP32 top-1 | {precision} top-1 | p50 (ms) | p50 / compound | error |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_phi: dict[int, list[dict[str, Any]]] = {}
    for r in result["scaled"]:
        by_phi.setdefault(r["phi"], []).append(r)
    for phi, rows in sorted(by_phi.items()):
        compound = next(r for r in rows if r["kind"] == "compound")
        for r in rows:
            ratio = (f"{r['p50_ms'] / compound['p50_ms']:.2f}"
                     if r["p50_ms"] and compound["p50_ms"] else "-")
            lines.append(f"| {phi} | {r['kind']} | {r['depth']:g} | {r['width']:g} | "
                         f"{r['resolution']} | {r['macs'] / 1e6:.2f} | "
                         f"{r['macs'] / compound['macs']:.3f} | {_fmt(r['top1_fp32'])} | "
                         f"{_fmt(r['top1'])} | {_fmt(r['p50_ms'], 3)} | {ratio} | "
                         f"{(r['error'] or '')[:80]} |")
    return "\n".join(lines) + "\n"


def plot_scaling(result: dict[str, Any], path: Path) -> bool:
    """FP32 top-1 against mult-adds, one line per way of scaling from the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = next((r for r in result["grid"] if r["kind"] == "baseline"), None)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    drawn = False
    for kind in KINDS:
        rows = sorted((r for r in result["scaled"] if r["kind"] == kind
                       and r["top1_fp32"] is not None), key=lambda r: r["macs"])
        if baseline and baseline["top1_fp32"] is not None:
            rows = [baseline, *rows]
        if len(rows) < 2:
            continue
        ax.plot([r["macs"] / 1e6 for r in rows], [r["top1_fp32"] for r in rows], marker="o",
                label=f"{kind} scaling" if kind != "compound" else "compound scaling")
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("mult-adds (M)")
    ax.set_ylabel("FP32 top-1 (%)")
    ax.set_title(f"{result['name']}: scaling the baseline, top-1 against mult-adds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True

"""Pareto frontiers of a sweep's rows: the artifacts no other artifact beats on both top-1 and
cost (p50 latency at a batch size, or mult-adds), per backend, since a user ships on one
runtime and compares the choices it offers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def row_id(row: Row) -> str:
    return f"{row['run']}/{row['backend']}/{row['precision']}/{row.get('variant') or 'dense'}"


def pareto_front(rows: list[Row], cost: Callable[[Row], float | None]) -> list[Row]:
    """The rows with top-1 that no cheaper-or-equal row matches or beats, cheapest first
    (a row without top-1 or cost is left out)."""
    scored = [(cost(r), -r["top1"], row_id(r), r) for r in rows
              if r.get("top1") is not None and cost(r) is not None]
    front, best = [], float("-inf")
    for _, negative_top1, _, row in sorted(scored, key=lambda t: t[:3]):
        if -negative_top1 > best:
            front.append(row)
            best = -negative_top1
    return front


# Where a row's latency is read from: the sweep's side-by-side timing, else the run's own.
SIDE_BY_SIDE = "side_by_side"


def p50_at(batch: str, source: str = "latency") -> Callable[[Row], float | None]:
    def cost(row: Row) -> float | None:
        stats = (row.get(source) or {}).get(batch)
        return stats["p50_ms"] if stats else None
    return cost


def latency_source(rows: list[Row]) -> str:
    """``side_by_side`` when every row carries the sweep's side-by-side timing, else
    ``latency`` (each run's own benchmark): one ranking never mixes the two."""
    return SIDE_BY_SIDE if rows and all(r.get(SIDE_BY_SIDE) for r in rows) else "latency"


def macs(row: Row) -> float:
    return row["macs"]


def frontiers(rows: list[Row]) -> dict[str, dict[str, list[str]]]:
    """backend -> {"macs": ids, "latency b<batch>": ids} of the frontier members; latency
    from :func:`latency_source`."""
    found: dict[str, dict[str, list[str]]] = {}
    for backend in sorted({r["backend"] for r in rows}):
        mine = [r for r in rows if r["backend"] == backend]
        found[backend] = {"macs": [row_id(r) for r in pareto_front(mine, macs)]}
        source = latency_source(mine)
        batches = sorted({b for r in mine for b in r.get(source, {})}, key=int)
        for batch in batches:
            found[backend][f"latency b{batch}"] = [
                row_id(r) for r in pareto_front(mine, p50_at(batch, source))]
    return found

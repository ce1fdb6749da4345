"""Regressions against a baseline results file, for CI: an accuracy drop or a latency rise
beyond a threshold, comparing rows of the same run, model variant, precision, backend, device and
evaluation split (a device run's 1,000-image subset is not compared with a build's full test
split)."""

from __future__ import annotations

from typing import Any

from edgecnn.report.tables import device_label, variant_label


def row_key(row: dict[str, Any]) -> tuple:
    return (row["run"], row.get("arch"), variant_label(row), row["precision"], row["backend"],
            device_label(row), row.get("eval_split"))


def _p50(row: dict[str, Any], batch: str) -> float | None:
    stats = row.get("latency", {}).get(batch)
    return stats["p50_ms"] if stats else None


def find_regressions(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], *,
                     max_accuracy_drop: float = 1.0,
                     max_latency_rise: float = 0.25) -> list[str]:
    """One line per regression; rows without a baseline counterpart are not judged.

    Latency is compared at every batch size both rows measured, as the rise of p50 over the
    baseline's (0.25 = 25 % slower), since timings on shared machines wander by several percent.
    """
    reference = {row_key(r): r for r in baseline}
    found = []
    for row in rows:
        base = reference.get(row_key(row))
        if base is None:
            continue
        name = " / ".join(str(k) for k in row_key(row) if k is not None)
        if row.get("top1") is not None and base.get("top1") is not None:
            drop = base["top1"] - row["top1"]
            if drop > max_accuracy_drop:
                found.append(f"{name}: top-1 {row['top1']:.2f}% vs baseline {base['top1']:.2f}% "
                             f"(-{drop:.2f} points, more than {max_accuracy_drop})")
        for batch in sorted(set(row.get("latency", {})) & set(base.get("latency", {})), key=int):
            now, before = _p50(row, batch), _p50(base, batch)
            if now and before and now / before - 1 > max_latency_rise:
                found.append(f"{name}: p50 at batch {batch} {now:.3f} ms vs baseline "
                             f"{before:.3f} ms (+{100 * (now / before - 1):.0f}%, more than "
                             f"{100 * max_latency_rise:.0f}%)")
    return found

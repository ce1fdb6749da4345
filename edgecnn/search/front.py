"""The stored trials as rows, and the Pareto front of the feasible trained ones (top-1 against
measured latency): read by the report and by the final phase, which trains the best of them
with the base recipe's own schedule."""

from __future__ import annotations

from typing import Any

from edgecnn.search.spec import SearchFile
from edgecnn.sweep.frontier import pareto_front


def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append({"trial": trial.number, "state": trial.state.name, "key": attrs.get("key"),
                     "params": attrs.get("params"), "macs": attrs.get("macs"),
                     "p50_ms": attrs.get("p50_ms"), "budget_ms": attrs.get("budget_ms"),
                     "reference_p50_ms": attrs.get("reference_p50_ms"),
                     "ratio": attrs.get("ratio"), "timings": attrs.get("timings"),
                     "trained": attrs.get("trained", False), "top1": attrs.get("top1"),
                     "top1_fp32": attrs.get("top1_fp32"), "int8_drop": attrs.get("int8_drop"),
                     "violations": attrs.get("violations", {}), "error": attrs.get("error"),
                     "model": attrs.get("model"), "choices": trial.params})
    return rows


def feasible_trained(rows: list[dict[str, Any]], spec: SearchFile) -> list[dict[str, Any]]:
    """The complete trials that were trained and met every constraint, as the sweep's
    frontier and plot read rows."""
    o = spec.objective
    return [{**r, "run": f"t{r['trial']}", "backend": o.backend, "precision": o.precision,
             "family": "searchable"}
            for r in rows if r["state"] == "COMPLETE" and r["trained"]
            and r["top1"] is not None and not any(v > 0 for v in r["violations"].values())]


def front_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return pareto_front(rows, lambda r: r["p50_ms"])


def best_on_front(front: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The front's highest top-1 first; one architecture once (a re-proposed candidate is
    stored as another trial)."""
    best, seen = [], set()
    for row in sorted(front, key=lambda r: (-r["top1"], r["p50_ms"], r["trial"])):
        if row["key"] not in seen:
            best.append(row)
            seen.add(row["key"])
    return best[:count]

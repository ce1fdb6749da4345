"""Reading report rows from files: ``report.json`` (a build) and ``results.json`` (a device run).

``edgecnn report`` merges files a user hands it, possibly edited by hand or from another version,
so each row is checked against the fields the tables, plots and regression gate read, and a bad
one is one error naming the file, the row and the field, not a traceback from deep in a plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgecnn.errors import EdgeCNNError


class _Open(BaseModel):
    # rows carry more (context, artifact, arch, ...) than these checks need
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)


class LatencyStats(_Open):
    p50_ms: float = Field(gt=0)
    throughput: float = Field(ge=0)


class ReportRow(_Open):
    run: str
    precision: str
    backend: str
    params: int = Field(ge=0)
    macs: int = Field(ge=0)
    variant: str | None = None
    device: str | None = None
    eval_split: str | None = None
    top1: float | None = Field(None, ge=0, le=100)
    top5: float | None = Field(None, ge=0, le=100)
    agreement_with_fp32: float | None = Field(None, ge=0, le=100)
    file_bytes: int | None = Field(None, ge=0)
    latency: dict[str, LatencyStats] = Field(default_factory=dict)
    context: dict[str, Any] | None = None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a report.json or results.json, each checked; EdgeCNNError naming the file."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EdgeCNNError(f"{path} cannot be read as an edgecnn report.json or results.json "
                           f"({type(exc).__name__}: {exc})") from exc
    rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise EdgeCNNError(f"{path} is not an edgecnn report.json or results.json: it needs a "
                           "list of rows under \"rows\"")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise EdgeCNNError(f"{path}: row {index} is {type(row).__name__}, not an object")
        try:
            ReportRow.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise EdgeCNNError(f"{path}: row {index}: {field}: {first['msg']}") from exc
        for batch in row.get("latency", {}):
            if not batch.isdigit() or int(batch) < 1:
                raise EdgeCNNError(f"{path}: row {index}: latency batch {batch!r} is not a "
                                   "positive integer")
    return rows

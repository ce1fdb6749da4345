"""`edgecnn report` merges files a user hands it: a malformed row is one error naming the file,
the row and the field."""

from __future__ import annotations

import json

import pytest

from tests.hardening.conftest import assert_user_error, snapshot


@pytest.fixture(scope="module")
def report_json(artifact_run):
    return artifact_run / "report.json"


def _with_row_change(report_json, tmp_path, change):
    document = json.loads(report_json.read_text())
    change(document["rows"][0])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    return path


def _pop(key):
    return lambda row: row.pop(key)


def _put(key, value):
    return lambda row: row.update({key: value})


ROW_CASES = {
    "no-params": (_pop("params"), "row 0: params"),
    "top1-a-string": (_put("top1", "abc"), "row 0: top1"),
    "latency-a-list": (_put("latency", []), "row 0: latency"),
    "run-null": (_put("run", None), "row 0: run"),
    "p50-negative": (lambda row: row["latency"]["1"].update({"p50_ms": -1}),
                     "row 0: latency.1.p50_ms"),
    "batch-not-a-number": (lambda row: row.update({"latency": {"x": row["latency"]["1"]}}),
                           "latency batch 'x'"),
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_a_malformed_row_is_refused(cli, report_json, tmp_path, case):
    change, fragment = ROW_CASES[case]
    bad = _with_row_change(report_json, tmp_path, change)
    before = snapshot(tmp_path)
    assert_user_error(cli("report", bad), str(bad), fragment)
    assert_user_error(cli("report", report_json, "--baseline", bad), str(bad), fragment)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content", ["not json", "[]", '{"rows": 3}', '{"rows": [1]}', ""])
def test_a_file_that_is_not_a_report_is_refused(cli, report_json, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert_user_error(cli("report", bad), str(bad))
    assert_user_error(cli("report", report_json, "--baseline", bad), str(bad))


def test_report_out_a_file_exits_2(cli, report_json, tmp_path):
    a_file = tmp_path / "out"
    a_file.write_text("")
    assert_user_error(cli("report", report_json, "--out", a_file), "--out")
    assert_user_error(cli("report", report_json, "--out", a_file / "sub"), str(a_file))


def test_a_real_report_still_reads(cli, report_json):
    outcome = cli("report", report_json, "--baseline", report_json)
    assert outcome.code == 0, outcome.err
    assert "no regression" in outcome.out

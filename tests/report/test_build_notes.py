"""The report's notes on the accuracy-aware fallback, and the side-by-side timing behind them
(its logic on runners of known run time: which runner runs when, and whose samples go where;
never how fast a real model ran, which a shared host does not repeat)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgecnn.backends.base import Runner
from edgecnn.bench.rounds import measure_in_rounds
from edgecnn.errors import EdgeCNNError
from edgecnn.report.build_report import fallback_note
from edgecnn.targets.quick_timing import p50_side_by_side


def test_fallback_note_names_layers_and_their_cost():
    aware = {"max_accuracy_drop": 0.3, "fp32_top1": 87.4, "top1": 87.1,
             "fallback_layers": [f"conv{i}" for i in range(10)],
             "p50_ms": {"fp32": 5.16, "int8_full": 2.28, "int8_fallback": 5.02}}
    note = fallback_note("onnxruntime", "dense", aware)
    assert note.startswith("int8 onnxruntime (dense), accuracy-aware (max drop 0.3)")
    assert "10 layer(s) in float: conv0, conv1" in note and "conv7 ..." in note
    assert "FP32 5.160 ms, full INT8 2.280 ms, with float layers 5.020 ms" in note
    aware.update(fallback_layers=[], p50_ms=None)
    assert fallback_note("openvino", "pruned", aware).endswith("no layer returned to float")


class _LoggingRunner(Runner):
    """Sleeps ``seconds`` per run and logs (name, batch) in a log shared by all runners, so the
    order of turns is visible; its latency has a known lower bound and nothing else."""

    backend = "test"

    def __init__(self, name: str, seconds: float, log: list[tuple[str, int]]):
        self.name, self.seconds, self.log = name, seconds, log

    def input_spec(self):
        from edgecnn.backends.base import InputSpec

        return InputSpec("x", (None, 3, 4, 4))

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.log.append((self.name, len(batch)))
        time.sleep(self.seconds)
        return batch.reshape(len(batch), -1)


def test_rounds_take_turns_and_keep_each_runner_under_its_key():
    """Every round runs each batch size on every runner in turn (so a slow spell of the host
    hurts all alike), and each runner's statistics stay under its own key: the 5 ms runner's
    p50 is at least 5 ms, which it would not be had its samples been filed under the other."""
    log: list[tuple[str, int]] = []
    runners = {"fast": _LoggingRunner("fast", 0.0, log),
               "slow": _LoggingRunner("slow", 0.005, log)}
    latency = measure_in_rounds(runners, [1, 2], rounds=2, warmup=1, iterations=3, seconds=0.0)
    turn = [(name, batch) for batch in (1, 2) for name in ("fast", "slow") for _ in range(4)]
    assert log == turn * 2  # per round: 1 warm-up + 3 timed runs, batch by batch, runner by runner
    assert set(latency) == {"fast", "slow"}
    for per_batch in latency.values():
        assert set(per_batch) == {"1", "2"}
        assert all(stats["iterations"] == 6 for stats in per_batch.values())  # 3 x 2 rounds
    assert latency["slow"]["1"]["p50_ms"] >= 5.0 and latency["slow"]["2"]["min_ms"] >= 5.0


def test_side_by_side_p50_opens_each_file_on_its_backend(tmp_path):
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    small = export_onnx(create_model("resnet20"), tmp_path / "r20.onnx", 32).path
    large = export_onnx(create_model("resnet56"), tmp_path / "r56.onnx", 32).path
    p50 = p50_side_by_side({"r20": small, "r56": large}, "onnxruntime", threads=1, rounds=1,
                           seconds=0.0)
    assert set(p50) == {"r20", "r56"} and all(v > 0 for v in p50.values())
    with pytest.raises(EdgeCNNError):
        p50_side_by_side({"missing": tmp_path / "no.onnx"}, "onnxruntime", rounds=1,
                         seconds=0.0)

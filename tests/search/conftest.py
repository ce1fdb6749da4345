"""A tiny search: the tiny CIFAR tree, a two-stage space, ResNet-20 as the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TINY_RECIPE

FAST_BENCHMARK = ("benchmark: {batch_sizes: [1], iterations: 5, seconds: 0.05, warmup: 2, "
                  "rounds: 1, backends: [onnxruntime]}\n")

SEARCH = """\
name: tiny
base: base.yaml
reference: base.yaml
set: {{train.lr: 0.1}}
space:
  cifar_stem: true
  resolution: [32]
  stem: [8]
  head: [0, 32]
  stages:
    - {{width: [8, 16], depth: 1, stride: 1, expansion: 1}}
    - {{width: 16, depth: [1, 2], stride: 2, kernel: [3, 5], expansion: 3, se: [false, true],
       activation: [relu6, hswish]}}
objective: {{backend: onnxruntime, precision: int8, batch: 1, threads: 1}}
constraints: {constraints}
budget: {{trials: {trials}}}
parallel: 2
build_cpus: 1
compare: {{rounds: 1, iterations: 5, seconds: 0.05, warmup: 2}}
confirm: {{repeats: 1}}
train_reference: false
output: out
"""


def tiny_base(dataset: Path) -> str:
    base = TINY_RECIPE.format(dataset=dataset).replace(
        "benchmark: {batch_sizes: [1, 4], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1,\n"
        "            backends: [onnxruntime, torch]}\n", FAST_BENCHMARK)
    assert "backends: [onnxruntime]}" in base
    return base


@pytest.fixture
def write_search(tmp_path, tiny_cifar_folder):
    def write(constraints: str = "{latency_ratio: 100.0, max_int8_drop: 100.0}",
              trials: int = 3, text: str | None = None, name: str = "s.yaml") -> Path:
        (tmp_path / "base.yaml").write_text(tiny_base(tiny_cifar_folder))
        path = tmp_path / name
        path.write_text(text if text is not None
                        else SEARCH.format(constraints=constraints, trials=trials))
        return path
    return write


@pytest.fixture
def cli(capsys):
    """`edgecnn ARGV` in this process, as the hardening tests run it."""
    from tests.hardening.conftest import run_cli

    return lambda *argv: run_cli(capsys, *argv)

"""Shared by several test modules: the tiny real-data recipes, running `edgecnn build`, reading
and checking a build's report, and running edgecnn without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

# A recipe small enough to build in well under a minute on the tiny CIFAR folder
# (conftest's ``tiny_cifar_folder``); format it with ``dataset=``.
TINY_RECIPE = """\
# edgecnn build r.yaml
name: tiny
model: {{arch: resnet20}}
data: {{dataset: "{dataset}", val_size: 40, eval_batch_size: 50}}
train: {{epochs: 1, batch_size: 40, lr: 0.05, schedule: cosine, precision: fp32}}
quantize: {{calibration: {{samples: 64}}}}
benchmark: {{batch_sizes: [1, 4], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1,
            backends: [onnxruntime, torch]}}
"""

# The published CIFAR-10 ResNet-20 checkpoint, for ``model.pretrained`` (the loader expands
# ``{shared}``; the doubled braces survive the recipes' ``str.format``).
PRETRAINED_WEIGHTS = "{{shared}}/weights/cifar10-resnet/resnet20-12fca82f.th"

# The tiny recipe fine-tuning the published ResNet-20 instead of training from scratch: as fast,
# but its model is clearly above chance (the tiny recipe's ends at exactly 10%: one class for
# every image), so accuracy checks on it have meaning. A lower lr than the tiny recipe's keeps
# one epoch on 160 images from undoing the pretraining.
TINY_FINETUNE_RECIPE = TINY_RECIPE.replace(
    "model: {{arch: resnet20}}",
    "model: {{arch: resnet20, pretrained: \"" + PRETRAINED_WEIGHTS + "\"}}").replace(
    "lr: 0.05", "lr: 0.01")

# Recorded for the tiny fine-tuning recipe (the published ResNet-20, 1 epoch on 160 images, 100
# test images): FP32 top-1 86%, INT8 86% agreeing with FP32 on 98%. The FP32 band (+-4 points)
# allows for another CPU's training arithmetic and a few flipped images, and fails a wrong
# normalisation, class order or a training that undid the pretraining (tens of points). The INT8
# floor (93% agreement, at most 4 points lost) allows a few more flips where the INT8 kernels
# differ (7-bit weights without VNNI) and fails a collapsed INT8 model.
TINY_FP32_TOP1 = 86.0
TINY_FP32_BAND = (TINY_FP32_TOP1 - 4, TINY_FP32_TOP1 + 4)
TINY_AGREEMENT_FLOOR = 93.0
TINY_MAX_DROP = 4.0

# The published ResNet-20 with no training at all (no train section): the build goes from the
# checkpoint straight to export. Format it with ``dataset=`` and ``extra=`` (more recipe lines).
PRETRAINED_RECIPE = """\
# edgecnn build r.yaml
name: pretrained
model: {{arch: resnet20, pretrained: "PRETRAINED_WEIGHTS"}}
data: {{dataset: "{dataset}", val_size: 40, eval_batch_size: 50}}
quantize: {{calibration: {{samples: 64}}}}
benchmark: {{batch_sizes: [1, 4], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1,
            backends: [onnxruntime, torch]}}
{extra}""".replace("PRETRAINED_WEIGHTS", PRETRAINED_WEIGHTS)


def build(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`edgecnn build ARGV` in a child process (as a user runs it: exit code, stdout, stderr)."""
    return subprocess.run([sys.executable, "-m", "edgecnn.cli", "build", *argv],
                          capture_output=True, text=True, timeout=900, env=env)


def report_rows(run_dir: Path) -> dict[tuple[str, str, str], dict]:
    """The rows of a build's report.json by (backend, precision, variant)."""
    report = json.loads((run_dir / "report.json").read_text())
    return {(r["backend"], r["precision"], r["variant"]): r for r in report["rows"]}


def assert_accuracy(rows: dict[tuple[str, str, str], dict], variant: str, *,
                    fp32_band: tuple[float, float], agreement_floor: float,
                    max_drop: float) -> None:
    """Every FP32 row of ``variant`` has a top-1 within ``fp32_band`` (percent); every INT8 row
    agrees with its runtime's FP32 model on at least ``agreement_floor`` percent of the
    evaluation images and loses at most ``max_drop`` points of top-1 against it. At least one
    INT8 row must exist: a check of nothing passes nothing."""
    int8 = {b: r for (b, p, v), r in rows.items() if v == variant and p == "int8"}
    assert int8, f"no int8 row of the {variant} variant"
    for (backend, precision, v), row in rows.items():
        if v == variant and precision == "fp32":
            assert fp32_band[0] <= row["top1"] <= fp32_band[1], (
                f"{backend}/fp32/{variant}", row["top1"], fp32_band)
    for backend, row in int8.items():
        fp32 = rows[(backend, "fp32", variant)]
        where = f"{backend}/int8/{variant}"
        assert row["agreement_with_fp32"] >= agreement_floor, (where, row["agreement_with_fp32"])
        assert fp32["top1"] - row["top1"] <= max_drop, (where, fp32["top1"], row["top1"])


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A copy of a finished run directory (timestamps kept), for a test that alters it."""
    shutil.copytree(run_dir, dest, symlinks=True)
    return dest


# Makes `import torch` (and everything that needs it) fail in a child interpreter, as on a
# device where torch is not installed.
HIDE_TORCH = "import sys; sys.modules['torch'] = None; "


def run_cli_without_torch(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`edgecnn ARGV` in a child interpreter without torch; fails if anything imported it."""
    code = (HIDE_TORCH + "import edgecnn.cli; rc = edgecnn.cli.main(sys.argv[1:]); "
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]; "
            "sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=timeout)

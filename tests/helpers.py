"""Shared by several test modules: the tiny real-data recipe, and running edgecnn without torch."""

from __future__ import annotations

import subprocess
import sys

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

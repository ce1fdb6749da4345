"""ModelOpt ONNX PTQ runs, in a process of their own that later runs reuse.

ModelOpt's ``quantize`` patches ONNX Runtime's quantization package for the whole process
(``ort_utils.configure_ort``: its own calibrator methods, and Concat, Relu, Reshape, ... removed
from ``QDQRegistry``). Measured in one process after a ModelOpt run: edgecnn's ONNX Runtime
calibration of the next model returned an empty table. A build quantizes the onnxruntime
target, and every pruned variant, in the same process, so ModelOpt runs in a child. The child
is kept (one spawned worker): importing ModelOpt there costs ~4 s, and the accuracy-aware
fallback quantizes once per ranked layer.

The child's stdout and stderr go to /dev/null (ModelOpt's progress lines, ONNX Runtime's
constant-folding warnings); what it raises comes back: EdgeCNNError for a graph ModelOpt
refuses, RuntimeError with the traceback for anything else (a bug).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_pool: ProcessPoolExecutor | None = None


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _quantize(job: dict[str, Any]) -> None:
    import traceback

    import numpy as np

    from edgecnn.errors import EdgeCNNError

    try:
        from modelopt.onnx.quantization import quantize

        quantize(job["source"], quantize_mode="int8",
                 calibration_data=np.load(job["calibration"]),
                 calibration_method=job["method"], calibration_eps=["cpu"],
                 nodes_to_exclude=job["exclude"] or None, high_precision_dtype="fp32",
                 output_path=job["output"], log_level="WARNING")
    except (ValueError, RuntimeError, KeyError) as exc:  # a graph ModelOpt cannot handle
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise EdgeCNNError(f"{type(exc).__name__}: {first}") from exc
    except Exception:  # re-raised as a RuntimeError: not every exception pickles back
        raise RuntimeError(f"ModelOpt's quantize failed:\n{traceback.format_exc()}") from None


def run(job: dict[str, Any]) -> None:
    """Run one job (source, output, calibration .npy, method, exclude) in the worker."""
    global _pool
    import multiprocessing

    for attempt in (1, 2):
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, initializer=_silence,
                                        mp_context=multiprocessing.get_context("spawn"))
        try:
            _pool.submit(_quantize, job).result()
            return
        except BrokenProcessPool:  # the worker died (killed, out of memory): one fresh try
            _pool = None
            if attempt == 2:
                raise

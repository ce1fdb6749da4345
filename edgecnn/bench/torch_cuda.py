"""PyTorch on a CUDA GPU, timed with CUDA events: the baseline any TensorRT engine must beat.

Variants of one model: eager FP32, eager FP16 (weights and input in half), channels_last (FP16,
the layout tensor cores want) and ``torch.compile`` (FP16, channels_last; inductor). Each is
timed as GPU time between two CUDA events around every forward pass of a resident input, after
a warm-up that also absorbs compilation.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from edgecnn.bench.latency import LatencyStats, summarize
from edgecnn.errors import EdgeCNNError

VARIANTS = ("eager_fp32", "eager_fp16", "channels_last_fp16", "compile_fp16")


@dataclass(frozen=True)
class Variant:
    name: str
    half: bool
    channels_last: bool
    compile: bool


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise EdgeCNNError(f"unknown torch-CUDA variant {name!r}; valid: {', '.join(VARIANTS)}")
    return Variant(name, half=name != "eager_fp32",
                   channels_last=name in ("channels_last_fp16", "compile_fp16"),
                   compile=name == "compile_fp16")


def prepare(model: Any, spec: Variant) -> Any:
    """A copy of ``model`` on the GPU in the variant's precision, layout and compilation."""
    import torch

    if not torch.cuda.is_available():
        raise EdgeCNNError("the torch-CUDA benchmark needs a CUDA GPU; none is visible")
    m = copy.deepcopy(model).eval().cuda()
    if spec.half:
        m = m.half()
    if spec.channels_last:
        m = m.to(memory_format=torch.channels_last)
    return torch.compile(m) if spec.compile else m


def time_cuda(model: Any, spec: Variant, batch: int, resolution: int, *, warmup: int = 20,
              iterations: int = 100) -> LatencyStats:
    """GPU milliseconds per forward pass (CUDA events), summarised like every other backend."""
    import torch

    x = torch.randn(batch, 3, resolution, resolution, device="cuda")
    if spec.half:
        x = x.half()
    if spec.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize()
        wall = time.perf_counter()
        for start, end in zip(starts, ends, strict=True):
            start.record()
            model(x)
            end.record()
        torch.cuda.synchronize()
        wall = time.perf_counter() - wall
    ns = [int(s.elapsed_time(e) * 1e6) for s, e in zip(starts, ends, strict=True)]
    stats = summarize(batch, ns)
    stats.seconds = wall
    return stats

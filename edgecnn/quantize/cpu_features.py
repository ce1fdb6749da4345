"""Whether ONNX Runtime's U8S8 kernels need 7-bit weights (``reduce_range``) on this CPU.

On x86 without VNNI, ONNX Runtime's int8 GEMM/convolution kernels (MLAS) multiply uint8
activations by int8 weights with ``vpmaddubsw``, which adds two products into a *saturating*
int16: with full 8-bit weights the sum can overflow, so ONNX Runtime's documentation recommends
``reduce_range`` (7-bit weights) there. Measured on this project's AVX2 build machine the demo's
MobileNet v2 lost 2.43 top-1 points with 8-bit weights and 0.17 with 7-bit ones
(benchmarks/README.md). AVX512-VNNI / AVX-VNNI (``vpdpbusd``) and AMX accumulate in int32, and
ARM's dot-product kernels have no int16 stage, so there 8-bit weights lose nothing and 7-bit
weights only throw away resolution (benchmarks/results/int8_accuracy.json compares both).

The choice is made from the CPU flags of the machine that quantizes, which is the machine the
build benchmarks on; when the deployment CPU differs, pass ``reduce_range`` explicitly. The
reason is returned so that it can be recorded with the artifact.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass

# Flags (as /proc/cpuinfo spells them) whose int8 dot products accumulate without int16
# saturation.
NO_SATURATION_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class ReduceRangeChoice:
    reduce_range: bool
    reason: str


def choose_reduce_range(flags: Iterable[str] | None = None,
                        machine: str | None = None) -> ReduceRangeChoice:
    """7-bit weights only on an x86 CPU without VNNI/AMX; ``flags``/``machine`` default to
    this machine's (``edgecnn.bench.context.cpu_vector_extensions``, ``platform.machine``)."""
    from edgecnn.bench.context import cpu_vector_extensions

    machine = (machine or platform.machine()).lower()
    present = set(cpu_vector_extensions() if flags is None else flags)
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        return ReduceRangeChoice(False, f"{machine}: ARM int8 kernels do not saturate; "
                                        "8-bit weights")
    vnni = sorted(present.intersection(NO_SATURATION_FLAGS))
    if vnni:
        return ReduceRangeChoice(False, f"{machine} with {'+'.join(vnni)}: int8 products "
                                        "accumulate in int32; 8-bit weights")
    return ReduceRangeChoice(True, f"{machine} without VNNI/AMX: U8S8 kernels add pairs of "
                                   "products in saturating int16; 7-bit weights")

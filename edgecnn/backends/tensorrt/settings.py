"""From what the recipe asks for to what the TensorRT builder is told.

TensorRT 10 (JetPack 6) builds FP16 either from an FP16 network ("strongly typed") or from an
FP32 network with the FP16 builder flag; INT8 comes from the explicitly quantized (Q/DQ) ONNX.
TensorRT 11 removed the INT8 calibrator and the INT8/FP16 builder flags: precision must be in the
network itself. So the default everywhere is precision in the graph + a strongly typed network,
which builds the same engine on both; the FP16 flag is an option on 10 and refused on 11.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from edgecnn.errors import EdgeCNNError

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
# Memory TensorRT may use for tactics while building; more lets it try more kernels.
DEFAULT_WORKSPACE_MIB = 1024


@dataclass(frozen=True)
class Profile:
    """One optimisation profile over the batch dimension: kernels are tuned for ``opt``."""

    min: int
    opt: int
    max: int

    def shapes(self, sample_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) input shapes for an input of ``sample_shape`` without its batch."""
        return tuple((b, *sample_shape) for b in (self.min, self.opt, self.max))


def profile_for(batch_sizes: list[int], *, opt: int | None = None,
                dynamic_batch: bool = True, onnx_batch: int | None = None) -> Profile:
    """The profile covering every batch size the recipe benchmarks.

    ``opt`` defaults to the largest batch: a profile tuned for it runs smaller batches well
    enough, while one tuned for batch 1 can be several times slower at the largest. An ONNX
    exported with a fixed batch admits only that batch.
    """
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise EdgeCNNError(f"benchmark.batch_sizes must be positive integers, got {batch_sizes}")
    low, high = min(batch_sizes), max(batch_sizes)
    if not dynamic_batch:
        fixed = onnx_batch or low
        if low != high or low != fixed:
            raise EdgeCNNError(
                f"the ONNX has a fixed batch of {fixed} but benchmark.batch_sizes is "
                f"{batch_sizes}; export with export.onnx.dynamic_batch: true or benchmark batch "
                f"{fixed} only")
        return Profile(fixed, fixed, fixed)
    opt = high if opt is None else opt
    if not low <= opt <= high:
        raise EdgeCNNError(f"export.tensorrt.opt_batch {opt} lies outside the benchmarked "
                           f"batch sizes {low}..{high}")
    return Profile(low, opt, high)


@dataclass(frozen=True)
class BuilderSettings:
    """Everything the engine build depends on (also recorded in the engine's sidecar)."""

    precision: str
    onnx_precision: str        # what the ONNX given to the builder holds: fp32, fp16, int8
    strongly_typed: bool       # the network's own types decide each layer's precision
    flags: tuple[str, ...]     # names of trt.BuilderFlag members to set
    workspace_bytes: int
    profile: Profile
    dla_core: int | None = None
    timing_cache: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def builder_settings(
    precision: str, *, tensorrt_version: str, profile: Profile,
    fp16_mode: Literal["graph", "flag"] = "graph", workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    dla_core: int | None = None, sparse_weights: bool = False, timing_cache: str | None = None,
) -> BuilderSettings:
    """Builder settings for ``precision`` on TensorRT ``tensorrt_version``; refuses what that
    version cannot build, naming the setting to change."""
    if precision not in PRECISIONS:
        raise EdgeCNNError(f"TensorRT precision {precision!r} is not one of "
                           f"{', '.join(PRECISIONS)}")
    major = _major(tensorrt_version)
    if major < 10:
        raise EdgeCNNError(f"TensorRT {tensorrt_version} is too old: edgecnn builds with "
                           "TensorRT >= 10 (JetPack 6 ships 10.3)")
    if workspace_mib < 1:
        raise EdgeCNNError(f"export.tensorrt.workspace_mib must be >= 1, got {workspace_mib}")
    flags: list[str] = []
    onnx_precision, strongly_typed = precision, True
    if precision == "fp16" and fp16_mode == "flag":
        if major >= 11:
            raise EdgeCNNError(
                f"TensorRT {tensorrt_version} has no FP16 builder flag (removed in TensorRT 11); "
                "use export.tensorrt.fp16_mode: graph (an FP16 ONNX, strongly typed)")
        # A weakly typed FP32 network that TensorRT may run in FP16 where it is faster.
        flags.append("FP16")
        onnx_precision, strongly_typed = "fp32", False
    if dla_core is not None:
        if dla_core < 0:
            raise EdgeCNNError(f"export.tensorrt.dla_core must be >= 0, got {dla_core}")
        if precision == "fp32":
            raise EdgeCNNError("the DLA runs FP16 and INT8 only; use precision fp16 or int8 "
                               "with export.tensorrt.dla_core")
        # Layers the DLA cannot run go to the GPU instead of failing the build.
        flags.append("GPU_FALLBACK")
    if sparse_weights:
        flags.append("SPARSE_WEIGHTS")  # 2:4 sparse weights use sparse tensor cores (Ampere+)
    return BuilderSettings(
        precision=precision, onnx_precision=onnx_precision, strongly_typed=strongly_typed,
        flags=tuple(flags), workspace_bytes=workspace_mib << 20, profile=profile,
        dla_core=dla_core, timing_cache=timing_cache)


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise EdgeCNNError(f"cannot read the TensorRT version {version!r}") from None

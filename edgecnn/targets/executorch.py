"""ExecuTorch (PyTorch's own edge runtime) for ARM and x86 CPUs: .pte programs with the XNNPACK
delegate, FP32 and INT8, run by ``executorch.runtime``.

A program is lowered from the torch model of each variant (``torch.export`` ->
``to_edge_transform_and_lower`` with the XNNPACK partitioner), so the target has a build stage
of its own, as LiteRT does. INT8 is PyTorch's PT2E flow with ExecuTorch's ``XNNPACKQuantizer``
(symmetric int8, per-channel weights), calibrated on the build's calibration images. Every
program is run on the export's check images and compared with its torch model; an FP32 program
that differs by more than ``export.executorch.max_abs_diff`` stops the build. What XNNPACK does
not take stays on ExecuTorch's portable CPU kernels: the summary names those ops and their share
of the graph.

A program has the static input shape it was exported with (batch 1: the deployment's), so the
runner runs a larger batch one image at a time. The deployment facts (arch, mean/std,
resolution) travel beside the program in ``<file>.json``, since a .pte has no metadata of its
own that the Python runtime reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edgecnn._optional import require
from edgecnn.artifacts import ArtifactKey, file_stem, suffix
from edgecnn.backends.base import InputSpec, Runner, run_failure
from edgecnn.errors import EdgeCNNError
from edgecnn.sections import Section
from edgecnn.targets.base import BuildInputs, Target, TargetStage

EXTRA = "executorch"
# Graph nodes that are bookkeeping, not compute: what is left of them outside the delegate is no
# op "on the portable kernels" worth naming.
BOOKKEEPING = {"getitem", "executorch_call_delegate"}


@contextlib.contextmanager
def _quiet_native() -> Iterator[None]:
    """Silence stderr (the descriptor, Python's stream and its loggers' warnings) while
    ExecuTorch imports and loads: torchao reports the CUDA kernels it cannot load, torch a
    deprecation, and ExecuTorch's C++ CPU probe its reads of ARM-only files, all on stderr
    before anything is wrong (an error still raises, and is printed by the caller)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    disabled = logging.root.manager.disable
    try:
        os.dup2(devnull, 2)
        logging.disable(logging.WARNING)  # torch's and torchao's loggers
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
            yield
    finally:
        logging.disable(disabled)
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class ExecuTorchSection(Section):
    """ExecuTorch programs (.pte) with the XNNPACK delegate, lowered from the torch model."""

    precisions: list[Literal["fp32", "int8"]] = Field(
        default_factory=lambda: ["fp32", "int8"], min_length=1,
        description="one .pte each: fp32; int8 (PT2E with XNNPACKQuantizer, per-channel "
                    "weights, calibrated on the quantize section's calibration images)")
    max_abs_diff: float = Field(1e-3, gt=0, le=1e6,
                                description="tolerance of the FP32 program's numeric check "
                                            "against torch")


# -- lowering ---------------------------------------------------------------------------------


def lower(model: Any, resolution: int, precision: str,
          calibration: np.ndarray | None) -> tuple[bytes, dict[str, Any]]:
    """The .pte of ``model`` at batch 1 and what XNNPACK left on the portable kernels."""
    import torch

    with _quiet_native():
        require("executorch", "the executorch target", extra=EXTRA)
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
            XnnpackPartitioner,
        )
        from executorch.exir import to_edge_transform_and_lower

    channels = getattr(getattr(model, "card", None), "in_chans", 3)
    example = (torch.zeros(1, channels, resolution, resolution),)
    model = model.eval()
    try:
        with torch.no_grad():
            exported = torch.export.export(model, example)
            if precision == "int8":
                exported = torch.export.export(_quantized(exported, calibration), example)
            ops = _compute_ops(exported)
            lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            left = _compute_ops(lowered.exported_program())
            delegates = sum(1 for n in lowered.exported_program().graph.nodes
                            if n.op == "call_function"
                            and _op_name(n) == "executorch_call_delegate")
            program = lowered.to_executorch().buffer
    except EdgeCNNError:
        raise
    except Exception as exc:  # torch.export / EXIR raise many types, each naming the op
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeCNNError(f"ExecuTorch cannot lower {type(model).__name__} to {precision}: "
                           f"{type(exc).__name__}: {first[:300]}") from exc
    portable = Counter(left)
    return program, {"delegate_partitions": delegates, "ops": len(ops),
                     "portable_ops": dict(portable.most_common()),
                     "portable_share": len(left) / len(ops) if ops else 0.0}


def _quantized(exported: Any, calibration: np.ndarray | None) -> Any:
    """PT2E INT8: XNNPACK's symmetric int8 config, per-channel weights, observed on the
    calibration images one at a time (the program's batch)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if calibration is None or len(calibration) == 0:
        raise EdgeCNNError("executorch precision 'int8' needs calibration images (the quantize "
                           "section's calibration)")
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(exported.module(), quantizer)
    for image in calibration:
        prepared(torch.from_numpy(np.ascontiguousarray(image[None], np.float32)))
    return convert_pt2e(prepared)


def _op_name(node: Any) -> str:
    """conv2d, dim_order_ops._to_dim_order_copy, executorch_call_delegate, getitem."""
    name = getattr(node.target, "__name__", str(node.target))
    return name.removesuffix(".default")


def _compute_ops(program: Any) -> list[str]:
    """The call_function nodes of an exported program that compute on its input, by op name:
    not the delegate calls and their outputs, nor an op whose inputs are all constants (the
    layout copy of a lifted scalar that MobileNet v3's hard-swish leaves beside the delegate)."""
    user_inputs = set(program.graph_signature.user_inputs)
    found = []
    for node in program.graph.nodes:
        if node.op != "call_function" or _op_name(node) in BOOKKEEPING:
            continue
        sources = node.all_input_nodes
        if sources and all(a.op == "placeholder" and a.name not in user_inputs
                           for a in sources):
            continue
        found.append(_op_name(node))
    return found


# -- the build stage --------------------------------------------------------------------------


def run_executorch(build: BuildInputs, folder: Path) -> dict[str, Any]:
    from edgecnn.backends.torch_backend import TorchRunner
    from edgecnn.export.onnx_export import model_metadata

    cfg = build.recipe.export.executorch
    checks = build.check_images()
    calibration = build.calibration_array() if "int8" in cfg.precisions else None
    artifacts, runs, files = {}, {}, {}
    for variant in build.variants():
        model = build.load_model(variant)
        reference = TorchRunner(model).run(checks)
        for precision in cfg.precisions:
            path = folder / f"{file_stem(variant)}.{precision}.pte"
            program, coverage = lower(model, build.resolution(), precision, calibration)
            path.write_bytes(program)
            sidecar = metadata_path(path)
            sidecar.write_text(json.dumps({**model_metadata(model, build.resolution()),
                                           "precision": precision, "format": "pte",
                                           "delegate": "xnnpack", **coverage}, indent=1))
            with ExecuTorchRunner(path, threads=build.recipe.benchmark.threads) as runner:
                outputs = runner.run(checks)
            diff = float(np.abs(outputs - reference).max())
            agreement = float((outputs.argmax(1) == reference.argmax(1)).mean() * 100)
            build.console.print(
                f"  {path.name}: {precision}, {path.stat().st_size / 1e6:.2f} MB, "
                f"{coverage['delegate_partitions']} XNNPACK partition(s), "
                f"{_portable_line(coverage)}; vs torch on {len(checks)} check images: "
                f"max |diff| {diff:.2e}, top-1 agreement {agreement:.1f}%")
            if precision == "fp32" and not diff <= cfg.max_abs_diff:
                raise EdgeCNNError(f"{path.name} differs from the torch model by {diff:.3e} "
                                   f"(> export.executorch.max_abs_diff {cfg.max_abs_diff})")
            name = f"executorch_{precision}{suffix(variant)}"
            key = str(ArtifactKey("executorch", precision, variant))
            artifacts[name], runs[key] = build.rel(path), name
            artifacts[f"{name}_metadata"] = build.rel(sidecar)
            files[key] = {"path": build.rel(path), "bytes": path.stat().st_size,
                          "max_abs_diff": diff, "top1_agreement": agreement, **coverage}
    return {"files": files, "artifacts": artifacts, "runs": runs}


def _portable_line(coverage: dict[str, Any]) -> str:
    if not coverage["portable_ops"]:
        return "every op delegated"
    ops = ", ".join(f"{op} x{n}" for op, n in coverage["portable_ops"].items())
    return (f"on the portable kernels: {ops} ({coverage['portable_share']:.0%} of "
            f"{coverage['ops']} ops)")


def metadata_path(program: Path) -> Path:
    return program.with_name(program.name + ".json")


# -- the runner -------------------------------------------------------------------------------


class ExecuTorchRunner(Runner):
    """A .pte program on ``executorch.runtime``. ``threads`` sizes XNNPACK's thread pool, which
    is one per process (ExecuTorch's Python runtime offers no per-program setting)."""

    backend = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise EdgeCNNError(f"ExecuTorch program {path} does not exist")
        with _quiet_native():
            require("executorch", "the executorch backend", extra=EXTRA)
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

            _check_program(path)
            if threads:
                portable_lib._unsafe_reset_threadpool(threads)
            try:
                self.program = Runtime.get().load_program(path)
                self.method = self.program.load_method("forward")
            except Exception as exc:  # the runtime raises RuntimeError/ValueError for a bad file
                raise EdgeCNNError(f"ExecuTorch cannot load {path}: "
                                   f"{str(exc).strip().splitlines()[0][:300]}") from exc
        sizes = _input_sizes(self.method)
        self._spec = InputSpec("input", (None, *sizes[1:]))
        self._batch = sizes[0]
        self.path = path
        sidecar = metadata_path(path)
        facts = _read_facts(sidecar) if sidecar.exists() else {}
        # metadata is text, as every runtime's file metadata is (lists and counts as JSON)
        self.metadata: dict[str, str] = {k: v if isinstance(v, str) else json.dumps(v)
                                         for k, v in facts.items()}

    def input_spec(self) -> InputSpec:
        return self._spec

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        self._check_open(self.path.name)
        self._spec.check(batch, self.path.name)
        x = np.ascontiguousarray(batch, np.float32)
        try:
            outputs = [self.method.execute([torch.from_numpy(x[i:i + self._batch])])[0].numpy()
                       for i in range(0, len(x), self._batch)]
        except Exception as exc:  # the runtime's own error for a program it cannot execute
            raise run_failure(self.path.name, "ExecuTorch", exc) from exc
        return np.concatenate(outputs)

    def _release(self) -> None:
        self.method = self.program = None


def _read_facts(sidecar: Path) -> dict[str, Any]:
    try:
        facts = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EdgeCNNError(f"{sidecar} (the program's metadata) cannot be read: "
                           f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(facts, dict):
        raise EdgeCNNError(f"{sidecar} (the program's metadata) is not a JSON object")
    return facts


def _check_program(path: Path) -> None:
    """A file that is not a well-formed program is refused here: the runtime's loader aborts the
    whole process on one (measured: random bytes named .pte), so it is parsed first with
    ExecuTorch's own (Python) flatbuffer reader, which raises instead."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        deserialize_pte_binary(path.read_bytes())
    except Exception as exc:  # struct.error, TypeError, ValueError: whatever the bytes hit
        raise EdgeCNNError(f"ExecuTorch cannot load {path}: not a valid ExecuTorch program "
                           f"({type(exc).__name__}: {str(exc).strip()[:200]})") from exc


def _input_sizes(method: Any) -> tuple[int, ...]:
    """The program's input shape, from its method metadata."""
    meta = method.metadata
    info = meta.input_tensor_meta(0)
    return tuple(int(s) for s in info.sizes())


def open_runner(path: str | Path, threads: int | None) -> ExecuTorchRunner:
    return ExecuTorchRunner(path, threads=threads)


def int8_coverage(runner: ExecuTorchRunner):
    """The ops an INT8 program leaves on the portable (float) kernels, from its sidecar."""
    from edgecnn.bench.int8_coverage import Int8Coverage

    portable = json.loads(runner.metadata.get("portable_ops", "{}"))
    return Int8Coverage("executorch", dict(portable),
                        partitions=int(runner.metadata.get("delegate_partitions", 0)) or None)


def calibrates(recipe: Any) -> bool:
    return "int8" in recipe.export.executorch.precisions


TARGET = Target(
    name="executorch", title="ExecuTorch runtime with the XNNPACK delegate, CPU (.pte)",
    suffixes=(".pte",), packages=("executorch", "torchao"), modules=("executorch",),
    extra=EXTRA, open_runner=open_runner, int8_coverage=int8_coverage,
    section=ExecuTorchSection, calibrates=calibrates,
    # the lowering reads the check images (export.onnx.check_samples), the calibration
    # (quantize) and the threads its numeric check runs on
    stage=TargetStage("executorch", ("model", "data", "prune", "quantize", "export.targets",
                                     "export.onnx", "export.executorch", "benchmark.threads"),
                      run_executorch))

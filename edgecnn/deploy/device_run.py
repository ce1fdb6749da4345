"""``edgecnn device-run CONTEXT``: on the device, build engines, evaluate, benchmark, record.

Needs no torch (the runtime install). For each backend asked for: TensorRT builds one engine per
precision of the context's ``tensorrt`` settings from the shipped ONNX (with a timing cache kept
in the results folder, so a second run builds faster), ONNX Runtime runs the FP32 and INT8 ONNX
on the CPU. Each artifact is evaluated on the shipped subset (agreement with the FP32 ONNX) and
benchmarked side by side; ``results.json`` holds report-shaped rows plus the device context a
Jetson user needs to trust the numbers (see :mod:`edgecnn.bench.jetson`). A backend that cannot
run here (TensorRT on a CPU machine) is skipped with the reason in ``notes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.deploy.context_file import load_subset, read_context
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file

BACKENDS = ("tensorrt", "onnxruntime")


def _tensorrt_runners(folder: Path, context: dict, engines_dir: Path, notes: list[str],
                      batch_sizes: list[int]) -> dict[str, Any]:
    from edgecnn.backends.tensorrt.availability import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        notes.append(f"tensorrt skipped: TensorRT {reason}")
        return {}
    from edgecnn.backends.tensorrt.build import build_engine
    from edgecnn.backends.tensorrt.device import device_facts
    from edgecnn.backends.tensorrt.runner import TensorRTRunner
    from edgecnn.backends.tensorrt.settings import builder_settings, profile_for

    cfg = context["tensorrt"]
    facts = device_facts()
    engines_dir.mkdir(parents=True, exist_ok=True)
    profile = profile_for(batch_sizes, opt=cfg.get("opt_batch"))
    sources = {"fp32": "fp32", "fp16": "fp16" if cfg["fp16_mode"] == "graph" else "fp32",
               "int8": "int8_tensorrt"}
    runners = {}
    for precision in cfg["precisions"]:
        key = sources[precision]
        if key not in context["models"]:
            notes.append(f"tensorrt {precision} skipped: the context has no {key} ONNX")
            continue
        onnx = folder / context["models"][key]
        settings = builder_settings(
            precision, tensorrt_version=facts.tensorrt_version, profile=profile,
            fp16_mode=cfg["fp16_mode"], workspace_mib=cfg["workspace_mib"],
            dla_core=cfg["dla_core"], sparse_weights=cfg["sparse_weights"],
            timing_cache=str(engines_dir / "timing.cache"))
        engine = engines_dir / f"model.{precision}.plan"
        build_engine(onnx, engine, settings, sha256_file(onnx))
        runners[f"tensorrt/{precision}"] = (TensorRTRunner(
            engine, onnx_sha256=sha256_file(onnx), cuda_graph=cfg["cuda_graph"]), engine)
    return runners


def device_run(folder: Path, results: Path, *, backends: list[str] | None = None,
               batch_sizes: list[int] | None = None, threads: int | None = None,
               rounds: int = 2, iterations: int = 100, seconds: float = 2.0,
               warmup: int = 10, console=None) -> Path:
    """Run everything the context asks for on this device; write and return results.json."""
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
    from edgecnn.bench.jetson import device_context
    from edgecnn.bench.rounds import measure_in_rounds
    from edgecnn.report.build_report import write_report
    from edgecnn.targets.context import run_context
    from edgecnn.train.evaluate import agreement, evaluate

    say = console.print if console is not None else print
    folder = Path(folder)
    context = read_context(folder)
    backends = backends or list(BACKENDS)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise EdgeCNNError(f"unknown device-run backend {unknown[0]!r}; valid: "
                           f"{', '.join(BACKENDS)}")
    batch_sizes = batch_sizes or context["benchmark"]["batch_sizes"]
    if results.exists() and not results.is_dir():
        raise EdgeCNNError(f"--results {results} is a file; give a folder for results.json")
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeCNNError(f"--results {results} cannot be created: {exc.strerror}") from exc
    subset = load_subset(folder, context)
    notes: list[str] = []
    runners: dict[str, tuple[Any, Path]] = {}
    if "tensorrt" in backends:
        runners.update(_tensorrt_runners(folder, context, results / "engines", notes,
                                         batch_sizes))
    if "onnxruntime" in backends:
        for precision, key in (("fp32", "fp32"), ("int8", "int8")):
            if key in context["models"]:
                path = folder / context["models"][key]
                runners[f"onnxruntime/{precision}"] = (OnnxRuntimeRunner(path, threads=threads),
                                                       path)
    if not runners:
        raise EdgeCNNError(f"nothing can run here: {'; '.join(notes) or 'no artifacts'}")
    evaluated, predictions = {}, {}
    try:
        for key, (runner, _) in runners.items():
            result = evaluate(runner, subset, context["mean"], context["std"], batch_size=64)
            evaluated[key], predictions[key] = result, result.predictions
            say(f"  {key}: top-1 {result.top1:.2f}% on {subset.description}")
        latency = measure_in_rounds({k: r for k, (r, _) in runners.items()}, batch_sizes,
                                    rounds=rounds, warmup=warmup, iterations=iterations,
                                    seconds=seconds)
    finally:  # the engines' device buffers, the sessions
        for runner, _ in runners.values():
            runner.close()
    reference = "onnxruntime/fp32" if "onnxruntime/fp32" in predictions else next(
        iter(predictions))
    device = device_context()
    run = run_context(threads)
    label = device["jetson_model"] or device["gpu_name"] or run["cpu"]
    rows = []
    for key, (_, artifact) in runners.items():
        backend, precision = key.split("/")
        rows.append({
            "run": context["recipe"], "arch": context["arch"], "device": label,
            "artifact": artifact.name, "precision": precision, "backend": backend,
            "variant": context.get("variant", "dense"),  # contexts before pruning: dense
            "params": context["params"], "macs": context["macs"],
            "resolution": context["resolution"], "file_bytes": artifact.stat().st_size,
            "top1": evaluated[key].top1, "top5": evaluated[key].top5,
            "agreement_with_fp32": agreement(predictions[key], predictions[reference]),
            "eval_split": subset.description, "latency": latency[key], "context": run,
        })
        say(f"  {key}: p50 batch {batch_sizes[0]} "
            f"{latency[key][str(batch_sizes[0])]['p50_ms']:.3f} ms")
    files = write_report(rows, results, title=f"{context['recipe']} on {label}", notes=notes,
                         extra={"device": device}, json_name="results.json")
    for note in notes:
        say(f"  {note}")
    return files["json"]

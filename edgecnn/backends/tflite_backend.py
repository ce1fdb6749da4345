"""The LiteRT (TensorFlow Lite) runner: ai-edge-litert's interpreter with XNNPACK on the CPU.

The runner takes what every edgecnn runner takes — a float32 NCHW batch — and does what the
model needs internally, so evaluation and benchmarking stay backend-agnostic:

- a channels-last model (exported with ``layout="NHWC"``) gets the batch transposed;
- an int8-I/O model gets its input quantized and its output dequantized with the tensors'
  own scale and zero point (``q = round(x / scale) + zero_point``, saturated to int8);
- a new batch size resizes the input tensor and re-plans the interpreter, once per size — when
  the file says the graph resizes correctly (``batch_resizable``, checked by the export) or its
  batch dimension is dynamic; otherwise (a batch baked into the graph's constants) the batch
  runs image by image, which gives the right answer at batch-1 speed.

XNNPACK is LiteRT's default CPU delegate (applied by the ``AUTO`` op resolver), and
``num_threads`` sets both the interpreter's and XNNPACK's thread pool. ``ai-edge-litert`` is the
runtime's current name; ``tflite-runtime`` (its last release is 2023, Python <= 3.11) is used
where only that is installed, e.g. on an older board image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn._optional import installed_version
from edgecnn.backends.base import InputSpec, Runner, run_failure
from edgecnn.errors import EdgeCNNError


@dataclass
class Delegation:
    """How the runtime split the graph: XNNPACK partitions and the ops it left to TFLite."""

    partitions: int
    delegated: int
    not_delegated: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"partitions": self.partitions, "delegated_ops": self.delegated,
                "not_delegated": self.not_delegated}


def load_interpreter_class() -> tuple[type, str]:
    """(Interpreter class, "package version"): ai-edge-litert, else tflite-runtime."""
    try:
        from ai_edge_litert import interpreter as litert

        return litert.Interpreter, f"ai-edge-litert {installed_version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite_runtime  # type: ignore[import-not-found]

        return tflite_runtime.Interpreter, f"tflite-runtime {installed_version('tflite-runtime')}"
    except ImportError:
        raise EdgeCNNError(
            "the tflite backend needs the Python package 'ai_edge_litert' (or the older "
            "'tflite_runtime'), and neither is installed; install it with: "
            "pip install 'edgecnn[tflite]'") from None




class TFLiteRunner(Runner):
    backend = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from edgecnn.backends.tflite_metadata import read_metadata

        path = Path(path)
        if not path.is_file():
            raise EdgeCNNError(f"TFLite model {path} does not exist")
        if threads is not None and threads < 1:
            raise EdgeCNNError(f"threads must be >= 1, got {threads}")
        # The interpreter's own default is 1 thread; use the machine, like ONNX Runtime does.
        self.threads = threads or os.cpu_count() or 1
        interpreter_class, runtime = load_interpreter_class()
        self.path = path
        try:
            self.metadata: dict[str, str] = dict(read_metadata(path))
            self.interpreter = interpreter_class(model_path=str(path), num_threads=self.threads)
            self.interpreter.allocate_tensors()
        except EdgeCNNError:
            raise
        except (ValueError, RuntimeError) as exc:  # the interpreter's load/prepare failures
            raise EdgeCNNError(f"LiteRT cannot load {path}: "
                               f"{str(exc).strip().splitlines()[0]}") from exc
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeCNNError(f"{path.name} has {len(inputs)} inputs and {len(outputs)} outputs;"
                               " the tflite runner runs image classifiers (one input, one output)")
        self._input, self._output = inputs[0], outputs[0]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 4:
            raise EdgeCNNError(f"{path.name} takes a rank-{len(shape)} input {shape}; the tflite "
                               "runner runs image models (rank 4)")
        # The file's own record wins; without one (a foreign model) a last dimension of 1 or 3
        # next to a larger second one means channels-last.
        self.layout = self.metadata.get("layout") or (
            "NHWC" if shape[3] in (1, 3) and shape[1] > 4 else "NCHW")
        nchw = shape if self.layout == "NCHW" else (shape[0], shape[3], shape[1], shape[2])
        self._spec = InputSpec(self._input["name"], (None, *nchw[1:]), "float32", "NCHW")
        self._batch = shape[0]
        signature = self._input.get("shape_signature")
        self.resizable = self.metadata.get("batch_resizable") == "true" or bool(
            signature is not None and len(signature) and int(signature[0]) == -1)
        self._in_quant = _quantization(self._input)
        self._out_quant = _quantization(self._output)
        self.metadata.update({
            "runtime": runtime, "threads": str(self.threads),
            "model_input_layout": self.layout, "model_input_dtype": np.dtype(
                self._input["dtype"]).name,
            "model_output_dtype": np.dtype(self._output["dtype"]).name,
            "batch_mode": "resize" if self.resizable else "image by image",
        })

    def input_spec(self) -> InputSpec:
        return self._spec

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._check_open(self.path.name)
        expected = self._spec.shape
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected[1:]:
            raise EdgeCNNError(f"{self.path.name} takes input {expected}, got {batch.shape}")
        if batch.shape[0] != self._batch:
            if not self.resizable and self._batch == 1:
                return np.concatenate([self.run(batch[i:i + 1]) for i in range(len(batch))])
            self._resize(batch.shape[0])
        x = np.asarray(batch, dtype=np.float32)
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        if self._in_quant is not None:
            scale, zero, dtype = self._in_quant
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
        try:
            self.interpreter.set_tensor(self._input["index"], np.ascontiguousarray(x))
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self._output["index"])
        except (RuntimeError, ValueError) as exc:  # the interpreter's errors for a bad model
            raise run_failure(self.path.name, "LiteRT", exc) from exc
        if self._out_quant is not None:
            scale, zero, _ = self._out_quant
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32, copy=True)

    def _release(self) -> None:
        self.interpreter = None  # its tensor arena and XNNPACK's weight cache go with it

    def _resize(self, batch: int) -> None:
        if not self.resizable:
            raise EdgeCNNError(f"{self.path.name} was converted for batch {self._batch} and its "
                               f"graph is not marked batch-resizable; feed batches of "
                               f"{self._batch}")
        shape = list(self._input["shape"])
        shape[0] = batch
        try:
            self.interpreter.resize_tensor_input(self._input["index"], shape, strict=False)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgeCNNError(f"{self.path.name} cannot run batch {batch} (it was converted "
                               f"for batch {self._batch}): {str(exc).strip().splitlines()[0]}"
                               ) from exc
        self._batch = batch

    def delegation(self) -> Delegation:
        """Which ops XNNPACK took (in how many partitions) and which it left to TFLite.

        The interpreter lists the original nodes and one DELEGATE node per partition; a node
        belongs to a partition when it lies between the partition's inputs and its outputs.
        (``_get_ops_details`` is the interpreter's long-standing, underscored node listing.)
        """
        from edgecnn.backends.tflite_ops import layer_of_tensor

        ops = self.interpreter._get_ops_details()
        delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
        nodes = {o["index"]: o for o in ops if o["op_name"] != "DELEGATE"}
        producer = {t: i for i, o in nodes.items() for t in o["outputs"]}
        covered: set[int] = set()
        for delegate in delegates:
            stop, stack, seen = set(delegate["inputs"]), list(delegate["outputs"]), set()
            while stack:
                tensor = stack.pop()
                if tensor in stop or tensor in seen or tensor not in producer:
                    continue
                seen.add(tensor)
                covered.add(producer[tensor])
                stack.extend(nodes[producer[tensor]]["inputs"])
        names = {d["index"]: d["name"] for d in self.interpreter.get_tensor_details()}
        outside = [{"index": i, "op": o["op_name"],
                    "layer": layer_of_tensor(names.get(o["outputs"][0], "")) if len(o["outputs"])
                    else ""} for i, o in sorted(nodes.items()) if i not in covered]
        return Delegation(len(delegates), len(covered), outside)


def _quantization(detail: dict) -> tuple[float, int, Any] | None:
    """(scale, zero point, dtype) of an integer I/O tensor; None for a float one."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return None
    scale, zero = detail["quantization"]
    if not scale:
        raise EdgeCNNError(f"tensor {detail['name']} is {dtype.name} without a quantization "
                           "scale; the tflite runner feeds only float or quantized tensors")
    return float(scale), int(zero), dtype.type

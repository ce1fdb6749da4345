"""The TensorRT runner: an engine, device buffers, one CUDA stream, CUDA-event timing.

CUDA calls go through NVIDIA's ``cuda-python`` runtime bindings (no pycuda build, no torch).
``run`` is the plain runner surface (numpy in, logits out) used by evaluation; ``time_batch``
times H2D, compute and D2H separately with CUDA events as trtexec does, optionally replaying the
inference as a CUDA graph (less launch overhead for small models). Host arrays are ordinary
(pageable) numpy memory, which is what an application usually hands over; trtexec's pinned
buffers make its H2D/D2H figures somewhat lower.
Not run on the machines edgecnn is developed on (no GPU, no TensorRT): see README, "TensorRT".
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgecnn._optional import require
from edgecnn.backends.base import EventIntervals, InputSpec, Runner
from edgecnn.backends.tensorrt.device import device_facts
from edgecnn.backends.tensorrt.sidecar import check_engine
from edgecnn.errors import EdgeCNNError


def _ok(result):
    """cuda-python returns (error, *values); raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EdgeCNNError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else values


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, engine_path: str | Path, onnx_sha256: str | None = None,
                 cuda_graph: bool = False) -> None:
        trt = require("tensorrt", "the tensorrt backend")
        self.cudart = require("cuda.bindings.runtime", "the tensorrt backend")
        self.path = Path(engine_path)
        self.sidecar = check_engine(self.path, device_facts(), onnx_sha256)
        self.metadata: dict[str, str] = {}  # what the engine was built from: self.sidecar
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        dla_core = self.sidecar.settings.get("dla_core")
        if dla_core is not None:
            runtime.DLA_core = dla_core  # the core the engine was built for (default: -1)
            if cuda_graph:
                raise EdgeCNNError("a DLA engine cannot be replayed as a CUDA graph; set "
                                   "export.tensorrt.cuda_graph: false")
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EdgeCNNError(f"TensorRT cannot deserialize {self.path}; rebuild the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeCNNError(f"{self.path}: edgecnn engines have one input and one output")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        _, _, max_shape = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.sample_shape = tuple(max_shape[1:])
        self.max_batch = int(max_shape[0])
        self.stream = _ok(self.cudart.cudaStreamCreate())
        self.events = [_ok(self.cudart.cudaEventCreate()) for _ in range(4)]
        # Both buffers sized for the largest batch once: their addresses never change, which a
        # captured CUDA graph relies on.
        self._set_shape(self.max_batch)
        out_per_sample = int(np.prod(tuple(self.context.get_tensor_shape(self.output_name))[1:]))
        self.d_input = _ok(self.cudart.cudaMalloc(
            self.max_batch * int(np.prod(self.sample_shape)) * self.input_dtype.itemsize))
        self.d_output = _ok(self.cudart.cudaMalloc(
            self.max_batch * out_per_sample * self.output_dtype.itemsize))
        self.context.set_tensor_address(self.input_name, int(self.d_input))
        self.context.set_tensor_address(self.output_name, int(self.d_output))
        self.cuda_graph = cuda_graph
        self._graph_exec = None  # captured for the current batch size only
        self._batch = 0

    def input_spec(self) -> InputSpec:
        return InputSpec(self.input_name, (None, *self.sample_shape), str(self.input_dtype))

    # -- one inference -----------------------------------------------------------------------
    def _set_shape(self, batch_size: int) -> None:
        if not self.context.set_input_shape(self.input_name, (batch_size, *self.sample_shape)):
            raise EdgeCNNError(f"{self.path.name} rejects batch {batch_size} (its profile)")

    def _prepare(self, batch_size: int) -> np.ndarray:
        if not 1 <= batch_size <= self.max_batch:
            raise EdgeCNNError(f"{self.path.name} was built for batches up to {self.max_batch} "
                               f"(its profile), got {batch_size}; rebuild with a larger "
                               "benchmark batch size")
        if batch_size != self._batch:
            self._set_shape(batch_size)
            self._drop_graph()  # a graph replays the shape it was captured with
            self._out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)),
                                 self.output_dtype)
            self._batch = batch_size
        return self._out

    def _execute(self) -> None:
        if not self.context.execute_async_v3(int(self.stream)):
            raise EdgeCNNError(f"TensorRT failed to run {self.path.name}")

    def _compute(self) -> None:
        if not self.cuda_graph:
            self._execute()
            return
        if self._graph_exec is None:
            # TensorRT must have run once with this shape before the capture (its docs).
            self._execute()
            _ok(self.cudart.cudaStreamSynchronize(self.stream))
            _ok(self.cudart.cudaStreamBeginCapture(
                self.stream, self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
            captured = self.context.execute_async_v3(int(self.stream))
            graph = _ok(self.cudart.cudaStreamEndCapture(self.stream))  # always end the capture
            if not captured:
                self.cudart.cudaGraphDestroy(graph)
                raise EdgeCNNError(f"{self.path.name} cannot be captured as a CUDA graph; set "
                                   "export.tensorrt.cuda_graph: false")
            self._graph_exec = _ok(self.cudart.cudaGraphInstantiate(graph, 0))
            _ok(self.cudart.cudaGraphDestroy(graph))
        _ok(self.cudart.cudaGraphLaunch(self._graph_exec, self.stream))

    def _drop_graph(self) -> None:
        if self._graph_exec is not None:
            self.cudart.cudaGraphExecDestroy(self._graph_exec)
            self._graph_exec = None

    def _infer(self, batch: np.ndarray, timed: bool) -> np.ndarray:
        kind = self.cudart.cudaMemcpyKind
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        out = self._prepare(len(x))
        if timed:
            _ok(self.cudart.cudaEventRecord(self.events[0], self.stream))
        _ok(self.cudart.cudaMemcpyAsync(self.d_input, x.ctypes.data, x.nbytes,
                                        kind.cudaMemcpyHostToDevice, self.stream))
        if timed:
            _ok(self.cudart.cudaEventRecord(self.events[1], self.stream))
        self._compute()
        if timed:
            _ok(self.cudart.cudaEventRecord(self.events[2], self.stream))
        _ok(self.cudart.cudaMemcpyAsync(out.ctypes.data, self.d_output, out.nbytes,
                                        kind.cudaMemcpyDeviceToHost, self.stream))
        if timed:
            _ok(self.cudart.cudaEventRecord(self.events[3], self.stream))
        _ok(self.cudart.cudaStreamSynchronize(self.stream))
        return out

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._check_open(self.path.name)
        if batch.shape[1:] != self.sample_shape:
            raise EdgeCNNError(f"{self.path.name} takes input (N, {self.sample_shape}), got "
                               f"{batch.shape}")
        return self._infer(batch, timed=False).astype(np.float32, copy=True)

    # -- timing ------------------------------------------------------------------------------
    def time_batch(self, batch_size: int, iterations: int = 200,
                   warmup: int = 20) -> EventIntervals:
        """The CUDA-event intervals of ``iterations`` inferences of a random batch (summarized
        by the bench layer: :func:`edgecnn.bench.gpu_timing.summarize_gpu_timings`)."""
        x = np.random.default_rng(0).standard_normal((batch_size, *self.sample_shape),
                                                      dtype=np.float32)
        for _ in range(warmup):
            self._infer(x, timed=False)
        h2d, compute, d2h = [], [], []
        start = time.perf_counter()
        for _ in range(iterations):
            self._infer(x, timed=True)
            e = self.events
            h2d.append(_ok(self.cudart.cudaEventElapsedTime(e[0], e[1])))
            compute.append(_ok(self.cudart.cudaEventElapsedTime(e[1], e[2])))
            d2h.append(_ok(self.cudart.cudaEventElapsedTime(e[2], e[3])))
        return EventIntervals(batch_size, h2d, compute, d2h, time.perf_counter() - start,
                              self.cuda_graph)

    def _release(self) -> None:
        """The device buffers, events, stream and graph (Runner.close: once)."""
        self._drop_graph()
        for pointer in (self.d_input, self.d_output):
            if pointer is not None:
                self.cudart.cudaFree(pointer)
        for event in self.events:
            self.cudart.cudaEventDestroy(event)
        self.cudart.cudaStreamDestroy(self.stream)
        self.d_input = self.d_output = None
        self.context = self.engine = None

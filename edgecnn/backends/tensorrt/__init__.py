"""TensorRT: engines built from edgecnn's ONNX on the device that runs them, and their runner.

Split so that everything deciding *what* to build and *whether* an engine may be used is plain
Python, unit-tested on machines without TensorRT:

* :mod:`.settings`  precision -> builder settings, optimisation profiles, refusals;
* :mod:`.sidecar`   what an engine was built for, and the check before it is loaded;
* :mod:`.device`    the facts of this device (GPU, compute capability, TensorRT, L4T/JetPack);

and only the thin layers that call TensorRT need it installed:

* :mod:`.build`     ONNX -> engine through Polygraphy's loaders (timing cache, build log);
* :mod:`.runner`    device buffers, a CUDA stream, CUDA-event timing, optional CUDA graph.
"""

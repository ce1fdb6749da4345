"""LiteRT quantization of a converted float .tflite with litert-quantizer (AEQ below: it is the
maintained continuation of ai-edge-quantizer, with the same modules; for ResNet-20 and MobileNet
v3-Large its full-INT8 files were byte-identical to ai-edge-quantizer 0.10.0's).

One recipe per precision, all AEQ's own:

- ``fp16``: FP16 weights, float compute (``float_casting`` weight-only; XNNPACK unpacks the
  weights to FP32 once at load time, so it halves the file, not the latency);
- ``dynamic_int8``: AEQ's dynamic-range config (``dynamic_wi8_afp32``'s) for CONV_2D and
  FULLY_CONNECTED — int8 per-channel weights, activations quantized on the fly by the kernels
  (no calibration); depthwise weights stay float (see the comment in the code);
- ``int8``: ``static_wi8_ai8`` — int8 per-channel symmetric weights, int8 per-tensor asymmetric
  activations with ranges from calibration samples (AEQ's min/max with its default moving
  average over the samples). With ``io="float"`` the graph input and output stay float
  (AEQ's ``NO_QUANTIZE`` for the virtual INPUT/OUTPUT ops), so a QUANTIZE and a DEQUANTIZE sit at
  the ends; with ``io="int8"`` the model takes and returns int8 tensors.

Why AEQ and not litert-torch's PT2E quantizer for full INT8 — measured side by side on this
project's 2-core AVX-512 VNNI EPYC (benchmarks/tflite_latency.py and tflite_accuracy.py, results
in benchmarks/results/tflite_latency.json and tflite_accuracy.json):

- accuracy (top-1 of the INT8 .tflite; FP32 .tflite in brackets): CIFAR MobileNet v2 79.93 with
  AEQ, 26.87 with PT2E (80.11); ResNet-20 81.11 / 81.17 (81.03); EfficientNet-Lite0 on
  imagenet-sample 87.60 / 80.00 (87.40) — CIFAR-10 (JPEG copy) test split, 512 calibration
  images;
- latency (INT8/FP32 p50, 224x224, batch 1, 2 threads): MobileNet v2 0.48 vs 0.51, ResNet-50
  0.30 vs 0.32, EfficientNet-B0 0.46 vs 0.65, MobileNet v3-Large 0.51 vs 2.20;
- why: PT2E's annotator quantizes a fixed list of conv/linear/add/mul/pool patterns, and what
  it does not match stays float between DEQUANTIZE/QUANTIZE pairs (MobileNet v2: its 9 residual
  ADDs; EfficientNet-B0: 105 float ops) or, for hard-swish, becomes int8 HARD_SWISH ops XNNPACK
  does not run (MobileNet v3-Large: 21 partitions); AEQ quantizes every op these CNNs use, so
  the graph is integer end to end (0 float ops in all four models).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn._optional import installed_version, require
from edgecnn.errors import EdgeCNNError

QUANTIZED_PRECISIONS = ("fp16", "dynamic_int8", "int8")
IO_TYPES = ("float", "int8")


@dataclass
class LiteRTQuantized:
    model: bytes
    quantizer: str
    recipe: list[dict[str, Any]] = field(repr=False)
    calibration_samples: int = 0


def quantize_litert(
    float_model: bytes, precision: str, *, calibration: np.ndarray | None = None,
    io: str = "float", threads: int | None = None,
) -> LiteRTQuantized:
    """Quantize a float .tflite (as bytes) to ``precision``; see the module docstring.

    ``calibration`` holds float32 samples laid out as the model's input (after normalisation),
    one per row; only ``int8`` uses it, and requires it.
    """
    require("litert_quantizer", "LiteRT quantization")  # the error names the extra
    from litert_quantizer import algorithm_manager, qtyping, quantizer, recipe

    if precision not in QUANTIZED_PRECISIONS:
        raise EdgeCNNError(f"LiteRT quantization precision {precision!r} is not one of "
                           f"{', '.join(QUANTIZED_PRECISIONS)}")
    if io not in IO_TYPES:
        raise EdgeCNNError(f"tflite io {io!r} is not one of {', '.join(IO_TYPES)}")
    if io == "int8" and precision != "int8":
        raise EdgeCNNError(f"tflite io 'int8' needs precision 'int8' (full INT8), got "
                           f"{precision!r}: only a fully quantized model has int8 tensors to "
                           "expose")
    ops = qtyping.TFLOperationName
    q = quantizer.Quantizer(bytearray(float_model))
    if precision == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=ops.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    elif precision == "dynamic_int8":
        # Convolutions and fully-connected layers only: XNNPACK has no dynamic-range
        # depthwise kernel, and AEQ's recipe for every op left each int8-weight
        # DEPTHWISE_CONV_2D on TFLite's kernels, one delegate partition each (measured on
        # MobileNet v3: 11 partitions instead of 1).
        for op in (ops.CONV_2D, ops.FULLY_CONNECTED):
            q.add_dynamic_config(regex=".*", operation_name=op, num_bits=8)
    else:
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        if io == "float":
            for boundary in (ops.INPUT, ops.OUTPUT):
                q.update_quantization_recipe(
                    regex=".*", operation_name=boundary,
                    algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    samples = 0
    # AEQ's calibrator keeps every intermediate tensor on purpose (it reads their ranges); the
    # interpreter warns that this is meant for debugging.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        try:
            qsvs = None
            if q.need_calibration:
                samples = _check_calibration(calibration)
                qsvs = q.calibrate(_calibration_set(float_model, calibration),
                                   num_threads=threads or os.cpu_count() or 1)
                widen_empty_ranges(qsvs)
            result = q.quantize(qsvs, enable_progress_report=False)
        except EdgeCNNError:
            raise
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
            # AEQ names the op (and its tensor) it cannot quantize in its message.
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
            raise EdgeCNNError(f"litert-quantizer cannot quantize this model to {precision}: "
                               f"{reason}") from exc
    made_by = f"litert-quantizer {installed_version('litert-quantizer')}"
    return LiteRTQuantized(bytes(result.quantized_model), made_by,
                           q.get_quantization_recipe(), samples)


# Narrowest activation range a full-INT8 tensor gets. A tensor calibrated to an (almost) empty
# range -- a ReLU that never fires, as the 1-channel squeeze of an SE block on 16 channels can be
# after training -- gets a scale near 1e-12; XNNPACK refuses requantization ratios outside
# [2**-32, 256) and then fails to load the whole model ("failed to create XNNPACK runtime":
# measured on an SE-ResNet-20 after one epoch). Its values are all ~0, so a range of 0.01 loses
# nothing representable and keeps the ratios of its neighbours in bounds.
MIN_ACTIVATION_RANGE = 1e-2


def widen_empty_ranges(qsvs: dict[str, Any]) -> list[str]:
    """Widen, in place, each calibrated range narrower than MIN_ACTIVATION_RANGE (keeping its
    minimum); the names of the tensors widened."""
    widened = []
    for name, qsv in qsvs.items():
        if "min" not in qsv or "max" not in qsv:
            continue
        low, high = np.asarray(qsv["min"]), np.asarray(qsv["max"])
        narrow = (high - low) < MIN_ACTIVATION_RANGE
        if narrow.any():
            qsv["max"] = np.where(narrow, low + MIN_ACTIVATION_RANGE, high).astype(high.dtype)
            widened.append(name)
    return widened


def _check_calibration(calibration: np.ndarray | None) -> int:
    if calibration is None or len(calibration) == 0:
        raise EdgeCNNError("full INT8 (precision 'int8') needs calibration samples: pass "
                           "normalised float32 images, e.g. 512 drawn with "
                           "edgecnn.data.calibration_indices")
    if calibration.ndim != 4 or calibration.dtype != np.float32:
        raise EdgeCNNError(f"calibration samples must be float32 (N, C, H, W) (or (N, H, W, C) "
                           f"for NHWC), got {calibration.dtype} {calibration.shape}")
    return len(calibration)


def _calibration_set(float_model: bytes, calibration: np.ndarray) -> dict[str, list[dict]]:
    """AEQ's calibration input: {signature: [{input name: one sample}, ...]}."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=bytes(float_model))
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise EdgeCNNError(f"LiteRT calibration expects one signature, the model has "
                           f"{sorted(signatures)}")
    key, io = next(iter(signatures.items()))
    if len(io["inputs"]) != 1:
        raise EdgeCNNError(f"LiteRT calibration expects one input, the model has {io['inputs']}")
    runner = interpreter.get_signature_runner(key)
    expected = tuple(runner.get_input_details()[io["inputs"][0]]["shape"][1:])
    if tuple(calibration.shape[1:]) != expected:
        raise EdgeCNNError(f"calibration samples have shape {calibration.shape[1:]}, the model "
                           f"takes {expected}")
    name = io["inputs"][0]
    # The float model is converted for batch 1; AEQ runs it one sample at a time.
    return {key: [{name: calibration[i:i + 1]} for i in range(len(calibration))]}



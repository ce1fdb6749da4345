"""The FP16 ONNX a TensorRT FP16 engine is built from: precision in the graph, by NVIDIA
ModelOpt's AutoCast (beside :mod:`edgecnn.quantize.modelopt_tensorrt`, its INT8 Q/DQ)."""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import EdgeCNNError


def fp16_onnx(fp32: Path, out: Path) -> Path:
    """An FP16 copy of the FP32 ONNX with float32 input and output, for TensorRT's strongly
    typed networks (precision in the graph): NVIDIA ModelOpt's AutoCast.

    AutoCast runs the model once on CPU (ONNX Runtime, random inputs: the compile stage has no
    images at hand) and keeps a node FP32 when an input or output there exceeds 512 in
    magnitude (``data_max``: FP16 tops out at 65504, and the margin leaves room for what the
    next layer accumulates) or an initializer exceeds 65504 (``init_max``, FP16's largest
    value). ONNX Runtime's ``convert_float_to_float16``, used before, converts every node and
    clips such initializers. On MobileNetV2 and EfficientNet-B0 (random weights) both keep
    nothing in FP32 and give the same graph but for Cast names and opset (AutoCast writes 19).
    """
    from edgecnn.atomic import atomic_write_bytes
    from edgecnn.quantize.modelopt_tensorrt import INSTALL

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision
        from modelopt.onnx.autocast.logging_config import configure_logging
    except ImportError as exc:
        raise EdgeCNNError(f"the FP16 ONNX for TensorRT is made by NVIDIA ModelOpt's AutoCast "
                           f"(nvidia-modelopt, polygraphy), which cannot be imported here "
                           f"({exc.name or exc} is missing): {INSTALL}") from exc
    if not Path(fp32).is_file():
        raise EdgeCNNError(f"ONNX model {fp32} does not exist")
    configure_logging("WARNING")  # its per-node INFO lines; the build prints its own
    model = convert_to_mixed_precision(str(fp32), low_precision_type="fp16",
                                       keep_io_types=True, providers=["cpu"])
    for prop in model.metadata_props:
        if prop.key == "precision":
            prop.value = "fp16"
            break
    else:
        model.metadata_props.add(key="precision", value="fp16")
    atomic_write_bytes(out, model.SerializeToString())
    return out

"""The ``tensorrt`` target's INT8 Q/DQ ONNX, checked against NVIDIA's own placement.

The target quantizes with TensorRT Model Optimizer's ONNX PTQ (quantize/modelopt_tensorrt.py)
and then sets activation scales from the build's calibration table. These tests check, on
MobileNetV3-Large, EfficientNet-B0 and ResNet-18 (random weights, BatchNorm statistics
randomised so folded convolutions carry biases), that:

* Q/DQ sit exactly where a direct ``modelopt.onnx.quantization.quantize`` run on the same graph
  puts them, node by node and input by input (so nothing edgecnn does afterwards moves one);
* the placement is NVIDIA's (the rules ModelOpt 0.47 applies, written out so that a change
  shows): residual Adds quantized on the skip input only, so TensorRT fuses the Add into the
  branch's convolution; the classifier Gemm float (GEMV at batch 1); squeeze-excite Muls
  quantized on both inputs; weights per channel, symmetric, biases float;
* the activation scales are the table's (a table with doubled ranges doubles them), and with
  minmax on the same images the table's scales equal ModelOpt's own max calibration.

``pytest -s`` prints the per-op, per-role table. The models run at 64x64 here to fit the test
budget (placement does not depend on the resolution: ModelOpt's rules look at channels, kernel
shapes and graph structure); benchmarks/tensorrt_placement.py prints the table for these and
MobileNetV2 at 224.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgecnn.errors import EdgeCNNError
from edgecnn.quantize.qdq_placement import format_table, placement, role_table

# MobileNetV2 and ResNet-50 are in benchmarks/tensorrt_placement.py only: their roles (Clip,
# residual Add, projection shortcut, classifier Gemm) are all among these three's; ResNet-18
# has ResNet-50's residual and projection-shortcut roles in 18 s of setup instead of 25 s.
MODELS = ("mobilenet_v3_large", "efficientnet_b0", "resnet18")
RESOLUTION = 64
SAMPLES = 4
needs_modelopt = pytest.mark.skipif(
    importlib.util.find_spec("modelopt") is None,
    reason="nvidia-modelopt is not installed (pip install 'edgecnn[tensorrt]')")


def randomise_batchnorm(model: torch.nn.Module) -> None:
    """Trained-like BatchNorm statistics, so the folded convolutions carry biases."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_(0, 0.2)


def build_pair(name: str, folder, resolution: int, samples: int):
    """(FP32 export, tensorrt target's INT8, direct ModelOpt INT8, calibration images, info).
    The direct run is ModelOpt's ``quantize`` alone, with the target's arguments, in a child
    process as the target runs it (ModelOpt patches ONNX Runtime's quantizer process-wide, which
    would change the other tests of this session)."""
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model
    from edgecnn.quantize.modelopt_tensorrt import run_modelopt
    from edgecnn.quantize.targets import quantize_for_target

    model = create_model(name).eval()
    randomise_batchnorm(model)
    fp32 = folder / "fp32.onnx"
    export_onnx(model, fp32, resolution)
    images = np.random.default_rng(0).standard_normal(
        (samples, 3, resolution, resolution)).astype(np.float32)
    target = folder / "model.int8.tensorrt.onnx"
    info = quantize_for_target("tensorrt", fp32, target, images, method="minmax")
    direct = folder / "direct.onnx"
    run_modelopt(fp32, direct, images, "max")
    return fp32, target, direct, images, info


@pytest.fixture(scope="module", params=MODELS)
def pair(request, tmp_path_factory):
    pytest.importorskip("modelopt.onnx.quantization",
                        reason="nvidia-modelopt is not installed (pip install 'edgecnn[tensorrt]')")
    folder = tmp_path_factory.mktemp(request.param)
    return (request.param, *build_pair(request.param, folder, RESOLUTION, SAMPLES))


TABLES: dict[str, dict] = {}


@needs_modelopt
def test_qdq_sit_exactly_where_modelopt_puts_them(pair):
    name, _, target, direct, _, _ = pair
    ours, theirs = placement(target), placement(direct)
    assert ours.keys() == theirs.keys()
    differ = {n: (ours[n], theirs[n]) for n in ours if ours[n] != theirs[n]}
    assert not differ, f"{len(differ)} nodes differ, e.g. {list(differ.items())[:3]}"
    TABLES[name] = {"tensorrt target": role_table(ours), "ModelOpt direct": role_table(theirs)}
    print(f"\n{format_table({name: TABLES[name]})}")


@needs_modelopt
def test_placement_follows_nvidias_rules(pair):
    _, _, target, _, _, _ = pair
    nodes = placement(target)
    table = role_table(nodes)
    for (op, role), (dq, total) in table.items():
        if op in ("Conv",) and role in ("act", "weight"):
            assert dq == total, f"{op} {role}: {dq}/{total} quantized"
        if role in ("bias", "branch", "proj.main", "swish.x", "swish.gate"):
            assert dq == 0, f"{op} {role}: {dq}/{total} quantized, TensorRT fuses these"
        if role in ("skip", "proj.shortcut", "se.x", "se.gate"):
            assert dq == total, f"{op} {role}: {dq}/{total} quantized"
        if op == "Gemm":  # the classifier: GEMV at batch 1, which TensorRT runs faster float
            assert dq == 0, f"Gemm {role}: {dq}/{total}"
    assert any(role == "skip" for _, role in table), "every model here has residual Adds"


@needs_modelopt
def test_weights_per_channel_symmetric_and_activations_int8(pair):
    _, _, target, _, _, _ = pair
    graph = onnx.load(str(target)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        dq = producer[conv.input[1]]
        q = producer[dq.input[0]]
        assert q.op_type == "QuantizeLinear" and q.input[0] in inits, conv.name
        weight, scale = inits[q.input[0]], inits[q.input[1]]
        assert scale.shape == (weight.shape[0],), conv.name  # one scale per output channel
        assert inits[q.input[2]].dtype == np.int8 and not inits[q.input[2]].any(), conv.name
    for q in (n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits):
        assert inits[q.input[2]].dtype == np.int8 and not inits[q.input[2]].any(), q.name
        assert inits[q.input[1]].size == 1 and inits[q.input[1]].dtype == np.float32, q.name


@needs_modelopt
def test_scales_come_from_the_table_and_match_modelopts_max(pair, tmp_path):
    from edgecnn.quantize.modelopt_tensorrt import quantized_tensors
    from edgecnn.quantize.onnxruntime_static import calibrate_onnx
    from edgecnn.quantize.targets import quantize_for_target

    name, fp32, target, direct, images, info = pair
    ours, theirs = quantized_tensors(target), quantized_tensors(direct)
    assert info.activation_scales == {"from_table": len(ours), "from_modelopt": 0}
    assert ours.keys() == theirs.keys()
    for tensor, scale in ours.items():  # same images, minmax = max: the same scale
        assert scale == pytest.approx(theirs[tensor], rel=1e-6), tensor
    if name != MODELS[0]:
        return
    # a table with other ranges gives other scales: the table, not ModelOpt, decides them
    table = calibrate_onnx(fp32, images, method="minmax")
    table.ranges = {k: (2 * lo, 2 * hi) for k, (lo, hi) in table.ranges.items()}
    del table.ranges[next(iter(ours))]  # one tensor the table lacks: ModelOpt's scale
    doubled = quantize_for_target("tensorrt", fp32, tmp_path / "m.int8.tensorrt.onnx", images,
                                  table=table)
    assert doubled.activation_scales == {"from_table": len(ours) - 1, "from_modelopt": 1}
    scales = quantized_tensors(doubled.path)
    first = next(iter(ours))
    assert scales[first] == pytest.approx(ours[first], rel=1e-6)
    for tensor in list(ours)[1:]:
        assert scales[tensor] == pytest.approx(2 * ours[tensor], rel=1e-6), tensor


@needs_modelopt
def test_runs_in_onnx_runtime_close_to_fp32(pair):
    from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner

    _, fp32, target, _, images, _ = pair
    ref = OnnxRuntimeRunner(fp32).run(images).astype(np.float64)
    out = OnnxRuntimeRunner(target).run(images).astype(np.float64)
    cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    assert cos.min() > 0.98


@needs_modelopt
def test_excluded_layers_read_float_and_unknown_names_are_refused(pair, tmp_path):
    from edgecnn.quantize.targets import quantize_for_target

    name, fp32, target, _, images, _ = pair
    if name != MODELS[0]:
        return  # once is enough
    convs = [n for n, (op, _) in placement(target).items() if op == "Conv"]
    keep = convs[5]
    out = tmp_path / "fallback.int8.tensorrt.onnx"
    info = quantize_for_target("tensorrt", fp32, out, images, exclude_nodes=(keep,))
    nodes = placement(out)
    assert info.excluded_nodes == [keep]
    assert set(nodes[keep][1].values()) <= {"float", "const"}, nodes[keep]
    assert all(nodes[c][1]["act"] == "dq" for c in convs if c != keep)
    with pytest.raises(EdgeCNNError, match="not in"):
        quantize_for_target("tensorrt", fp32, tmp_path / "x.onnx", images,
                            exclude_nodes=("no_such_node",))
    assert not (tmp_path / "x.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".modelopt-")]


@needs_modelopt
def test_onnx_runtime_quantization_is_unchanged_after_the_tensorrt_target(pair):
    """ModelOpt patches ONNX Runtime's calibrators and QDQ registry in its process; the target
    runs it in a child, so the onnxruntime target's calibration here is what it was."""
    from edgecnn.quantize.onnxruntime_static import calibrate_onnx, calibration_op_types

    name, fp32, _, _, images, info = pair
    if name != MODELS[0]:
        return  # once is enough
    assert "Concat" in calibration_op_types() and "Relu" in calibration_op_types()
    again = calibrate_onnx(fp32, images, method="minmax")
    assert again.ranges and again.ranges == info.table.ranges


def test_missing_modelopt_is_one_error_naming_the_package(monkeypatch, tmp_path):
    from edgecnn.quantize.modelopt_tensorrt import require_modelopt
    from edgecnn.quantize.targets import quantize_for_target

    monkeypatch.setitem(sys.modules, "modelopt.onnx.quantization", None)  # import fails
    with pytest.raises(EdgeCNNError, match=r"nvidia-modelopt.*pip install 'edgecnn\[tensorrt\]'"):
        require_modelopt()
    with pytest.raises(EdgeCNNError, match="nvidia-modelopt"):
        quantize_for_target("tensorrt", tmp_path / "fp32.onnx", tmp_path / "m.onnx",
                            np.zeros((1, 3, 8, 8), np.float32))


@needs_modelopt
def test_modelopt_imports_beside_the_cpu_onnxruntime():
    """The tensorrt extra (not nvidia-modelopt[onnx]) keeps the CPU onnxruntime: no
    onnxruntime-gpu distribution is installed, and ModelOpt's ONNX PTQ and AutoCast import."""
    import modelopt.onnx.autocast
    import modelopt.onnx.quantization  # noqa: F401
    import onnxruntime

    names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert "onnxruntime" in names
    assert not {"onnxruntime-gpu", "onnxruntime_gpu"} & names
    assert importlib.metadata.version("nvidia-modelopt").startswith("0.47.")
    assert "CPUExecutionProvider" in onnxruntime.get_available_providers()

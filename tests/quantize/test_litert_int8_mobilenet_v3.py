"""Full-INT8 MobileNet v3 through LiteRT: integer end to end, and one XNNPACK partition.

MobileNet v3-Small at 32x32 stands in for v3-Large (same blocks: hard-swish, squeeze-excite
with hard-sigmoid gates, 5x5 depthwise); random weights with BatchNorm statistics re-estimated
on real CIFAR-10 (JPEG copy) images, so activation ranges look like a trained network's.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("litert_torch", reason="the LiteRT export needs litert-torch (tflite extra)")
pytest.importorskip("litert_quantizer", reason="LiteRT quantization needs litert-quantizer")
pytest.importorskip("ai_edge_litert", reason="the tflite runner needs ai-edge-litert")

from edgecnn.backends.tflite_backend import TFLiteRunner
from edgecnn.data.eval_batches import normalize_nchw
from edgecnn.export.tflite_export import export_tflite
from edgecnn.models import create_model


@pytest.fixture(scope="module")
def mobilenet_v3(cifar_test_split):
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=10, cifar_stem=True)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    x = normalize_nchw(cifar_test_split.images[:256], model.card.mean, model.card.std)
    model.train()
    with torch.no_grad():
        for start in range(0, 256, 64):
            model(torch.from_numpy(x[start:start + 64]))
    return model.eval(), x[:128], x[128:]


@pytest.fixture(scope="module")
def int8_exports(mobilenet_v3, tmp_path_factory):
    model, calibration, check = mobilenet_v3
    folder = tmp_path_factory.mktemp("mnv3")
    return {rewrite: export_tflite(model, folder / f"rewrite_{rewrite}.tflite", 32,
                                   precision="int8", calibration=calibration, check_samples=check,
                                   xnnpack_rewrites=rewrite, threads=2)
            for rewrite in (True, False)}


def test_full_int8_mobilenet_v3_has_no_float_compute(int8_exports, mobilenet_v3):
    result = int8_exports[True]
    hardswish = sum(isinstance(m, torch.nn.Hardswish) for m in mobilenet_v3[0].modules())
    # every hard-swish rewritten, all but none-or-few with the 1/6 folded into the next layers
    assert sum(result.rewrites.values()) == hardswish > 0
    assert result.rewrites["hardswish_scale_folded_into_next_layers"] >= hardswish - 1
    # exactly what the inspector names: the float input's QUANTIZE, the float output's DEQUANTIZE
    assert result.ops.float_ops == [] and result.ops.float_conversions == []
    io = result.ops.io_conversions
    assert [(op.op, op.index) for op in io] == [("QUANTIZE", 0),
                                                ("DEQUANTIZE", len(result.ops.ops) - 1)]
    assert "HARD_SWISH" not in result.ops.op_counts()
    # random weights give close logits, so argmax flips easily; chance would be 0.1
    assert result.check.top1_agreement >= 0.5, result.check


def test_every_int8_op_runs_inside_one_xnnpack_partition(int8_exports):
    delegation = TFLiteRunner(int8_exports[True].path, threads=2).delegation()
    assert delegation.partitions == 1 and delegation.not_delegated == []


def test_without_the_rewrite_int8_hardswish_falls_out_of_xnnpack(int8_exports):
    """Why the rewrite exists: XNNPACK takes HARD_SWISH only in float, so each int8 one splits
    the graph (and runs on TFLite's reference kernel)."""
    plain = int8_exports[False]
    hardswish_ops = plain.ops.op_counts()["HARD_SWISH"]
    delegation = TFLiteRunner(plain.path, threads=2).delegation()
    assert {op["op"] for op in delegation.not_delegated} == {"HARD_SWISH"}
    assert len(delegation.not_delegated) == hardswish_ops
    assert delegation.partitions > 1
    assert all(op["layer"] for op in delegation.not_delegated)

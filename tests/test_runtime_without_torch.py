"""The runtime-only install (``edgecnn[runtime]``, no torch): bench and eval of an ONNX artifact.

The ONNX file is exported here (with torch); the commands then run in a child interpreter in
which ``import torch`` fails, as on a device where torch is not installed.
"""

from __future__ import annotations

import json

import pytest

from edgecnn.backends.torch_backend import TorchRunner
from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.train.evaluate import evaluate
from tests.helpers import run_cli_without_torch


@pytest.fixture(scope="module")
def resnet20(shared):
    weights = shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th"
    return create_model("resnet20", pretrained=str(weights))


@pytest.fixture(scope="module")
def resnet20_onnx(resnet20, tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime") / "resnet20.onnx"
    export_onnx(resnet20, path, 32)
    return path


def test_bench_onnx_without_torch(resnet20_onnx, tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli_without_torch("bench", str(resnet20_onnx), "--backend", "onnxruntime",
                                   "--batch", "1,4", "--warmup", "2", "--iterations", "10",
                                   "--seconds", "0.2", "--threads", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "batch    1: p50" in result.stdout and "batch    4: p50" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["results"]["4"]["iterations"] >= 10 and saved["results"]["4"]["p50_ms"] > 0
    assert saved["context"]["libraries"]["onnxruntime"]


def test_eval_onnx_without_torch_matches_torch(resnet20, resnet20_onnx, cifar_test_split):
    result = run_cli_without_torch("eval", str(resnet20_onnx), "--data", "cifar10-jpeg",
                                   "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # resolution, mean and std came from the file's metadata
    assert summary["backend"] == "onnxruntime" and summary["resolution"] == 32
    assert summary["samples"] == 10_000
    torch_result = evaluate(TorchRunner(resnet20), cifar_test_split, resnet20.card.mean,
                            resnet20.card.std)
    # the same inputs (numpy and torch normalisation agree bit for bit); ONNX Runtime's float
    # kernels may flip a borderline image or two
    assert abs(summary["top1"] - torch_result.top1) <= 0.05, (summary["top1"], torch_result.top1)


def test_eval_artifact_without_metadata_names_the_flags(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["y"])], "bare",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 12])])
    path = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    result = run_cli_without_torch("eval", str(path), "--data", "cifar10-jpeg")
    assert result.returncode == 2
    assert "carries no edgecnn metadata" in result.stderr and "--mean" in result.stderr
    assert "Traceback" not in result.stderr

"""Runners free what they hold: ``with open_runner(...)`` closes the session, interpreter or
compiled model on leaving the block, a closed runner refuses to run in one clear line, and a
second close does nothing. CPU runtimes have no device-side timing: ``time_batch`` is None."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.targets.registry import open_runner


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    path = tmp_path_factory.mktemp("lifecycle") / "model.onnx"
    export_onnx(create_model("resnet20", num_classes=10).eval(), path, 32)
    return path


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_runner_closes_on_leaving_its_block_and_then_refuses_to_run(fp32_onnx, backend):
    if backend == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra is not installed")
    x = np.zeros((1, 3, 32, 32), np.float32)
    with open_runner(backend, fp32_onnx, threads=1) as runner:
        assert runner.run(x).shape == (1, 10)
        assert runner.time_batch(1) is None  # no device-side timing on a CPU runtime
        assert runner.metadata["arch"] == "resnet20"
    with pytest.raises(EdgeCNNError, match=f"the {backend} runner of model.onnx is closed"):
        runner.run(x)
    runner.close()  # a second close does nothing

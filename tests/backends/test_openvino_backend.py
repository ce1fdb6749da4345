"""The OpenVINO runner: .onnx and IR .xml, threads, any batch size, metadata, errors, and the
same logits as ONNX Runtime on an FP32 model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed")

from edgecnn.backends.base import Runner
from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.backends.openvino_backend import OpenVINORunner
from edgecnn.errors import EdgeCNNError

RESNET20 = "weights/cifar10-resnet/resnet20-12fca82f.th"


@pytest.fixture(scope="module")
def fp32_files(tmp_path_factory, shared):
    """The real ResNet-20 as ONNX and as OpenVINO IR converted from it."""
    import openvino as ov

    from edgecnn.export.onnx_export import export_onnx
    from edgecnn.models import create_model

    folder = tmp_path_factory.mktemp("openvino")
    model = create_model("resnet20", pretrained=str(shared / RESNET20), num_classes=10)
    export_onnx(model, folder / "model.onnx", 32)
    ov.save_model(ov.Core().read_model(str(folder / "model.onnx")), str(folder / "model.xml"),
                  compress_to_fp16=False)
    return folder / "model.onnx", folder / "model.xml"


@pytest.fixture(scope="module")
def images(cifar_test_split):
    from edgecnn.data.eval_batches import normalize_nchw

    return normalize_nchw(cifar_test_split.images[:256], (0.485, 0.456, 0.406),
                          (0.229, 0.224, 0.225))


@pytest.mark.parametrize("kind", ["onnx", "xml"])
def test_runs_onnx_and_ir_at_any_batch(fp32_files, images, kind):
    runner = OpenVINORunner(fp32_files[kind == "xml"], threads=2)
    assert isinstance(runner, Runner) and runner.backend == "openvino"
    assert runner.input_spec().shape == (None, 3, 32, 32)
    assert runner.threads == 2 and runner.compiled.get_property("INFERENCE_NUM_THREADS") == 2
    one, four = runner.run(images[:1]), runner.run(images[:4])
    assert one.shape == (1, 10) and four.shape == (4, 10)
    assert np.allclose(one[0], four[0], atol=1e-4)


@pytest.mark.parametrize("kind", ["onnx", "xml"])
def test_metadata_comes_through(fp32_files, kind):
    meta = OpenVINORunner(fp32_files[kind == "xml"]).metadata
    assert meta["arch"] == "resnet20" and meta["resolution"] == "32"
    assert meta["mean"] == "[0.485, 0.456, 0.406]"


def test_agrees_with_onnxruntime_on_fp32(fp32_files, images):
    ov_runner = OpenVINORunner(fp32_files[0], threads=2)
    assert ov_runner.inference_precision == "f32"  # not the CPU plugin's bf16 default
    ort = OnnxRuntimeRunner(fp32_files[0], threads=2).run(images)
    ov = ov_runner.run(images)
    assert np.abs(ov - ort).max() < 1e-3
    assert (ov.argmax(1) == ort.argmax(1)).all()


def test_outputs_are_not_overwritten_by_the_next_run(fp32_files, images):
    runner = OpenVINORunner(fp32_files[0])
    first = runner.run(images[:2])
    kept = first.copy()
    runner.run(images[2:4])
    assert np.array_equal(first, kept)


def test_errors_name_the_file(tmp_path, fp32_files, images):
    with pytest.raises(EdgeCNNError, match="does not exist"):
        OpenVINORunner(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(EdgeCNNError, match=r"OpenVINO cannot load .*bad\.onnx"):
        OpenVINORunner(tmp_path / "bad.onnx")
    (tmp_path / "model.tflite").write_bytes(b"x")
    with pytest.raises(EdgeCNNError, match=r"\.onnx or IR \.xml"):
        OpenVINORunner(tmp_path / "model.tflite")
    (tmp_path / "lonely.xml").write_text("<net/>")
    with pytest.raises(EdgeCNNError, match=r"no weights file lonely\.bin"):
        OpenVINORunner(tmp_path / "lonely.xml")
    with pytest.raises(EdgeCNNError, match="precision 'int4'"):
        OpenVINORunner(fp32_files[0], inference_precision="int4")
    runner = OpenVINORunner(fp32_files[0])
    with pytest.raises(EdgeCNNError, match=r"takes input \(None, 3, 32, 32\)"):
        runner.run(images[:2, :, :16, :16])


def test_registry_opens_it(fp32_files):
    from edgecnn.targets.registry import open_runner

    runner = open_runner("openvino", fp32_files[1], threads=1)
    assert isinstance(runner, OpenVINORunner) and runner.threads == 1

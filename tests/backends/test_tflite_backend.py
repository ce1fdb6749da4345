"""The tflite runner: the Runner surface over ai-edge-litert (batches, shapes, errors, threads),
and that it evaluates an artifact on a device without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the tflite runner needs ai-edge-litert")
pytest.importorskip("litert_torch", reason="making a .tflite needs litert-torch (tflite extra)")

from edgecnn.backends.base import Runner
from edgecnn.backends.tflite_backend import TFLiteRunner, load_interpreter_class
from edgecnn.data.eval_batches import normalize_nchw
from edgecnn.errors import EdgeCNNError
from edgecnn.export.tflite_export import export_tflite
from edgecnn.models import create_model
from edgecnn.targets.registry import open_runner
from tests.helpers import HIDE_TORCH


@pytest.fixture(scope="module")
def resnet20_tflite(shared, tmp_path_factory):
    weights = shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th"
    model = create_model("resnet20", pretrained=str(weights)).eval()
    path = tmp_path_factory.mktemp("runner") / "resnet20.tflite"
    export_tflite(model, path, 32)
    return path


def test_runner_surface_and_metadata(resnet20_tflite):
    runner = TFLiteRunner(resnet20_tflite, threads=2)
    assert isinstance(runner, Runner) and runner.backend == "tflite"
    assert runner.input_spec().shape == (None, 3, 32, 32)
    assert runner.input_spec().layout == "NCHW" and runner.input_spec().dtype == "float32"
    assert runner.metadata["arch"] == "resnet20" and runner.metadata["threads"] == "2"
    assert runner.metadata["runtime"].startswith("ai-edge-litert ")
    # XNNPACK takes every op but the stride-2 slices of ResNet-20's option-A shortcuts
    # (x[:, :, ::2, ::2]; its STRIDED_SLICE supports stride 1 only), each with its layer.
    delegation = runner.delegation()
    assert {(op["op"], op["layer"]) for op in delegation.not_delegated} == {
        ("STRIDED_SLICE", "layer2.0.shortcut"), ("STRIDED_SLICE", "layer3.0.shortcut")}
    assert delegation.partitions == 3


def test_batch_sizes_are_resized_and_agree_with_single_runs(resnet20_tflite):
    runner = open_runner("tflite", resnet20_tflite, threads=2)
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32), dtype=np.float32)
    singles = np.concatenate([runner.run(x[i:i + 1]) for i in range(5)])
    for batch in (5, 2, 5):
        out = runner.run(x[:batch])
        assert out.shape == (batch, 10) and out.dtype == np.float32
        np.testing.assert_allclose(out, singles[:batch], rtol=1e-4, atol=1e-4)


def test_wrong_input_shape_is_named(resnet20_tflite):
    runner = TFLiteRunner(resnet20_tflite)
    with pytest.raises(EdgeCNNError, match=r"resnet20.tflite takes input \(None, 3, 32, 32\), "
                                           r"got \(1, 3, 64, 64\)"):
        runner.run(np.zeros((1, 3, 64, 64), np.float32))


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(EdgeCNNError, match=r"TFLite model .*absent.tflite does not exist"):
        TFLiteRunner(tmp_path / "absent.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(EdgeCNNError, match=r"bad\.tflite is not a TFLite model"):
        TFLiteRunner(bad)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 8)
    with pytest.raises(EdgeCNNError, match=r"truncated\.tflite"):
        TFLiteRunner(truncated)


def test_bad_thread_count_is_refused(resnet20_tflite):
    with pytest.raises(EdgeCNNError, match="threads must be >= 1"):
        TFLiteRunner(resnet20_tflite, threads=0)


def test_ai_edge_litert_is_preferred_over_tflite_runtime():
    _, runtime = load_interpreter_class()
    assert runtime.startswith("ai-edge-litert ")


def test_falls_back_to_tflite_runtime(resnet20_tflite):
    pytest.importorskip("tflite_runtime", reason="tflite-runtime is not installed in this venv: "
                                                 "its last release (2.14, 2023) needs numpy < 2; "
                                                 "README, LiteRT, says how it was checked")
    code = ("import sys; sys.modules['ai_edge_litert'] = None; import numpy as np; "
            "from edgecnn.backends.tflite_backend import TFLiteRunner; "
            f"r = TFLiteRunner({str(resnet20_tflite)!r}, threads=1); "
            "print(r.metadata['runtime'], r.run(np.zeros((2, 3, 32, 32), np.float32)).shape)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "tflite-runtime" in result.stdout and "(2, 10)" in result.stdout


def test_evaluates_without_torch(resnet20_tflite, cifar_test_split):
    """A device with only the runtime: the runner, the metadata and numpy evaluation."""
    images = cifar_test_split.images[:200]
    np.save(resnet20_tflite.parent / "images.npy", images)
    code = HIDE_TORCH + (
        "import json, numpy as np; "
        "from edgecnn.backends.tflite_backend import TFLiteRunner; "
        "from edgecnn.data.eval_batches import normalize_nchw; "
        f"r = TFLiteRunner({str(resnet20_tflite)!r}, threads=2); m = r.metadata; "
        f"x = np.load({str(resnet20_tflite.parent / 'images.npy')!r}); "
        "y = r.run(normalize_nchw(x, json.loads(m['mean']), json.loads(m['std']))); "
        "assert 'torch' not in [k for k in sys.modules if sys.modules[k] is not None]; "
        "print(json.dumps(y.argmax(1).tolist()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    predictions = np.asarray(json.loads(result.stdout.strip().splitlines()[-1]))
    model = create_model("resnet20")  # only for mean/std, to normalise the same way here
    runner = TFLiteRunner(resnet20_tflite, threads=2)
    expected = runner.run(normalize_nchw(images, model.card.mean, model.card.std)).argmax(1)
    assert (predictions == expected).all()
    # a trained model (ResNet-20 loses several points on the JPEG copy; chance is 0.1)
    assert (predictions == cifar_test_split.labels[:200]).mean() > 0.6

"""Files a user hands to edgecnn that are not what they claim: checkpoints, archives, models,
and output paths that cannot be written."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.hardening.conftest import assert_user_error, snapshot


def _resnet20_state():
    from edgecnn.models import create_model

    return create_model("resnet20", num_classes=10).state_dict()


def test_a_checkpoint_holding_nan_is_refused(cli, tmp_path, tiny_recipe_text):
    import torch
    from safetensors.torch import save_file

    state = _resnet20_state()
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    weights = tmp_path / "nan.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(tiny_recipe_text.replace("arch: resnet20", f"arch: resnet20, pretrained: "
                                               f'"{weights}"'))
    before = snapshot(tmp_path)
    assert_user_error(cli("build", recipe, "--out", tmp_path / "run"), str(weights),
                      "'conv1.weight'", "NaN")
    assert_user_error(cli("eval", "resnet20", "--weights", weights, "--num-classes", "10"),
                      "NaN")
    assert snapshot(tmp_path) == before
    assert torch.isnan(state["conv1.weight"]).any()


def test_an_export_whose_outputs_are_nan_fails_its_numeric_check(cli, tmp_path,
                                                                 tiny_recipe_text):
    """Negative BatchNorm variances are finite numbers that make every output NaN: the
    torch-vs-ONNX comparison (NaN vs NaN) must fail, not pass with 'max |diff| nan'."""
    import torch

    state = _resnet20_state()
    state["bn1.running_var"] = -torch.ones_like(state["bn1.running_var"])
    weights = tmp_path / "negvar.th"
    torch.save(state, weights)
    text = tiny_recipe_text.replace("arch: resnet20", f'arch: resnet20, pretrained: "{weights}"')
    text = text[:text.index("train:")] + text[text.index("quantize:"):]  # no training
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    run = tmp_path / "run"
    assert_user_error(cli("build", recipe, "--out", run), "model.fp32.onnx differs", "nan")
    assert not (run / "export").exists()


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_tar_members_with_absolute_paths_are_refused(cli, tmp_path, private_cache):
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    archive = _tar(tmp_path / "data.tar", {"test/cat/0.png": png.getvalue(),
                                           "/tmp/evil/1.png": png.getvalue()})
    assert_user_error(cli("eval", "resnet20", "--num-classes", "1", "--data", archive),
                      "'/tmp/evil/1.png'", "outside the folder")
    assert not Path("/tmp/evil/1.png").exists()


@pytest.mark.parametrize(("argv", "fragment"), [
    (["eval", "resnet20", "--batch-size", "0"], "--batch-size"),
    (["eval", "model.onnx", "--resolution", "-3"], "--resolution"),
    (["bench", "model.onnx", "--threads", "0"], "--threads"),
    (["bench", "model.onnx", "--seconds", "inf"], "--seconds"),
    (["bench", "model.onnx", "--seconds", "nan"], "--seconds"),
    (["bench", "model.onnx", "--iterations", "0"], "--iterations"),
    (["bench", "model.onnx", "--batch", "1,99999999"], "--batch"),
    (["device-run", "ctx", "--rounds", "0"], "--rounds"),
])
def test_out_of_range_flags_exit_2(cli, argv, fragment):
    assert_user_error(cli(*argv), fragment)


def test_unwritable_outputs_of_bench_and_eval_exit_2(cli, tmp_path, artifact_files):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    before = snapshot(tmp_path)
    onnx = artifact_files["onnx"]
    assert_user_error(cli("bench", onnx, "--batch", "1", "--iterations", "1", "--seconds", "0",
                          "--warmup", "0", "--json", a_file / "out.json"), str(a_file))
    folder = tmp_path / "a_folder.json"
    folder.mkdir()
    assert_user_error(cli("bench", onnx, "--batch", "1", "--iterations", "1", "--seconds", "0",
                          "--warmup", "0", "--json", folder), str(folder))
    assert snapshot(tmp_path) == {**before, "a_folder.json": ("dir", 0, 0)}


def test_a_cache_setting_that_is_a_file_exits_2(cli, tmp_path, monkeypatch, tiny_recipe):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("EDGECNN_CACHE", str(cache))
    assert_user_error(cli("eval", "resnet20", "--data", "cifar10-jpeg"), "EDGECNN_CACHE")
    assert_user_error(cli("build", tiny_recipe, "--dry-run"), "EDGECNN_CACHE")


def test_an_openvino_ir_with_unnamed_tensors_runs(cli, tmp_path):
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter([-1, 3, 8, 8], np.float32)  # no tensor names, as other tools write
    pooled = ops.reduce_mean(image, ops.constant(np.array([2, 3])), keep_dims=False)
    model = ov.Model([ops.result(pooled)], [image])
    xml = tmp_path / "unnamed.xml"
    ov.save_model(model, str(xml))
    outcome = cli("bench", xml, "--batch", "1", "--iterations", "1", "--seconds", "0",
                  "--warmup", "0")
    assert outcome.code == 0, outcome.err
    assert_user_error(cli("eval", xml), "carries no edgecnn metadata")


def test_a_tensorrt_sidecar_that_is_a_folder_is_an_engine_mismatch(tmp_path):
    from edgecnn.backends.tensorrt.sidecar import EngineMismatch, read_sidecar, sidecar_path

    engine = tmp_path / "model.int8.plan"
    engine.write_bytes(b"engine")
    sidecar_path(engine).mkdir()
    with pytest.raises(EngineMismatch, match="unreadable"):
        read_sidecar(engine)


def _broadcast_trap_onnx(path: Path) -> Path:
    """A graph that loads, runs at batch 1 or 2 and cannot compute batch 3 (its constant has a
    batch of 2): what corrupt shape constants do to a real model (found by the fuzz test)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constant = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "c")
    graph = helper.make_graph(
        [helper.make_node("Add", ["input", "c"], ["sum"]),
         helper.make_node("GlobalAveragePool", ["sum"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["logits"])], "trap",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], [constant])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_graph_that_fails_at_run_time_exits_2(cli, tmp_path, backend):
    onnx = _broadcast_trap_onnx(tmp_path / "trap.onnx")
    args = ("--batch", "3", "--iterations", "1", "--seconds", "0", "--warmup", "0")
    assert_user_error(cli("bench", onnx, "--backend", backend, *args), "cannot run trap.onnx")

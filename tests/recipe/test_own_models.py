"""Bring your own model and data: ``model.entry`` (the user's nn.Module), ``model.onnx`` (a graph
another tool made) and datasets with no train split, each through `edgecnn build` as a user runs
it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecnn.hashing import sha256_file
from tests.hardening.conftest import assert_user_error, run_cli
from tests.helpers import PRETRAINED_RECIPE, PRETRAINED_WEIGHTS, build, report_rows

OWN_MODELS = Path(__file__).parent / "own_models"
CIFAR_MEAN, CIFAR_STD = "[0.485, 0.456, 0.406]", "[0.229, 0.224, 0.225]"  # ResNet-20's training

ENTRY_RECIPE = """\
name: own
model: {{entry: "tiny_nets:tiny_net", kwargs: {{width: 16}}, search_path: "{models}"}}
data: {{dataset: "{dataset}", val_size: 40, eval_batch_size: 50,
       mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}}
train: {{epochs: 1, batch_size: 40, lr: 0.05, schedule: cosine, precision: fp32}}
prune: {{method: channels, ratio: 0.25, round_to: 4,
        finetune: {{epochs: 1, batch_size: 40, lr: 0.01, precision: fp32}}}}
quantize: {{calibration: {{samples: 64}}}}
export: {{targets: [onnxruntime, tflite]}}
benchmark: {{batch_sizes: [1], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1,
            backends: [onnxruntime, tflite]}}
output: "{out}"
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_own_module_trains_prunes_and_deploys_to_onnxruntime_and_tflite(tiny_cifar_folder,
                                                                        tmp_path):
    """Acceptance 2: a module defined in a test file (residual add, depthwise conv) through
    train, channel pruning, ONNX Runtime INT8 and LiteRT INT8."""
    pytest.importorskip("litert_torch", reason="the tflite extra is not installed")
    run = tmp_path / "run"
    recipe = _write(tmp_path / "r.yaml", ENTRY_RECIPE.format(
        models=OWN_MODELS, dataset=tiny_cifar_folder, out=run))
    result = build(str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = report_rows(run)
    for variant in ("dense", "pruned"):
        for backend in ("onnxruntime", "tflite"):
            for precision in ("fp32", "int8"):
                row = rows[(backend, precision, variant)]
                assert row["top1"] is not None and row["latency"]["1"]["p50_ms"] > 0
    card = json.loads((run / "model" / "card.json").read_text())
    assert card["name"] == "entry:tiny_nets:tiny_net" and card["family"] == "custom"
    assert card["entry"]["source_sha256"] == sha256_file(OWN_MODELS / "tiny_nets.py")
    assert card["entry"]["kwargs"] == {"width": 16}
    # the profiler counted the user's layers (3x3 stem 32*32*16*27 alone is 442,368 MACs)
    assert card["macs"] > 442_368 and card["params"] > 0
    prune = json.loads((run / "prune" / "manifest.json").read_text())["summary"]
    assert prune["params"] < card["params"]
    assert rows[("onnxruntime", "int8", "pruned")]["params"] == prune["params"]


def test_entry_module_beside_the_recipe_is_found_without_search_path(capsys, tmp_path):
    shutil.copy(OWN_MODELS / "tiny_nets.py", tmp_path / "my_nets.py")
    recipe = _write(tmp_path / "r.yaml", "name: own\nmodel: {entry: 'my_nets:tiny_net'}\n"
                                         "data: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}\n")
    outcome = run_cli(capsys, "validate", recipe)
    assert outcome.code == 0, outcome.err
    assert "entry:my_nets:tiny_net" in outcome.out


def _val_only_folder(tiny_cifar_folder: Path, root: Path) -> Path:
    """An ImageNet-style tree: a val folder and nothing else (the tiny folder's 100 test
    images)."""
    shutil.copytree(tiny_cifar_folder / "test", root / "val")
    return root


VAL_ONLY_RECIPE = """\
name: val-only
model: {{arch: resnet20, pretrained: "PRETRAINED_WEIGHTS"}}
data: {{dataset: "{dataset}", eval_split: val, val_size: 0, eval_batch_size: 50}}
quantize: {{calibration: {{samples: 30}}, max_accuracy_drop: 5.0}}
benchmark: {{batch_sizes: [1], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1}}
output: "{out}"
""".replace("PRETRAINED_WEIGHTS", PRETRAINED_WEIGHTS)


def test_dataset_without_train_calibrates_on_images_it_then_leaves_out(tiny_cifar_folder,
                                                                       tmp_path):
    """Acceptance 1 of datasets without a train split: a deployment of a trained model needs
    none; the calibration images come out of the evaluation split and are not evaluated."""
    data = _val_only_folder(tiny_cifar_folder, tmp_path / "imagenet-style")
    run = tmp_path / "run"
    recipe = _write(tmp_path / "r.yaml", VAL_ONLY_RECIPE.format(dataset=data, out=run))
    result = build(str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    evaluate = json.loads((run / "evaluate" / "manifest.json").read_text())["summary"]
    assert evaluate["images"] == 100 - 30
    assert "minus the 30 calibration images" in evaluate["split"]
    quantize = json.loads((run / "quantize" / "manifest.json").read_text())["summary"]
    assert quantize["samples"] == 30 and "val" in quantize["calibration_split"]
    # the accuracy-aware choice was made on the calibration images, not on evaluated ones
    assert "calibration images" in quantize["selection"]
    rows = report_rows(run)
    assert rows[("onnxruntime", "int8", "dense")]["eval_split"] == evaluate["split"]
    assert "70 images" in (run / "report.md").read_text()


def test_training_on_a_dataset_without_train_is_refused(capsys, tiny_cifar_folder, tmp_path):
    data = _val_only_folder(tiny_cifar_folder, tmp_path / "imagenet-style")
    recipe = _write(tmp_path / "r.yaml", VAL_ONLY_RECIPE.format(dataset=data, out=tmp_path / "o")
                    + "train: {epochs: 1, batch_size: 10}\n")
    assert_user_error(run_cli(capsys, "build", recipe), "train needs a train split",
                      "drop train")
    assert not (tmp_path / "o").exists()


def test_calibration_split_names_any_split_and_its_images_leave_the_evaluation(
        tiny_cifar_folder, tmp_path):
    run = tmp_path / "run"
    text = PRETRAINED_RECIPE.format(dataset=tiny_cifar_folder, extra=f'output: "{run}"\n')
    text = text.replace("calibration: {samples: 64}", "calibration: {samples: 20, split: test}")
    text = text.replace("backends: [onnxruntime, torch]", "backends: [onnxruntime]")
    result = build(str(_write(tmp_path / "r.yaml", text)))
    assert result.returncode == 0, result.stderr[-3000:]
    evaluate = json.loads((run / "evaluate" / "manifest.json").read_text())["summary"]
    assert evaluate["images"] == 100 - 20


# -- model.onnx -------------------------------------------------------------------------------


def _foreign_onnx(path: Path, opset: int, model=None) -> Path:
    """A model exported by another tool (default: the published ResNet-20): torch's legacy
    TorchScript exporter, an older opset, input 'images', output 'scores', a static batch of 1,
    no metadata."""
    import onnx
    import torch

    from edgecnn.models import create_model
    from edgecnn.settings import resolve_path

    if model is None:
        model = create_model("resnet20", pretrained=resolve_path(
            PRETRAINED_WEIGHTS.replace("{{", "{").replace("}}", "}")))
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False,
                      opset_version=opset, input_names=["images"], output_names=["scores"])
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    proto.producer_name = "another-tool"
    onnx.save(proto, str(path))
    return path


ONNX_RECIPE = """\
name: foreign
model: {{onnx: "{onnx}"}}
data: {{dataset: "{dataset}", val_size: 40, eval_batch_size: 50, mean: MEAN, std: STD}}
quantize: {{calibration: {{samples: 64}}}}
export: {{targets: [{targets}]}}
benchmark: {{batch_sizes: [1, 4], iterations: 5, seconds: 0.05, warmup: 2, rounds: 1,
            backends: [{targets}]}}
output: "{out}"
""".replace("MEAN", CIFAR_MEAN).replace("STD", CIFAR_STD)


@pytest.fixture(scope="module")
def arch_build(tiny_cifar_folder, tmp_path_factory):
    """The same published ResNet-20 built from model.arch: the reference of the ONNX builds."""
    root = tmp_path_factory.mktemp("arch")
    text = PRETRAINED_RECIPE.format(dataset=tiny_cifar_folder,
                                    extra=f'output: "{root / "run"}"\n')
    result = build(str(_write(root / "r.yaml", text)))
    assert result.returncode == 0, result.stderr[-3000:]
    return report_rows(root / "run")


def test_onnx_from_another_exporter_is_quantized_evaluated_and_benchmarked(
        arch_build, tiny_cifar_folder, tmp_path):
    """Acceptance 3: opset 13, input 'images', static batch 1, no metadata -> quantized for
    ONNX Runtime and OpenVINO, evaluated, benchmarked at batch 1 and 4; top-1 as from arch."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    source = _foreign_onnx(tmp_path / "resnet20.onnx", 13)
    run = tmp_path / "run"
    recipe = _write(tmp_path / "r.yaml", ONNX_RECIPE.format(
        onnx=source, dataset=tiny_cifar_folder, targets="onnxruntime, openvino", out=run))
    result = build(str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = report_rows(run)
    for backend in ("onnxruntime", "openvino"):
        assert rows[(backend, "int8", "dense")]["latency"]["4"]["p50_ms"] > 0
    assert abs(rows[("onnxruntime", "fp32", "dense")]["top1"]
               - arch_build[("onnxruntime", "fp32", "dense")]["top1"]) <= 0.1
    card = json.loads((run / "model" / "card.json").read_text())
    assert card["macs"] == arch_build[("onnxruntime", "fp32", "dense")]["macs"]
    assert card["onnx"]["opset"] == 13 and card["onnx"]["batch"] == 1
    from edgecnn.export.onnx_export import read_metadata

    meta = read_metadata(run / "export" / "model.fp32.onnx")
    assert meta["mean"] == json.dumps([0.485, 0.456, 0.406]) and meta["num_classes"] == "10"


def test_opset_9_classifier_is_upgraded_and_builds(tiny_cifar_folder, tmp_path):
    # ResNet-20's option-A shortcut (a strided slice) has no opset-9 form: a CIFAR ResNet-18
    import torch

    from edgecnn.models import create_model

    torch.manual_seed(0)
    source = _foreign_onnx(tmp_path / "resnet18-opset9.onnx", 9,
                           create_model("resnet18", num_classes=10, cifar_stem=True))
    run = tmp_path / "run"
    recipe = _write(tmp_path / "r.yaml", ONNX_RECIPE.format(
        onnx=source, dataset=tiny_cifar_folder, targets="onnxruntime", out=run))
    result = build(str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    export = json.loads((run / "export" / "manifest.json").read_text())["summary"]
    assert export["imported"]["opset_before"] == 9 and export["opset"] == 18
    assert export["max_abs_diff"] <= 1e-3  # the upgraded graph computes the opset-9 one
    assert report_rows(run)[("onnxruntime", "int8", "dense")]["top1"] is not None


# -- bad input: exit 2 naming the field, before anything is written --------------------------


def _graph(path: Path, inputs: list[tuple[str, list]], opset: int = 17) -> Path:
    """A small graph with the given inputs (name, shape); with two, they are added."""
    import onnx
    from onnx import TensorProto, helper

    value_infos = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    if len(inputs) == 2:
        nodes = [helper.make_node("Add", [inputs[0][0], inputs[1][0]], ["sum"]),
                 helper.make_node("Flatten", ["sum"], ["logits"])]
    else:
        nodes = [helper.make_node("Flatten", [inputs[0][0]], ["logits"])]
    features = int(np.prod(inputs[0][1][1:]))
    graph = helper.make_graph(nodes, "g", value_infos, [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, features])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]),
              str(path))
    return path


BAD_MODELS = {
    "onnx_and_arch": ("model: {onnx: m.onnx, arch: resnet20}", ["give exactly one of arch"]),
    "entry_and_arch": ("model: {entry: 'a.b:c', arch: resnet20}", ["give exactly one of arch"]),
    "onnx_with_train": ("model: {onnx: m.onnx}\ntrain: {epochs: 1}",
                        ["model.onnx: train", "model.entry"]),
    "onnx_with_prune": ("model: {onnx: m.onnx}\nprune: {method: channels, ratio: 0.5}",
                        ["model.onnx: prune"]),
    "onnx_with_tflite": ("model: {onnx: m.onnx}\nexport: {targets: [onnxruntime, tflite]}",
                         ["model.onnx: export.targets tflite"]),
    "onnx_with_options": ("model: {onnx: m.onnx, options: {width_mult: 2}}",
                          ["options applies to model.arch"]),
    "entry_not_importing": ("model: {entry: 'no_such_module_xyz:net'}",
                            ["no_such_module_xyz", "does not import"]),
    "entry_no_function": ("model: {entry: 'tiny_nets:no_such_net'}",
                          ["has no 'no_such_net'", "tiny_net"]),
    "entry_not_callable": ("model: {entry: 'tiny_nets:NOT_CALLABLE'}", ["is a int, not a func"]),
    "entry_not_a_module": ("model: {entry: 'tiny_nets:not_a_module'}",
                           ["returned a dict, not an nn.Module"]),
    "entry_raises": ("model: {entry: 'tiny_nets:raises'}", ["raised ValueError", "even"]),
    "entry_bad_kwargs": ("model: {entry: 'tiny_nets:tiny_net', kwargs: {depth: 3}}",
                         ["raised TypeError", "depth"]),
    "entry_malformed": ("model: {entry: 'tiny_nets.tiny_net'}", ["model.entry"]),
    "entry_without_norm": ("model: {entry: 'tiny_nets:tiny_net'}\ndata: {mean: null}",
                           ["data.mean and data.std"]),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_sources_exit_2_naming_the_field(capsys, tmp_path, case):
    text, fragments = BAD_MODELS[case]
    _graph(tmp_path / "m.onnx", [("x", [1, 3, 8, 8])])
    if "data:" not in text:
        text += "\ndata: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}"
    text = text.replace("m.onnx", str(tmp_path / "m.onnx"))
    if "entry" in text:
        text = text.replace("model: {", f"model: {{search_path: '{OWN_MODELS}', ", 1)
    recipe = _write(tmp_path / "r.yaml", f"name: bad\n{text}\noutput: '{tmp_path / 'out'}'\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_user_error(run_cli(capsys, "validate", recipe), *fragments)
    assert_user_error(run_cli(capsys, "build", recipe), *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _image_scaler_graph(path: Path) -> Path:
    """An opset-8 classifier starting with ImageScaler, an op of the old model zoo that ONNX
    Runtime still runs but the version converter has no conversion for."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((10, 3), np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(10, np.float32), "b")
    nodes = [helper.make_node("ImageScaler", ["x"], ["xs"], scale=0.5, bias=[0.1, 0.2, 0.3]),
             helper.make_node("GlobalAveragePool", ["xs"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "zoo", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], [weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)],
                                ir_version=4), str(path))
    return path


def test_an_unconvertible_opset_exits_2_before_the_build_starts(capsys, tmp_path):
    graph = _image_scaler_graph(tmp_path / "zoo.onnx")
    recipe = _write(tmp_path / "r.yaml", f"name: bad\nmodel: {{onnx: '{graph}'}}\n"
                    "data: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}\n"
                    f"output: '{tmp_path / 'out'}'\n")
    for command in ("validate", "build"):
        assert_user_error(run_cli(capsys, command, recipe), "opset 8", "ImageScaler")
    assert not (tmp_path / "out").exists()


BAD_GRAPHS = {
    "two_inputs": ([("a", [1, 3, 8, 8]), ("b", [1, 3, 8, 8])], 17, ["2", "a", "b"]),
    "three_d_input": ([("x", [1, 3, 64])], 17, ["x", "4-D"]),
    "no_normalisation": ([("x", [1, 3, 8, 8])], 17, ["data.mean and data.std"]),
}


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_bad_onnx_files_exit_2_naming_the_file(capsys, tmp_path, case):
    inputs, opset, fragments = BAD_GRAPHS[case]
    graph = _graph(tmp_path / "m.onnx", inputs, opset)
    norm = "" if case == "no_normalisation" else (
        "\ndata: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}")
    recipe = _write(tmp_path / "r.yaml", f"name: bad\nmodel: {{onnx: '{graph}'}}{norm}\n")
    assert_user_error(run_cli(capsys, "validate", recipe), str(graph), *fragments)


def test_corrupt_and_missing_onnx_files_exit_2(capsys, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (corrupt, tmp_path / "missing.onnx"):
        recipe = _write(tmp_path / "r.yaml", f"name: bad\nmodel: {{onnx: '{path}'}}\n"
                                             "data: {mean: [0.5, 0.5, 0.5], std: [1, 1, 1]}\n")
        assert_user_error(run_cli(capsys, "validate", recipe), str(path))

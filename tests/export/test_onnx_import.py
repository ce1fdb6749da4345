"""Importing ONNX classifiers made by other tools: edgecnn's form, the same logits, clear errors.

The "other tool" is torch's legacy TorchScript exporter with another tool's choices (opset 13 or
9, input ``images``, batch fixed at 1, no metadata); the error cases are small graphs built with
``onnx.helper``. The models are the small CIFAR ResNet-20 and a CIFAR-stem ResNet-18 (the
ImageNet-initialised MobileNets' untrained logits are ~1e-9, too small to compare).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_export import read_metadata
from edgecnn.export.onnx_import import import_onnx, inspect_onnx
from edgecnn.models import create_model
from edgecnn.profile import profile_model
from edgecnn.profile.onnx_counting import count_onnx

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the legacy exporter
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
              pytest.mark.filterwarnings("ignore:Constant folding:UserWarning")]

METADATA = {"arch": "onnx:model.onnx", "num_classes": "10", "mean": "[0.5, 0.5, 0.5]",
            "std": "[0.25, 0.25, 0.25]", "layout": "NCHW", "resolution": "32", "in_chans": "3"}


def _foreign_export(model: torch.nn.Module, path, opset: int, **kwargs):
    """What another tool writes: its own input name, batch fixed at 1, no metadata."""
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False,
                      opset_version=opset, input_names=["images"], **kwargs)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    return path


def _torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _images(batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32), dtype=np.float32)


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return create_model("resnet20").eval()


@pytest.fixture
def foreign_resnet20(resnet20, tmp_path):
    return _foreign_export(resnet20, tmp_path / "given.onnx", 13)


def test_foreign_export_is_brought_into_edgecnns_form(resnet20, foreign_resnet20, tmp_path):
    dest = tmp_path / "out" / "model.fp32.onnx"
    info = import_onnx(foreign_resnet20, dest, opset=18, resolution=None, in_chans=3,
                       metadata=METADATA)
    assert (info.path, info.opset_before, info.opset_after) == (dest, 13, 18)
    assert (info.input_name_before, info.batch_before) == ("images", 1)
    assert (info.resolution, info.in_chans, info.num_classes) == (32, 3, 10)
    digest = hashlib.sha256(foreign_resnet20.read_bytes()).hexdigest()
    assert info.source_sha256 == digest
    assert json.loads(json.dumps(info.to_dict()))["path"] == str(dest)
    proto = onnx.load(str(dest))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 18)]
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert read_metadata(dest) == {**METADATA, "source_sha256": digest, "source_opset": "13"}
    runner = OnnxRuntimeRunner(dest)
    assert runner.input_spec().shape == (None, 3, 32, 32)
    for batch in (1, 5):
        x = _images(batch)
        assert np.abs(runner.run(x) - _torch_logits(resnet20, x)).max() < 1e-4
    assert list(tmp_path.joinpath("out").iterdir()) == [dest]  # no temporary file left


def test_imported_graph_counts_the_torch_profilers_macs(resnet20, foreign_resnet20, tmp_path):
    info = import_onnx(foreign_resnet20, tmp_path / "m.onnx", opset=18, resolution=32,
                       in_chans=3, metadata=METADATA)
    assert count_onnx(info.path).macs == profile_model(resnet20, 32).macs == 40_551_040


def test_opset_9_classifier_is_upgraded_and_computes_the_same(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, cifar_stem=True).eval()
    # As old exporters wrote it (IR 4): every weight also listed as a graph input.
    source = _foreign_export(model, tmp_path / "old.onnx", 9, keep_initializers_as_inputs=True)
    assert inspect_onnx(source).opset == 9 and len(onnx.load(str(source)).graph.input) > 1
    info = import_onnx(source, tmp_path / "new.onnx", opset=17, resolution=32, in_chans=3,
                       metadata=METADATA)
    assert (info.opset_before, info.opset_after) == (9, 17)
    assert [i.name for i in onnx.load(str(info.path)).graph.input] == ["input"]
    x = _images(3)
    expected = _torch_logits(model, x)
    assert np.abs(expected).max() > 0.1  # logits worth comparing
    assert np.abs(OnnxRuntimeRunner(info.path).run(x) - expected).max() < 1e-4
    assert count_onnx(info.path).macs == profile_model(model, 32).macs


def test_a_newer_opset_is_kept(resnet20, tmp_path):
    source = _foreign_export(resnet20, tmp_path / "given.onnx", 18)
    info = import_onnx(source, tmp_path / "m.onnx", opset=17, resolution=None, in_chans=3,
                       metadata=METADATA)
    assert (info.opset_before, info.opset_after) == (18, 18)


def test_dynamic_batch_source_stays_dynamic(resnet20, tmp_path):
    source = _foreign_export(resnet20, tmp_path / "given.onnx", 17,
                             dynamic_axes={"images": {0: "N"}})
    assert inspect_onnx(source).batch == "N"
    info = import_onnx(source, tmp_path / "m.onnx", opset=17, resolution=None, in_chans=3,
                       metadata=METADATA)
    assert info.batch_before == "N"
    x = _images(4)
    assert np.abs(OnnxRuntimeRunner(info.path).run(x) - _torch_logits(resnet20, x)).max() < 1e-4


def test_symbolic_height_and_width_need_a_resolution(resnet20, tmp_path):
    source = _foreign_export(resnet20, tmp_path / "given.onnx", 17,
                             dynamic_axes={"images": {0: "N", 2: "H", 3: "W"}})
    signature = inspect_onnx(source)
    assert (signature.resolution, signature.num_classes) == (None, 10)
    with pytest.raises(EdgeCNNError, match=r"given.onnx: input 'images' has symbolic "
                                           r"height/width \[N, 3, H, W\]; set model.resolution"):
        import_onnx(source, tmp_path / "m.onnx", opset=17, resolution=None, in_chans=3,
                    metadata=METADATA)
    assert not (tmp_path / "m.onnx").exists()
    info = import_onnx(source, tmp_path / "m.onnx", opset=17, resolution=32, in_chans=3,
                       metadata=METADATA)
    assert info.resolution == 32
    assert OnnxRuntimeRunner(info.path).input_spec().shape == (None, 3, 32, 32)


def test_external_data_beside_the_file_is_embedded(resnet20, foreign_resnet20, tmp_path):
    folder = tmp_path / "split"
    folder.mkdir()
    onnx.save(onnx.load(str(foreign_resnet20)), str(folder / "given.onnx"),
              save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert inspect_onnx(folder / "given.onnx").external_data == ("weights.bin",)
    info = import_onnx(folder / "given.onnx", tmp_path / "m.onnx", opset=18, resolution=None,
                       in_chans=3, metadata=METADATA)
    imported = onnx.load(str(info.path), load_external_data=False)
    assert not any(t.external_data for t in imported.graph.initializer)  # self-contained
    x = _images(2)
    assert np.abs(OnnxRuntimeRunner(info.path).run(x) - _torch_logits(resnet20, x)).max() < 1e-4
    (folder / "weights.bin").unlink()
    with pytest.raises(EdgeCNNError, match=r"given.onnx keeps its weights in 'weights.bin', "
                                           r"which is not in .*; put the data file beside"):
        inspect_onnx(folder / "given.onnx")


# --- errors, on small hand-made graphs -----------------------------------------------------


def _value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _tensor(name, *shape, seed=0):
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _classifier(path, *, batch=1, opset=17, inputs=None, head=None, output=None, first=None):
    """Conv 3->4 -> Relu -> GlobalAveragePool -> Flatten -> Gemm to 10 classes, on 8x8."""
    first = first or []
    nodes = [*first,
             helper.make_node("Conv", [first[-1].output[0] if first else "x", "w"], ["c"],
                              name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             *(head or [helper.make_node("Flatten", ["p"], ["f"], name="flatten")]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    inits = [_tensor("w", 4, 3, 3, 3), _tensor("fc_w", 10, 4, seed=1), _tensor("fc_b", 10)]
    inits += [numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape")]
    graph = helper.make_graph(nodes, "classifier", inputs or [_value("x", [batch, 3, 8, 8])],
                              output or [_value("y", [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _import(source, tmp_path, **kwargs):
    options = {"opset": 17, "resolution": None, "in_chans": 3, "metadata": METADATA, **kwargs}
    return import_onnx(source, tmp_path / "imported.onnx", **options)


def test_the_hand_made_classifier_imports(tmp_path):
    info = _import(_classifier(tmp_path / "c.onnx"), tmp_path)
    assert (info.resolution, info.num_classes, info.nodes) == (8, 10, 5)


def test_a_batch_fixed_above_one_becomes_dynamic(tmp_path):
    info = _import(_classifier(tmp_path / "c.onnx", batch=4), tmp_path)
    assert info.batch_before == 4
    assert OnnxRuntimeRunner(info.path).run(np.zeros((3, 3, 8, 8), np.float32)).shape == (3, 10)


def test_tensors_already_named_input_or_logits_make_way(tmp_path):
    proto = onnx.load(str(_classifier(tmp_path / "c.onnx")))
    for node in proto.graph.node:  # the conv's output "input", the pool's "logits"
        node.input[:] = [{"c": "input", "p": "logits"}.get(n, n) for n in node.input]
        node.output[:] = [{"c": "input", "p": "logits"}.get(n, n) for n in node.output]
    onnx.save(proto, str(tmp_path / "clash.onnx"))
    info = _import(tmp_path / "clash.onnx", tmp_path)
    graph = onnx.load(str(info.path)).graph
    assert graph.node[0].input[0] == "input" and graph.node[-1].output[0] == "logits"
    assert "input" not in graph.node[0].output and "logits" not in graph.node[2].output
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8), dtype=np.float32)
    given = OnnxRuntimeRunner(tmp_path / "clash.onnx")
    assert np.abs(OnnxRuntimeRunner(info.path).run(x[:1]) - given.run(x[:1])).max() < 1e-5


def test_two_inputs_are_named(tmp_path):
    source = _classifier(tmp_path / "c.onnx", inputs=[_value("x", [1, 3, 8, 8]),
                                                      _value("mask", [1, 3, 8, 8])],
                         first=[helper.make_node("Mul", ["x", "mask"], ["xm"], name="m")])
    with pytest.raises(EdgeCNNError, match=r"c.onnx has 2 graph inputs \('x', 'mask'\); "
                                           "edgecnn deploys a classifier with exactly one"):
        _import(source, tmp_path)


def test_a_3d_input_is_refused_with_its_shape(tmp_path):
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
             helper.make_node("Gemm", ["m", "fc_w"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [_value("x", ["n", 3, 32])], [_value("y", ["n", 10])],
                              [_tensor("fc_w", 10, 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "seq.onnx"))
    with pytest.raises(EdgeCNNError, match=r"seq.onnx: input 'x' has shape \[n, 3, 32\]; "
                                           r"edgecnn takes a 4-D NCHW image batch"):
        _import(tmp_path / "seq.onnx", tmp_path)


def test_a_wrong_channel_count_is_refused(foreign_resnet20, tmp_path):
    with pytest.raises(EdgeCNNError, match=r"input 'images' \[1, 3, 32, 32\] has 3 channels, "
                                           r"but model.in_chans is 1; set model.in_chans: 3"):
        _import(foreign_resnet20, tmp_path, in_chans=1)


def test_a_fixed_size_other_than_the_resolution_is_refused(tmp_path):
    with pytest.raises(EdgeCNNError, match=r"fixed at 8x8, but model.resolution is 32"):
        _import(_classifier(tmp_path / "c.onnx"), tmp_path, resolution=32)
    source = _classifier(tmp_path / "wide.onnx", inputs=[_value("x", [1, 3, 8, 16])])
    with pytest.raises(EdgeCNNError, match=r"is not square \(8x16\)"):
        _import(source, tmp_path)


def test_an_output_that_is_not_2d_is_refused(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "seg", [_value("x", [1, 3, 8, 8])],
                              [_value("y", [1, 4, 8, 8])], [_tensor("w", 4, 3, 3, 3)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(tmp_path / "seg.onnx"))
    with pytest.raises(EdgeCNNError, match=r"output 'y' has shape \[1, 4, 8, 8\]; edgecnn takes "
                                           r"a classifier's \[N, classes\] logits"):
        _import(tmp_path / "seg.onnx", tmp_path)


def test_an_op_the_version_converter_cannot_convert_is_named(tmp_path):
    # ImageScaler, an experimental op of opsets 1-9 (WinMLTools/CoreML-converted classifiers of
    # the ONNX model zoo start with one), was removed without a replacement adapter: the
    # converter really fails on it ("has no registered schema"), though ONNX Runtime runs it.
    scaler = helper.make_node("ImageScaler", ["x"], ["xs"], name="scale", scale=0.5,
                              bias=[0.1, 0.2, 0.3])
    source = _classifier(tmp_path / "zoo.onnx", opset=8, first=[scaler])
    assert inspect_onnx(source).opset == 8
    with pytest.raises(EdgeCNNError, match=r"zoo.onnx is at opset 8 and the ONNX version "
                                           r"converter cannot bring it to opset 17: it has no "
                                           r"conversion for op ImageScaler"):
        _import(source, tmp_path)
    assert not (tmp_path / "imported.onnx").exists()


def test_a_batch_fixed_by_a_constant_reshape_is_named(tmp_path):
    head = [helper.make_node("Reshape", ["p", "flat_shape"], ["f"], name="flat")]  # [1, -1]
    source = _classifier(tmp_path / "fixed.onnx", head=head)
    with pytest.raises(EdgeCNNError, match=r"fixed.onnx: the graph's batch is fixed at 1 by "
                                           r"node 'flat' \(Reshape to a constant shape\), so "
                                           r"it cannot be made dynamic .*export it again with "
                                           r"a dynamic batch"):
        _import(source, tmp_path)
    assert not (tmp_path / "imported.onnx").exists()


def test_a_custom_domain_is_refused(tmp_path):
    nodes = [helper.make_node("Scale", ["x"], ["xs"], domain="com.example.ops")]
    graph = helper.make_graph(nodes, "g", [_value("x", [1, 3, 8, 8])], [_value("xs", [1, 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example.ops", 1)])
    onnx.save(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(EdgeCNNError, match=r"uses the custom op domain 'com.example.ops' \(ops "
                                           r"Scale\)"):
        _import(tmp_path / "custom.onnx", tmp_path)


def test_corrupt_and_missing_files_are_named(tmp_path):
    corrupt = tmp_path / "random.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(EdgeCNNError, match=r"random.onnx is not an ONNX model"):
        _import(corrupt, tmp_path)
    with pytest.raises(EdgeCNNError, match=r"ONNX file .*absent.onnx does not exist"):
        inspect_onnx(tmp_path / "absent.onnx")
    with pytest.raises(EdgeCNNError, match=r"is not a file"):
        inspect_onnx(tmp_path)


def test_a_graph_the_checker_rejects_is_named(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [_value("x", [1, 3, 8, 8])], [_value("y", [1, 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(tmp_path / "twice.onnx"))
    with pytest.raises(EdgeCNNError, match=r"twice.onnx fails the ONNX checker: "):
        _import(tmp_path / "twice.onnx", tmp_path)

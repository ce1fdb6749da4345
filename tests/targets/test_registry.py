"""The target registry is where the recipe's choices, the CLI's suffixes, the measured library
versions and the extras come from: each consumer must agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from edgecnn._optional import EXTRA_FOR_MODULE, INSTALL_HINTS
from edgecnn.errors import EdgeCNNError
from edgecnn.recipe.schema import BenchmarkSection, ExportSection
from edgecnn.recipe.stages import STAGES
from edgecnn.targets.context import libraries
from edgecnn.targets.registry import (
    TARGETS,
    backend_names,
    backend_of_file,
    cpu_runtime_names,
    export_target_names,
    get_target,
    open_runner,
)

ROOT = Path(__file__).resolve().parents[2]


def _enum(section, field: str) -> list[str]:
    return section.model_json_schema()["properties"][field]["items"]["enum"]


def test_the_recipe_choices_are_the_registry_names():
    assert _enum(ExportSection, "targets") == list(export_target_names())
    assert _enum(BenchmarkSection, "backends") == list(backend_names())
    assert set(export_target_names()) >= {"onnxruntime", "tensorrt", "tflite", "openvino"}
    assert "torch" in backend_names() and "torch" not in export_target_names()
    assert set(cpu_runtime_names()) >= {"onnxruntime", "openvino", "tflite"}
    assert "tensorrt" not in cpu_runtime_names()


def test_each_target_section_is_its_export_section():
    for name, target in TARGETS.items():
        if target.section is not None:
            assert ExportSection.model_fields[name].annotation is target.section
    assert ExportSection().tflite.precisions == ["fp32", "int8"]
    assert ExportSection().tensorrt.precisions == ["fp16", "int8"]


def test_files_go_to_the_backend_that_ran_them_before_the_registry():
    assert {s: backend_of_file(f"m{s}") for s in (".onnx", ".xml", ".tflite", ".plan")} == {
        ".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "tflite", ".plan": "tensorrt"}
    assert backend_of_file("m.pth") is None


def test_extras_and_packages_agree_with_the_project():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for target in TARGETS.values():
        assert target.extra in extras, target.name
        for module in target.modules:
            top = module.split(".")[0]
            # a package no extra provides (TensorRT) has its own install hint; one the table
            # of edgecnn/_optional.py lists must name the target's extra (or the base build)
            assert top in INSTALL_HINTS or EXTRA_FOR_MODULE.get(top, target.extra) in (
                target.extra, "build"), module
    # every library the measurements recorded before the registry is still recorded
    assert set(libraries()) >= {"edgecnn", "numpy", "onnx", "onnxruntime", "onnxslim", "torch",
                                "torch-pruning", "tensorrt", "openvino", "nncf", "litert-torch",
                                "litert-quantizer", "ai-edge-litert"}


def test_a_target_with_a_stage_gets_it_in_the_build_after_quantization():
    names = [s.name for s in STAGES]
    for target in TARGETS.values():
        if target.stage is not None:
            stage = STAGES[names.index(target.stage.name)]
            assert names.index("quantize") < names.index(stage.name) < names.index("evaluate")
            assert stage.sections == target.stage.reads
            assert f"export.{target.name}" in stage.sections


def test_unknown_backends_and_file_less_ones_say_so():
    with pytest.raises(EdgeCNNError, match="unknown backend 'coreml'; valid: onnxruntime"):
        get_target("coreml")
    with pytest.raises(EdgeCNNError, match="runs models in memory"):
        open_runner("torch", "model.onnx")


def test_make_installs_every_target_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    bundled = extras["targets"][0].split("[")[1].rstrip("]").split(",")
    assert {t.extra for t in TARGETS.values() if t.exported} <= set(bundled)
    assert ".[build,targets," in (ROOT / "Makefile").read_text()

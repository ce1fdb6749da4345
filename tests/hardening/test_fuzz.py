"""Property-based fuzzing (hypothesis) of what users hand to edgecnn.

1. Recipes: random mutations of every recipe in recipes/ -- a key deleted, a value replaced by
   another type, an out-of-range or non-finite number, an unknown enum string, a path-like or
   unicode string, an unknown key -- through `edgecnn validate` and `edgecnn build --dry-run`;
   the same mutations of the calibration-set definitions in calibration/, named by a build, and
   of the sweep files in sweeps/, through `edgecnn sweep --dry-run`, and of the search files in
   searches/, through `edgecnn search --dry-run`.
2. The user's own model: entry-point modules (a function that returns something else, raises,
   exits, does not exist) and corrupt ONNX files given as `model.onnx`, through `edgecnn validate`.
3. Artifact files: the build's .onnx, .tflite, OpenVINO .xml/.bin and ExecuTorch .pte (and its
   .pte.json) truncated, with flipped bytes, or replaced by random bytes, through `edgecnn
   bench` and `edgecnn eval`.

Every outcome must be exit 0 or exit 2 with one message and no traceback (an exception escaping
``main`` fails the example), and a dry run writes nothing. Both are bounded (max_examples) to
stay within a minute or two of `make test`; in CI the examples are derandomized, so a failure
there reproduces, while local runs explore new ones.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgecnn.settings import REPO_ROOT
from tests.hardening.conftest import run_cli, snapshot

RECIPES = sorted((REPO_ROOT / "recipes").glob("*.yaml"))
CALIBRATION_SETS = sorted((REPO_ROOT / "calibration").glob("*.yaml"))
SWEEPS = sorted((REPO_ROOT / "sweeps").glob("*.yaml"))
SEARCHES = sorted((REPO_ROOT / "searches").glob("*.yaml"))
PATH_LIKE = ["..", ".", "../..", "/", "/nonexistent/x", "~", "{shared}", "{name}", "{0}", "{",
             "runs/{name}/../..", "a\x00b", "C:\\x", "x" * 300, "ünïcödé/路径", "/dev/null",
             "/proc/self", ".hidden", "-", " ", ""]
ENUM_LIKE = ["onnxruntime", "tensorrt", "tflite", "openvino", "executorch", "torch", "int8",
             "fp16", "qat", "ptq", "none", "channels", "two_four", "cifar", "imagenet", "val",
             "train", "entropy", "percentile", "NHWC", "auto", "cuda", "tensorflow", "INT8"]
VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(-2**70, 2**70), st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(PATH_LIKE), st.sampled_from(ENUM_LIKE),
    st.lists(st.integers(-2, 70_000), max_size=4), st.lists(st.sampled_from(ENUM_LIKE),
                                                            max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(-2, 2), max_size=2),
)
DERANDOMIZE = os.environ.get("CI") == "true"
# FUZZ_EXAMPLES=N runs N examples of each instead (e.g. a long hunt on a free machine).
_COMMON = dict(deadline=None, derandomize=DERANDOMIZE, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
RECIPE_SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 120)), **_COMMON)
ARTIFACT_SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 50)), **_COMMON)


def _paths(node, prefix=()):
    """Every key path (and list index) into a recipe's nested mappings."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((*prefix, index))
            found += _paths(value, (*prefix, index))
    return found


def _parent(data, path):
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated_yaml(draw, sources):
    source = draw(st.sampled_from(sources))
    data = copy.deepcopy(yaml.safe_load(source.read_text()))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        action = draw(st.sampled_from(["delete", "replace", "replace", "unknown_key"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(VALUES)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(VALUES)
    return source.name, yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _user_outcome(outcome, command: str) -> None:
    event(f"{command}: exit {outcome.code}")  # the statistics say what the examples reached
    assert outcome.code in (0, 2), (outcome.code, outcome.err[-2000:])
    assert "Traceback" not in outcome.err
    if outcome.code == 2:
        assert outcome.err.startswith("edgecnn: error:") or "usage:" in outcome.err, outcome.err


@pytest.mark.skipif(not RECIPES, reason="no recipes in recipes/")
@RECIPE_SETTINGS
@given(case=mutated_yaml(RECIPES))
def test_mutated_recipes_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory, case):
    _, text = case
    folder = tmp_path_factory.mktemp("fuzz")
    recipe = folder / "r.yaml"
    recipe.write_text(text)
    before = snapshot(folder)
    _user_outcome(run_cli(capsys, "validate", recipe), "validate")
    _user_outcome(run_cli(capsys, "build", recipe, "--dry-run", "--out", folder / "run"),
                  "build --dry-run")
    assert snapshot(folder) == before  # a dry run writes nothing


@pytest.mark.skipif(not CALIBRATION_SETS, reason="no definitions in calibration/")
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 30)), **_COMMON)
@given(case=mutated_yaml(CALIBRATION_SETS))
def test_mutated_calibration_sets_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory,
                                                                case):
    _, text = case
    folder = tmp_path_factory.mktemp("fuzz-set")
    definition = folder / "set.yaml"
    definition.write_text(text)
    recipe = REPO_ROOT / "recipes" / "mobilenet_int8.yaml"
    before = snapshot(folder)
    _user_outcome(run_cli(capsys, "build", recipe, "--dry-run", "--out", folder / "run",
                          "--set", f"quantize.calibration.set={definition}"), "calibration set")
    assert snapshot(folder) == before


@pytest.mark.skipif(not SWEEPS, reason="no sweep files in sweeps/")
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 20)), **_COMMON)
@given(case=mutated_yaml(SWEEPS))
def test_mutated_sweep_files_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory, case):
    _, text = case
    folder = tmp_path_factory.mktemp("fuzz-sweep")
    data = yaml.safe_load(text)
    if isinstance(data, dict) and isinstance(data.get("base"), str):
        # the sweep file moves to a temporary folder: its base recipe stays where it was
        data["base"] = str(REPO_ROOT / "sweeps" / data["base"])
    sweep = folder / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    before = snapshot(folder)
    _user_outcome(run_cli(capsys, "sweep", sweep, "--dry-run"), "sweep --dry-run")
    assert snapshot(folder) == before


@pytest.mark.skipif(not SEARCHES, reason="no search files in searches/")
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 20)), **_COMMON)
@given(case=mutated_yaml(SEARCHES))
def test_mutated_search_files_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory, case):
    _, text = case
    folder = tmp_path_factory.mktemp("fuzz-search")
    data = yaml.safe_load(text)
    for key in ("base", "reference"):
        if isinstance(data, dict) and isinstance(data.get(key), str):
            # the search file moves to a temporary folder: its recipes stay where they were
            data[key] = str(REPO_ROOT / "searches" / data[key])
    compound = data.get("compound") if isinstance(data, dict) else None
    if isinstance(compound, dict):
        # a compound grid cut to its corners: the dry run counts the mult-adds of every grid
        # point (about 0.4 s each, 60 in searches/), and no outcome depends on the grid's size
        for axis in ("alpha", "beta", "gamma"):
            if isinstance(compound.get(axis), list) and len(compound[axis]) > 2:
                compound[axis] = [compound[axis][0], compound[axis][-1]]
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    before = snapshot(folder)
    _user_outcome(run_cli(capsys, "search", path, "--dry-run"), "search --dry-run")
    assert snapshot(folder) == before


def _corrupt(data: bytes, how: str, where: int, count: int, noise: bytes) -> bytes:
    if how == "truncate":
        return data[:where % max(len(data), 1)]
    if how == "flip":
        out = bytearray(data)
        for k in range(count):
            index = (where + k * 7919) % len(out)
            out[index] ^= 1 << (k % 8)
        return bytes(out)
    return noise


@ARTIFACT_SETTINGS
@given(kind=st.sampled_from(["onnx", "int8.onnx", "tflite", "xml", "bin", "pte", "pte.json"]),
       how=st.sampled_from(["truncate", "flip", "random"]),
       where=st.integers(0, 2**31), count=st.integers(1, 40),
       noise=st.binary(min_size=0, max_size=2048))
def test_corrupt_artifacts_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory,
                                                         artifact_files, tiny_cifar_folder,
                                                         kind, how, where, count, noise):
    folder = tmp_path_factory.mktemp("corrupt")
    source = artifact_files[{"bin": "xml", "pte.json": "pte"}.get(kind, kind)]
    target = folder / f"model{Path(source).suffix}"
    shutil.copy(source, target)
    # the files that travel with it: an OpenVINO IR's weights, an ExecuTorch program's metadata
    pairs = {".xml": (source.with_suffix(".bin"), target.with_suffix(".bin")),
             ".pte": (source.with_name(source.name + ".json"),
                      target.with_name(target.name + ".json"))}
    companion = None
    if source.suffix in pairs:
        original, companion = pairs[source.suffix]
        shutil.copy(original, companion)
    victim = companion if kind in ("bin", "pte.json") else target
    victim.write_bytes(_corrupt(victim.read_bytes(), how, where, count, noise))
    _user_outcome(run_cli(capsys, "bench", target, "--batch", "1", "--iterations", "1",
                          "--seconds", "0", "--warmup", "0"), f"bench {kind}")
    _user_outcome(run_cli(capsys, "eval", target, "--data", tiny_cifar_folder, "--split",
                          "test", "--batch-size", "50"), f"eval {kind}")


# -- the user's own model: an entry point's module, and an ONNX file given as model.onnx ------

ENTRY_BODIES = [
    "def net(num_classes=10):\n    return TinyNet(num_classes)\n",
    "def net(num_classes=10):\n    return None\n",
    "def net(num_classes=10):\n    return [nn.Linear(2, 2)]\n",
    "def net(num_classes=10):\n    raise RuntimeError('boom')\n",
    "def net(num_classes=10):\n    import sys; sys.exit(3)\n",
    "def net():\n    return TinyNet()\n",
    "def net(num_classes=10):\n    return nn.Linear(3, num_classes)\n",
    "net = 7\n",
    "net = TinyNet\n",
    "def net(**kw):\n    return TinyNet(**kw)\n",
    "import sys; sys.exit(1)\n",
    "raise ImportError('missing dependency')\n",
    "def net(:\n",
    "import no_such_package_xyz\n",
    "",
]
ENTRY_PRELUDE = ("from torch import nn\n"
                 "class TinyNet(nn.Module):\n"
                 "    def __init__(self, num_classes=10):\n"
                 "        super().__init__()\n"
                 "        self.conv = nn.Conv2d(3, 8, 3, padding=1)\n"
                 "        self.head = nn.Linear(8, num_classes)\n"
                 "    def forward(self, x):\n"
                 "        return self.head(self.conv(x).mean((2, 3)))\n")


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 25)), **_COMMON)
@given(body=st.sampled_from(ENTRY_BODIES), prelude=st.booleans(),
       kwargs=st.dictionaries(st.sampled_from(["num_classes", "width", "x"]), VALUES,
                              max_size=2),
       resolution=st.one_of(st.none(), st.integers(-2, 80)))
def test_entry_point_modules_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory, body,
                                                           prelude, kwargs, resolution):
    folder = tmp_path_factory.mktemp("fuzz-entry")
    name = f"user_net_{folder.name.replace('-', '_')}"  # a fresh module name per example
    (folder / f"{name}.py").write_text((ENTRY_PRELUDE if prelude else "") + body)
    model = {"entry": f"{name}:net", "kwargs": kwargs}
    if resolution is not None:
        model["resolution"] = resolution
    recipe = folder / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "own", "model": model, "data": {
        "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}))
    before = snapshot(folder)
    _user_outcome(run_cli(capsys, "validate", recipe), "validate entry")
    assert {k for k in snapshot(folder) if "__pycache__" not in k} == set(before)


@ARTIFACT_SETTINGS
@given(how=st.sampled_from(["truncate", "flip", "random"]),
       where=st.integers(0, 2**31), count=st.integers(1, 40),
       noise=st.binary(min_size=0, max_size=2048))
def test_corrupt_onnx_models_give_exit_0_or_a_clear_exit_2(capsys, tmp_path_factory,
                                                           artifact_files, how, where, count,
                                                           noise):
    folder = tmp_path_factory.mktemp("fuzz-onnx")
    graph = folder / "model.onnx"
    graph.write_bytes(_corrupt(artifact_files["onnx"].read_bytes(), how, where, count, noise))
    recipe = folder / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "foreign", "model": {"onnx": str(graph)},
                                      "data": {"mean": [0.5, 0.5, 0.5],
                                               "std": [0.25, 0.25, 0.25]}}))
    _user_outcome(run_cli(capsys, "validate", recipe), f"validate onnx ({how})")

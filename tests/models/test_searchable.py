"""The searchable inverted-residual family: its default is the demo model, every choice of the
space builds and counts, and a bad description is refused naming the stage and the choice."""

from __future__ import annotations

import pytest
import torch

from edgecnn.models import create_model
from edgecnn.profile import profile_model
from tests.hardening.conftest import assert_user_error, run_cli

# Every choice at least once: kernels 3/5/7, expansions 1/3/4/6, SE on and off, the three
# activations, strides 1 and 2, and a stage deeper than one block.
EVERY_CHOICE = [
    {"width": 16, "depth": 1, "stride": 1, "expansion": 1},
    {"width": 24, "depth": 2, "stride": 2, "kernel": 5, "expansion": 3, "se": True},
    {"width": 40, "depth": 2, "stride": 2, "kernel": 7, "expansion": 4, "activation": "hswish",
     "se": True},
    {"width": 48, "depth": 1, "stride": 2, "kernel": 3, "expansion": 6, "activation": "silu"},
]


def test_the_default_is_the_demo_mobilenet_v2_half_width():
    ours = create_model("searchable_mbconv", num_classes=10, cifar_stem=True, dropout=0.0)
    demo = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.5,
                        dropout=0.0)
    assert ours.card.params == demo.card.params == 700_490
    assert profile_model(ours, 32).macs == profile_model(demo, 32).macs == 7_837_440
    assert ([tuple(p.shape) for p in ours.parameters()]
            == [tuple(p.shape) for p in demo.parameters()])


def test_every_choice_builds_and_runs():
    torch.manual_seed(0)
    model = create_model("searchable_mbconv", num_classes=10, cifar_stem=True,
                         stages=EVERY_CHOICE, stem=16, head=0).eval()
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Hardswish", "SiLU", "ReLU6", "SqueezeExcitation", "Hardsigmoid"} <= kinds
    kernels = {m.kernel_size[0] for m in model.modules()
               if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert kernels == {3, 5, 7}
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # head 0: the classifier reads the last stage's 48 channels
    assert model.classifier[-1].in_features == 48


@pytest.mark.parametrize(("stages", "fragments"), [
    ([{"width": 16, "kernal": 5}], ["stages[0]", "unknown choice 'kernal'", "kernel"]),
    ([{"width": 16}, {"width": 24, "kernel": 4}], ["stages[1]", "kernel must be 3, 5 or 7"]),
    ([{"width": 16, "activation": "gelu"}], ["stages[0]", "activation 'gelu'", "hswish"]),
    ([{"depth": 2}], ["stages[0]", "width (the output channels) is required"]),
    ([], ["stages must be a non-empty list"]),
])
def test_a_bad_description_exits_2_naming_the_stage(tmp_path, capsys, stages, fragments):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: s\nmodel: {arch: searchable_mbconv, cifar_stem: true, options: "
                      f"{{stages: {stages!r}}}}}\ndata: {{dataset: cifar10-jpeg}}\n")
    assert_user_error(run_cli(capsys, "build", recipe, "--dry-run"), "model.options",
                      *fragments)
    assert not (tmp_path / "runs").exists()

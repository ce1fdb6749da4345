"""The batched CIFAR augmentation against a per-image reference, and normalisation."""

from __future__ import annotations

import torch

from edgecnn.data.transforms import normalize, random_crop_flip


def test_crop_flip_equals_per_image_pad_crop_flip():
    batch = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8)
    out = random_crop_flip(batch, padding=4, generator=torch.Generator().manual_seed(1))
    # Replay the same random draws one image at a time.
    g = torch.Generator().manual_seed(1)
    top = torch.randint(0, 9, (16, 1), generator=g)
    left = torch.randint(0, 9, (16, 1), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = torch.nn.functional.pad(batch, (0, 0, 4, 4, 4, 4))
    for i in range(16):
        t, lft = int(top[i]), int(left[i])
        expected = padded[i, t:t + 32, lft:lft + 32]
        if flip[i]:
            expected = expected.flip(1)
        assert torch.equal(out[i], expected)
    assert flip.any() and not flip.all()


def test_crop_keeps_pixels_or_zero_padding():
    batch = torch.full((64, 32, 32, 3), 7, dtype=torch.uint8)
    out = random_crop_flip(batch, generator=torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0, 7}


def test_normalize_layout_and_values():
    batch = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)  # 1x1x1x3
    x = normalize(batch, (0.0, 0.5, 0.2), (1.0, 0.5, 0.1))
    assert x.shape == (1, 3, 1, 1)
    assert torch.allclose(x.flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert normalize(batch, (0, 0, 0), (1, 1, 1), channels_last=True).is_contiguous(
        memory_format=torch.channels_last)


def test_flip_only_loader_mirrors_some_images_and_crops_none():
    from edgecnn.data.loaders import BatchLoader
    from edgecnn.data.splits import ImageSet

    images = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8).numpy()
    data = ImageSet(images, torch.zeros(64, dtype=torch.int64).numpy(), ["only"], "random")
    plain = next(iter(BatchLoader(data, 64, (0, 0, 0), (1, 1, 1))))[0]
    flipped = next(iter(BatchLoader(data, 64, (0, 0, 0), (1, 1, 1), augment="flip")))[0]
    same = [torch.equal(a, b) for a, b in zip(plain, flipped, strict=True)]
    mirrored = [torch.equal(a.flip(-1), b) for a, b in zip(plain, flipped, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert any(same) and any(mirrored)


def test_random_resized_crop_flip_shapes_range_and_randomness():
    from edgecnn.data.transforms import random_resized_crop_flip

    batch = torch.randint(0, 256, (6, 40, 50, 3), dtype=torch.uint8)
    out = random_resized_crop_flip(batch, 24, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 24, 24, 3) and out.dtype == torch.uint8
    again = random_resized_crop_flip(batch, 24, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded: a resumed run repeats its crops
    other = random_resized_crop_flip(batch, 24, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)


def test_random_resized_crop_of_the_whole_image_is_a_plain_resize():
    from edgecnn.data.transforms import random_resized_crop_flip

    # scale (1, 1) and ratio (1, 1) on a square image leave only the whole image (maybe flipped)
    batch = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    out = random_resized_crop_flip(batch, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0),
                                   generator=torch.Generator().manual_seed(3))
    for image, result in zip(batch, out, strict=True):
        assert torch.equal(result, image) or torch.equal(result, image.flip(1))


def test_imagenet_loader_needs_the_crop_size():
    import pytest

    from edgecnn.data.loaders import BatchLoader
    from edgecnn.data.splits import ImageSet

    data = ImageSet(torch.zeros((2, 8, 8, 3), dtype=torch.uint8).numpy(),
                    torch.zeros(2, dtype=torch.int64).numpy(), ["only"], "zeros")
    with pytest.raises(ValueError, match="crop_size"):
        BatchLoader(data, 2, (0, 0, 0), (1, 1, 1), augment="imagenet")
    x, _ = next(iter(BatchLoader(data, 2, (0, 0, 0), (1, 1, 1), augment="imagenet",
                                 crop_size=6)))
    assert x.shape == (2, 3, 6, 6)

"""Training augmentation: flips, small affine and intensity, targets moved with the image."""
from __future__ import annotations

import numpy as np
import torch

from WeakSegLib.stages.augment import augment, random_affine, random_flips, random_intensity


def test_flips_give_all_four_orientations_and_move_targets_alike() -> None:
    image = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    flipped, target = random_flips([image, image.clone()], np.random.default_rng(0))
    assert torch.equal(flipped, target)
    seen = {tuple(f.flatten().tolist()) for f in flipped}
    expected = {tuple(v.flatten().tolist()) for v in (image[0], image[0].flip(-1),
                                                      image[0].flip(-2), image[0].flip(-1, -2))}
    assert seen == expected
    assert torch.equal(image[0, 0], torch.arange(16, dtype=torch.float32).reshape(4, 4))


def test_affine_keeps_a_mask_binary_and_on_the_moved_object() -> None:
    image = torch.zeros(8, 1, 32, 32)
    image[:, :, 10:20, 12:22] = 1.0
    mask = (image > 0).float()
    moved, (moved_mask,) = random_affine(image, [mask], np.random.default_rng(1), degrees=10,
                                         scale=0.1, translate=0.05)
    assert set(torch.unique(moved_mask).tolist()) <= {0.0, 1.0}
    assert not torch.equal(moved_mask, mask)                       # it did move
    overlap = ((moved > 0.5) & (moved_mask > 0.5)).sum() / (moved_mask > 0.5).sum()
    assert overlap > 0.9                                           # mask follows the object
    area = moved_mask.sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3))
    assert torch.all((area > 0.7) & (area < 1.35))                 # scale ±10 % (area ±21 %)


def test_intensity_scales_each_channel_and_keeps_the_background() -> None:
    images = torch.rand(16, 4, 8, 8)
    images[:, :, 0, 0] = 0.0
    out = random_intensity(images, np.random.default_rng(2), jitter=0.1, gamma=0.2)
    assert torch.all(out[:, :, 0, 0] == 0)
    assert out.shape == images.shape and not torch.allclose(out, images)
    assert float(out.max()) <= 1.1 + 1e-6


def test_augment_with_everything_off_changes_nothing_but_flips() -> None:
    image = torch.rand(4, 2, 8, 8)
    out, _ = augment(image, [], np.random.default_rng(3), degrees=0, scale=0, translate=0,
                     jitter=0, gamma=0)
    for o, i in zip(out, image):
        assert any(torch.equal(o, v) for v in (i, i.flip(-1), i.flip(-2), i.flip(-1, -2)))

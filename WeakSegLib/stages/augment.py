"""Random augmentation of training batches: flips, per-channel intensity, small affine.

With 13–16 training patients the networks otherwise learn the patients rather than the tumour
(issue 12: classifier AUC 0.87 on its own validation cases, 0.58 on other patients). The affine
part uses torch's ``affine_grid``/``grid_sample``; targets (masks, seeds) move with the image,
resampled with nearest neighbours so they stay binary.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, targets: list[torch.Tensor], rng: np.random.Generator,
                  degrees: float, scale: float, translate: float
                  ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Rotate by ±``degrees``, scale by 1 ± ``scale``, shift by ± ``translate`` of the size, one
    draw per sample; ``images`` bilinear, every ``targets`` tensor (same B, H, W) nearest.
    Pixels that come from outside the slice are 0, as the background is."""
    n = images.shape[0]
    if n == 0 or (degrees == 0 and scale == 0 and translate == 0):
        return images, targets
    angle = np.deg2rad(rng.uniform(-degrees, degrees, n))
    zoom = rng.uniform(1 - scale, 1 + scale, n)
    shift = rng.uniform(-translate, translate, (n, 2)) * 2        # grid units span 2
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.stack([np.stack([cos, -sin, shift[:, 0]], 1),
                      np.stack([sin, cos, shift[:, 1]], 1)], 1)
    theta_t = torch.as_tensor(theta, dtype=torch.float32, device=images.device)
    grid = F.affine_grid(theta_t, list(images.shape), align_corners=False)
    moved = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False).to(images.dtype)
    out = [F.grid_sample(t.float(), grid, mode="nearest", padding_mode="zeros",
                         align_corners=False).to(t.dtype) for t in targets]
    return moved, out


def random_flips(arrays: list[torch.Tensor], rng: np.random.Generator) -> list[torch.Tensor]:
    """Left-right / up-down flips per sample, the same for every tensor of the list."""
    n = arrays[0].shape[0]
    flip_lr = torch.as_tensor(rng.random(n) < 0.5, device=arrays[0].device)
    flip_ud = torch.as_tensor(rng.random(n) < 0.5, device=arrays[0].device)
    out = []
    for array in arrays:
        array = torch.where(flip_lr.view(-1, *([1] * (array.ndim - 1))), array.flip(-1), array)
        array = torch.where(flip_ud.view(-1, *([1] * (array.ndim - 1))), array.flip(-2), array)
        out.append(array)
    return out


def random_intensity(images: torch.Tensor, rng: np.random.Generator, jitter: float,
                     gamma: float) -> torch.Tensor:
    """Per sample and channel: scale by 1 ± ``jitter`` and a gamma of exp(± ``gamma``) on the
    [0, 1] intensities (scanner and protocol differences); background stays 0."""
    if jitter == 0 and gamma == 0:
        return images
    n, c = images.shape[:2]
    scale = torch.as_tensor(rng.uniform(1 - jitter, 1 + jitter, (n, c, 1, 1)),
                            dtype=images.dtype, device=images.device)
    power = torch.as_tensor(np.exp(rng.uniform(-gamma, gamma, (n, c, 1, 1))),
                            dtype=images.dtype, device=images.device)
    return images.clamp_min(0).pow(power) * scale


def augment(images: torch.Tensor, targets: list[torch.Tensor], rng: np.random.Generator,
            degrees: float = 10.0, scale: float = 0.1, translate: float = 0.05,
            jitter: float = 0.1, gamma: float = 0.2) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Flips, then a small affine, then intensity (images only): the whole training-time
    augmentation of the classifier and of the mask-trained segmenters."""
    flipped = random_flips([images, *targets], rng)
    images, targets = random_affine(flipped[0], flipped[1:], rng, degrees, scale, translate)
    return random_intensity(images, rng, jitter, gamma), targets


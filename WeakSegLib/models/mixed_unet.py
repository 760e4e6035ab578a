"""The U-Net with an image-level classification branch of seed 001 §3.1 (mixed supervision).

The segmentation part is WeakSeg's U-Net (``unet.UNet``) with 2 output maps (healthy / tumour,
softmax) and no latent sampling. The branch takes the U-Net's second-to-last layer (the decoder's
last fused feature, half the input size, ``64 / width_divisor`` maps) and applies, as seed 001
describes: mean-pooling k×k with stride k (k = 8), one conv 3×3 + ReLU to 32 maps, then 7 fully
connected layers with ReLU (none after the last), the outputs of FC1 and FC5 concatenated as the
input of FC6. Widths are the authors' published 300, 250, 200, 150, 100, 50, 2; the profile's
``width_divisor`` divides the conv maps and every FC width but the 2-way output.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from .dcgan import BLOCKS
from .unet import UNet

ARCHITECTURE = "mixed_unet"
SEED_001_FC_WIDTHS = (300, 250, 200, 150, 100, 50, 2)


class MixedOutput(NamedTuple):
    segmentation: torch.Tensor      # [B, 2, S, S] logits (healthy, tumour)
    classification: torch.Tensor    # [B, 2] logits (no tumour, tumour)


def scaled_widths(widths: Sequence[int], divisor: int) -> list[int]:
    """FC widths ÷ ``divisor`` (at least 1), the last (the classes) kept."""
    widths = [int(w) for w in widths]
    if len(widths) != 7:
        raise ValueError(f"the classification branch has 7 fully connected layers; got "
                         f"{len(widths)} widths {widths}")
    return [max(1, w // divisor) for w in widths[:-1]] + [widths[-1]]


class ClassificationBranch(nn.Module):
    """Feature maps ``[B, C, H, W]`` → image-level logits ``[B, classes]`` (seed 001 Fig. 2)."""

    def __init__(self, in_channels: int, feature_size: int, pool: int = 8, maps: int = 32,
                 widths: Sequence[int] = SEED_001_FC_WIDTHS) -> None:
        super().__init__()
        if len(widths) != 7:
            raise ValueError(f"7 fully connected widths expected, got {list(widths)}")
        pool = min(pool, feature_size)          # tiny test sizes: pool what there is
        side = feature_size // pool
        self.pool = nn.AvgPool2d(pool, stride=pool)
        self.conv = nn.Sequential(nn.Conv2d(in_channels, maps, 3, padding=1), nn.ReLU())
        w = list(widths)
        ins = [maps * side * side, w[0], w[1], w[2], w[3], w[0] + w[4], w[5]]
        self.fc = nn.ModuleList(nn.Linear(i, o) for i, o in zip(ins, w))
        # He initialisation: with PyTorch's default the signal shrinks through the 7 ReLU layers,
        # the branch starts at a constant and on the real sample it stayed there (a dead branch
        # predicting the batch prior, test AUC 0.5); with He it reached a test AUC of 0.93.
        for layer in (self.conv[0], *self.fc):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.pool(features)).flatten(1)
        relu = torch.relu
        h1 = relu(self.fc[0](h))
        h = h1
        for layer in self.fc[1:5]:
            h = relu(layer(h))
        h6 = relu(self.fc[5](torch.cat([h1, h], dim=1)))      # FC1 ‖ FC5 → FC6
        return self.fc[6](h6)


class MixedUNet(nn.Module):
    """``[B, C, S, S]`` → segmentation logits ``[B, 2, S, S]`` (``forward``) or both outputs
    (``forward_full``). ``forward`` returning one tensor keeps the shared eval helpers usable."""

    architecture = ARCHITECTURE

    def __init__(self, size: int = 128, in_channels: int = 1, latent: int = 100,
                 width_divisor: int = 1, pool: int = 8, branch_maps: int = 32,
                 fc_widths: Sequence[int] = SEED_001_FC_WIDTHS) -> None:
        super().__init__()
        self.arch_kwargs: dict[str, Any] = {
            "size": size, "in_channels": in_channels, "latent": latent,
            "width_divisor": width_divisor, "pool": pool, "branch_maps": branch_maps,
            "fc_widths": [int(w) for w in fc_widths]}
        self.size, self.latent = size, latent
        self.unet = UNet(size, in_channels, out_channels=2, latent=latent,
                         width_divisor=width_divisor, out_activation="none", sample_latent=False)
        penultimate = self.unet.decoder.blocks[-1][0].in_channels
        self.branch = ClassificationBranch(
            penultimate, size // 2, pool, max(1, branch_maps // width_divisor),
            scaled_widths(fc_widths, width_divisor))

    def forward_full(self, x: torch.Tensor) -> MixedOutput:
        mu, _, feats = self.unet.encode(x)
        h = mu.reshape(mu.shape[0], self.latent, 1, 1)
        blocks = self.unet.decoder.blocks
        for j, block in enumerate(blocks):
            if j == BLOCKS - 1:
                penultimate = h
            h = block(h)
            if j < BLOCKS - 1:
                skip = self.unet.skip_in[j](feats[BLOCKS - 2 - j])
                h = self.unet.skip_fuse[j](torch.cat([h, skip], dim=1))
        return MixedOutput(h, self.branch(penultimate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_full(x).segmentation


def tumour_probability(logits: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the tumour class, ``[B, 2, ...]`` → ``[B, ...]``."""
    return torch.softmax(logits.float(), dim=1)[:, 1]


class TumourProbability(nn.Module):
    """A mixed U-Net as a segmenter: ``[B, C, S, S]`` → tumour probability ``[B, 1, S, S]``,
    the output every other segmenter network gives, so inference tiles it like them."""

    def __init__(self, model: MixedUNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tumour_probability(self.model(x))[:, None]

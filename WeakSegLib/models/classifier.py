"""Slice classifier (Pipeline row 1): VGG16-BN with C input channels and one tumour logit.

The input is upsampled ×2 inside ``forward`` (seed 000 §2.1: better seeds, while data stays small
everywhere else). Widths are VGG16's divided by ``width_divisor`` so the fast profile fits a CPU,
and adaptive pooling before a small head lets any input ≥ 32 px through.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "vgg16bn_classifier"

#: VGG16 configuration "D": conv widths, "M" = 2×2 max pool.
VGG16_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                       512, 512, 512, "M", 512, 512, 512, "M")


#: the head's global pooling: "avg" (VGG's) or "max" — a slice has tumour when any place
#: of it has, so a small tumour is not averaged away (global max pooling, Oquab et al. 2015)
POOLS = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}


def _scaled(width: int, divisor: int) -> int:
    return max(1, width // divisor)


class VGG16BNClassifier(nn.Module):
    """VGG16-BN returning a raw logit ``[B, 1]``; use ``predict_proba`` for probabilities."""

    architecture = ARCHITECTURE

    def __init__(self, in_channels: int = 4, width_divisor: int = 1, upsample: float = 2,
                 dropout: float = 0.5, pool: str = "avg") -> None:
        super().__init__()
        if in_channels < 1 or width_divisor < 1 or upsample <= 0:
            raise ValueError("in_channels and width_divisor must be ≥ 1 and upsample > 0")
        if pool not in POOLS:
            raise ValueError(f"pool {pool!r}: choose one of {sorted(POOLS)}")
        self.arch_kwargs: dict[str, Any] = {"in_channels": in_channels,
                                            "width_divisor": width_divisor,
                                            "upsample": upsample, "dropout": dropout,
                                            "pool": pool}
        self.upsample = upsample
        layers: list[nn.Module] = []
        channels = in_channels
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            width = _scaled(int(item), width_divisor)
            # Non-inplace ReLU: Grad-CAM++ hooks the last one and needs its output intact.
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = POOLS[pool](1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(channels, 1))
        self.feature_channels = channels

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output is the last conv feature map (post-ReLU) for CAM methods."""
        return self.features[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample != 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return self.head(self.pool(self.features(x)))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Tumour probability per image, ``[B]``; the caller chooses train/eval mode."""
        return torch.sigmoid(self(x)).reshape(x.shape[0])

"""DCGAN generator and discriminator with exactly 6 blocks each (Pipeline row 3, seed 000 §3.2).

Stride schedule (shared by G, D and the U-Net so their weights interchange): a size of
``4·2^n`` px (n = 1 … 5: 8, 16, 32, 64, 128) uses n resampling blocks (kernel 4, stride 2,
padding 1) and ``5 − n`` size-keeping blocks (kernel 3, stride 1, padding 1), the latter at
4×4 where they are cheapest. G's first block maps the 1×1 latent to 4×4 (kernel 4, stride 1,
padding 0); D's last block maps 4×4 to 1×1 the same way. 128 px: 1→4→8→16→32→64→128;
64 px: 1→4→4→8→16→32→64.

Widths at full scale: D 64, 128, 256, 512, 1024 then 1 output; G the mirror, 1024 … 64 then
1 image channel; all divided by ``width_divisor``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

GENERATOR_ARCHITECTURE = "dcgan_generator"
DISCRIMINATOR_ARCHITECTURE = "dcgan_discriminator"
BLOCKS = 6
BASE_WIDTH = 64
#: (kernel, stride, padding) of the 1×1 ↔ 4×4 layer, a ×2 layer and a size-keeping layer.
EDGE, RESAMPLE, KEEP = (4, 1, 0), (4, 2, 1), (3, 1, 1)


def resample_count(size: int) -> int:
    """Number of ×2 blocks for a square ``size``; raises for sizes the 6 blocks cannot reach."""
    n = 0
    s = size
    while s > 4 and s % 2 == 0:
        s //= 2
        n += 1
    if s != 4 or not 1 <= n <= BLOCKS - 1:
        raise ValueError(f"size {size} unsupported: must be 4·2^n with n in 1..{BLOCKS - 1} "
                         "(8, 16, 32, 64 or 128)")
    return n


def middle_schedule(size: int) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of the 5 blocks between the 1×1 and the image, coarse → fine."""
    n = resample_count(size)
    return [KEEP] * (BLOCKS - 1 - n) + [RESAMPLE] * n


def encoder_widths(width_divisor: int) -> list[int]:
    """Output widths of D's first 5 blocks (fine → coarse); G's block widths are the reverse."""
    return [max(1, BASE_WIDTH * 2 ** i // width_divisor) for i in range(BLOCKS - 1)]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv N(0, 0.02), BN scale N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _activation(name: str) -> nn.Module:
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown output activation {name!r}; use 'sigmoid' or 'none'")


class Generator(nn.Module):
    """G: latent ``[B, latent]`` (or ``[B, latent, 1, 1]``) → image ``[B, out_channels, size, size]``.

    Blocks 1–5: ConvTranspose, BN, ReLU; block 6: ConvTranspose then sigmoid (no BN). The
    U-Net reuses this module as its decoder, calling ``blocks`` one by one.
    """

    architecture = GENERATOR_ARCHITECTURE

    def __init__(self, size: int = 128, latent: int = 100, width_divisor: int = 1,
                 out_channels: int = 1, out_activation: str = "sigmoid") -> None:
        super().__init__()
        self.arch_kwargs: dict[str, Any] = {"size": size, "latent": latent,
                                            "width_divisor": width_divisor,
                                            "out_channels": out_channels,
                                            "out_activation": out_activation}
        self.size, self.latent = size, latent
        widths = encoder_widths(width_divisor)[::-1]          # coarse → fine
        specs = [EDGE] + middle_schedule(size)
        ins = [latent] + widths
        outs = widths + [out_channels]
        self.blocks = nn.ModuleList()
        for i, ((k, s, p), cin, cout) in enumerate(zip(specs, ins, outs)):
            last = i == BLOCKS - 1
            layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, k, s, p, bias=last)]
            layers += [_activation(out_activation)] if last else [nn.BatchNorm2d(cout), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
        self.widths = widths
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.reshape(z.shape[0], self.latent, 1, 1)
        for block in self.blocks:
            x = block(x)
        return x


class Discriminator(nn.Module):
    """D: image ``[B, in_channels, size, size]`` → ``[B, out_features]`` (a probability by default).

    Blocks 1–5: Conv, BN, LeakyReLU 0.2 (no BN in block 1); block 6: Conv 4×4 → 1×1, no BN, then
    ``final_activation``. The U-Net encoder is this module with ``out_features = 2·latent``
    (μ and log σ²) and no final activation.
    """

    architecture = DISCRIMINATOR_ARCHITECTURE

    def __init__(self, size: int = 128, in_channels: int = 1, width_divisor: int = 1,
                 out_features: int = 1, final_activation: str = "sigmoid") -> None:
        super().__init__()
        self.arch_kwargs: dict[str, Any] = {"size": size, "in_channels": in_channels,
                                            "width_divisor": width_divisor,
                                            "out_features": out_features,
                                            "final_activation": final_activation}
        self.size = size
        widths = encoder_widths(width_divisor)                # fine → coarse
        specs = middle_schedule(size)[::-1] + [EDGE]
        ins = [in_channels] + widths
        outs = widths + [out_features]
        self.blocks = nn.ModuleList()
        for i, ((k, s, p), cin, cout) in enumerate(zip(specs, ins, outs)):
            first, last = i == 0, i == BLOCKS - 1
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, p, bias=first or last)]
            if last:
                layers.append(_activation(final_activation))
            else:
                if not first:
                    layers.append(nn.BatchNorm2d(cout))
                layers.append(nn.LeakyReLU(0.2))
            self.blocks.append(nn.Sequential(*layers))
        self.widths = widths
        dcgan_init(self)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of blocks 1–5 (fine → coarse): the U-Net's skip sources."""
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"expected {self.size}×{self.size} input, got {tuple(x.shape[-2:])}")
        feats = []
        for block in self.blocks[:-1]:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[-1](self.features(x)[-1]).flatten(1)

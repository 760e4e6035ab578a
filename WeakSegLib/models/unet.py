"""The U-Net of Pipeline rows 4–7: healthy-variant converter and, with fresh weights, segmenter.

Encoder = the DCGAN discriminator's first 5 blocks plus a last 4×4 → 1×1 conv giving μ and
log σ² of a ``latent``-d code (reparameterised sample in training, μ in eval). Decoder = the DCGAN
generator, block for block. Skips follow seed 000 §3.2: per decoder block 1–5, the encoder
feature of the same size goes through conv3×3+ReLU ("skip_in"), is **concatenated** with the
decoder feature, and a second conv3×3+ReLU ("skip_fuse") maps the 2w channels back to w. The fuse
output has the generator's own width, so G's weights load into the decoder unchanged — no
addition is needed. ``init_from_dcgan`` can also set each fuse conv to pass the decoder feature
through (identity on it, zero on the skip), so the converter starts exactly as G(μ(x)).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from .dcgan import BLOCKS, Discriminator, Generator, encoder_widths

ARCHITECTURE = "weakseg_unet"
LOGVAR_RANGE = (-30.0, 20.0)   # keeps exp(logvar / 2) finite in the reparameterisation


class UNetOutput(NamedTuple):
    image: torch.Tensor     # [B, out_channels, size, size]
    mu: torch.Tensor        # [B, latent]
    logvar: torch.Tensor    # [B, latent]


class UNet(nn.Module):
    """Image ``[B, in_channels, size, size]`` → image of the same size (sigmoid by default)."""

    architecture = ARCHITECTURE

    def __init__(self, size: int = 128, in_channels: int = 1, out_channels: int = 1,
                 latent: int = 100, width_divisor: int = 1, out_activation: str = "sigmoid",
                 sample_latent: bool = True) -> None:
        super().__init__()
        self.arch_kwargs: dict[str, Any] = {"size": size, "in_channels": in_channels,
                                            "out_channels": out_channels, "latent": latent,
                                            "width_divisor": width_divisor,
                                            "out_activation": out_activation,
                                            "sample_latent": sample_latent}
        self.size, self.latent, self.sample_latent = size, latent, sample_latent
        self.encoder = Discriminator(size, in_channels, width_divisor, out_features=2 * latent,
                                     final_activation="none")
        self.decoder = Generator(size, latent, width_divisor, out_channels, out_activation)
        widths = encoder_widths(width_divisor)[::-1]          # decoder blocks 1–5, coarse → fine
        self.skip_in = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.ReLU()) for w in widths)
        self.skip_fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU()) for w in widths)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """μ, log σ² and the encoder features (fine → coarse) used by the skips."""
        feats = self.encoder.features(x)
        stats = self.encoder.blocks[-1](feats[-1]).flatten(1)
        mu, logvar = stats.chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE), feats

    def decode(self, z: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        h = z.reshape(z.shape[0], self.latent, 1, 1)
        for j, block in enumerate(self.decoder.blocks):
            h = block(h)
            if j < BLOCKS - 1:
                skip = self.skip_in[j](feats[BLOCKS - 2 - j])
                h = self.skip_fuse[j](torch.cat([h, skip], dim=1))
        return h

    def forward_full(self, x: torch.Tensor) -> UNetOutput:
        """Output image plus μ and log σ² (for the converter's KL term)."""
        mu, logvar, feats = self.encode(x)
        z = mu
        if self.training and self.sample_latent:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return UNetOutput(self.decode(z, feats), mu, logvar)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_full(x).image

    @torch.no_grad()
    def init_from_dcgan(self, generator: Generator, discriminator: Discriminator,
                        identity_skips: bool = True) -> None:
        """Start from a trained DCGAN (seed 000 §2.2.2): G → decoder, D blocks 1–5 → encoder.

        D's last block (1 output) has no counterpart and stays fresh. If D saw 1 channel (FLAIR)
        and this U-Net takes C > 1, D's first-layer filters go to input channel 0 (FLAIR comes
        first in ``config.MODALITIES``) and the others start at zero. With ``identity_skips`` the
        fuse convs pass the decoder feature through, so the output equals G(μ(x)) at first.
        """
        try:
            self.decoder.load_state_dict(generator.state_dict())
        except RuntimeError as exc:
            raise ValueError(f"generator does not match the U-Net decoder: {exc}") from None
        for i in range(BLOCKS - 1):
            state = dict(discriminator.blocks[i].state_dict())
            if i == 0:
                state["0.weight"] = self._first_filters(state["0.weight"])
            try:
                self.encoder.blocks[i].load_state_dict(state)
            except RuntimeError as exc:
                raise ValueError(f"discriminator block {i + 1} does not match the U-Net "
                                 f"encoder: {exc}") from None
        if identity_skips:
            for fuse in self.skip_fuse:
                conv = fuse[0]
                width = conv.out_channels
                conv.weight.zero_()
                conv.bias.zero_()
                idx = torch.arange(width)
                conv.weight[idx, idx, 1, 1] = 1.0

    def _first_filters(self, weight: torch.Tensor) -> torch.Tensor:
        target = self.encoder.blocks[0][0].weight
        if weight.shape == target.shape or weight.shape[1] != 1 or \
                weight.shape[0] != target.shape[0] or weight.shape[2:] != target.shape[2:]:
            return weight        # equal, or a mismatch that load_state_dict will report
        out = torch.zeros_like(target)
        out[:, :1] = weight
        return out

"""The segmenters' loss (seed 000 §2.3, Pipeline row 5) as small pure functions on tensors.

All arguments are float tensors of one shape (``[B, 1, H, W]`` in training); seeds are 0/1 masks.
S is the segmenter's sigmoid output. Kept apart from the stage so each term can be checked on
hand-computed numbers and so the seed-only baseline is the same loss with two weights at 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import SegmenterConfig


def seed_loss(S: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
              balanced: bool = False) -> torch.Tensor:
    """BCE of S against 1 on positive-seed pixels and 0 on negative-seed pixels, averaged over
    the seed pixels only: the seeds are the only labels we have, everything else is unknown.
    0 when the batch has no seed pixel. A pixel in both seeds counts as positive.

    ``balanced``: the mean over positive seed pixels plus the mean over negative ones, halved,
    so a batch with 1 % positive pixels cannot be fitted by predicting "empty" everywhere."""
    positive, negative = positive.float(), negative.float()
    seeded = torch.maximum(positive, negative)
    target = positive.clamp(0, 1)
    # binary_cross_entropy clamps log at −100, so S of exactly 0 or 1 stays finite
    bce = F.binary_cross_entropy(S.float(), target, reduction="none")
    if not balanced:
        return (bce * seeded).sum() / seeded.sum().clamp_min(1.0)
    only_negative = seeded - target
    parts = [(bce * w).sum() / w.sum() for w in (target, only_negative) if w.sum() > 0]
    return torch.stack(parts).mean() if parts else bce.sum() * 0.0


def reconstruction_loss(x_flair: torch.Tensor, v: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """mean(|x_flair − v|·(1 − S)): the difference between the slice and its healthy variant
    that the segmentation leaves unexplained. Pushes S up where the tumour was removed."""
    return ((x_flair.float() - v.float()).abs() * (1.0 - S.float())).mean()


def size_loss(S: torch.Tensor) -> torch.Tensor:
    """mean(S): a small pull towards empty, so S does not grow over every faint difference."""
    return S.float().mean()


def segmenter_loss(S: torch.Tensor, x_flair: torch.Tensor, v: torch.Tensor,
                   positive: torch.Tensor, negative: torch.Tensor, cfg: SegmenterConfig
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """seed_weight·seed + reconstruction_weight·reconstruction + size_weight·size; returns the
    total and the three unweighted parts (for logging)."""
    parts = {"seed": seed_loss(S, positive, negative, cfg.balance_seeds),
             "reconstruction": reconstruction_loss(x_flair, v, S),
             "size": size_loss(S)}
    total = (cfg.seed_weight * parts["seed"] + cfg.reconstruction_weight * parts["reconstruction"]
             + cfg.size_weight * parts["size"])
    return total, parts

"""Seed rules of seed 000 §2.1: positive = saliency > 0.8, negative = saliency < 0.2 on slices
labelled tumour; a healthy slice gets positive all 0 and negative all 1 and is never explained."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Profile, SeedConfig
from .registry import get_explainer


def _numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _labels(labels: Any, n: int) -> np.ndarray:
    lab = _numpy(labels).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"{lab.shape[0]} labels for {n} slices")
    return lab.astype(bool)


def seeds_from_saliency(saliency: Any, labels: Any, pos: float = 0.8,
                        neg: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (positive, negative) seeds ``[B, H, W]`` from maps in [0, 1] and slice labels."""
    sal = _numpy(saliency)
    if sal.ndim != 3:
        raise ValueError(f"saliency must be [B, H, W], got shape {sal.shape}")
    tumour = _labels(labels, sal.shape[0])[:, None, None]
    positive = (sal > pos) & tumour
    negative = (sal < neg) | ~tumour
    return positive, negative


def brain_normalised(saliency: np.ndarray, brain: np.ndarray,
                     percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Per slice, saliency min-max scaled between its percentiles inside the brain (0 outside).
    RISE maps with few masks sit in a narrow band around 0.5; fixed cut-offs at 0.2/0.8 then
    keep a few scattered pixels, a per-slice scale keeps the ranking and discards the offset."""
    sal, brain = np.asarray(saliency, np.float32), np.asarray(brain, bool)
    out = np.zeros_like(sal)
    for i in range(len(sal)):
        values = sal[i][brain[i]]
        if values.size:
            lo, hi = np.percentile(values, percentiles)
            out[i] = np.clip((sal[i] - lo) / max(hi - lo, 1e-6), 0, 1) * brain[i]
    return out


def flair_brain_stats(flair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, (μ, σ) of FLAIR inside the brain (FLAIR > 0), each shaped ``(N, 1, 1)`` so
    that ``flair > μ + k·σ`` compares whole slices; μ = +inf, σ = 0 on a slice without brain
    (nothing there is bright). The one reading of "FLAIR-bright" shared by the seeds'
    intensity prior and the self-training pseudo-masks."""
    flair = np.asarray(flair, np.float32)
    mean = np.full((len(flair), 1, 1), np.inf, np.float32)
    sd = np.zeros((len(flair), 1, 1), np.float32)
    for i, image in enumerate(flair):
        values = image[image > 0]
        if values.size:
            mean[i], sd[i] = float(values.mean()), float(values.std())
    return mean, sd


def intensity_prior_seeds(saliency: np.ndarray, flair: np.ndarray, labels: Any,
                          saliency_threshold: float, positive_sd: float, negative_sd: float,
                          base_negative: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Seeds that need the classifier *and* the image to agree (the pseudo-label refinement by
    low-level image evidence of seed 003): positive = salient (brain-normalised saliency above
    ``saliency_threshold``) and FLAIR-hyperintense (> μ + ``positive_sd``·σ of the slice's
    brain); negative = ``base_negative`` (the saliency rule's) or FLAIR below μ + ``negative_sd``
    ·σ — a glioma's oedema is FLAIR-bright, so dark brain is reliably not tumour. Healthy-
    labelled slices: no positive, all negative."""
    flair = np.asarray(flair, np.float32)
    tumour = _labels(labels, flair.shape[0])
    brain = flair > 0
    salient = brain_normalised(saliency, brain) > saliency_threshold
    positive = np.zeros(flair.shape, bool)
    negative = np.zeros(flair.shape, bool) if base_negative is None else \
        np.asarray(base_negative, bool).copy()
    rows = np.flatnonzero(tumour)
    mean, sd = flair_brain_stats(flair[rows])
    positive[rows] = salient[rows] & (flair[rows] > mean + positive_sd * sd)
    negative[rows] |= brain[rows] & (flair[rows] < mean + negative_sd * sd)
    negative &= ~positive
    negative[~tumour] = True
    return positive, negative


def compute_seeds(model: nn.Module, images: Any, labels: Any,
                  cfg: SeedConfig | Profile | None = None, source: str | None = None,
                  return_saliency: bool = False
                  ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeds for a batch ``[B, C, H, W]``; only slices labelled 1 go through the explainer.

    ``source`` defaults to ``cfg.method``; with ``return_saliency`` the float32 maps (zeros on
    healthy slices) come third.
    """
    cfg = cfg.seeds if isinstance(cfg, Profile) else (cfg or SeedConfig())
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(x.shape)}")
    tumour = _labels(labels, x.shape[0])
    saliency = np.zeros((x.shape[0], *x.shape[-2:]), dtype=np.float32)
    if tumour.any():
        explain = get_explainer(source or cfg.method, cfg)
        index = torch.as_tensor(np.flatnonzero(tumour))
        saliency[tumour] = _numpy(explain(model, x[index].float())).astype(np.float32)
    positive, negative = seeds_from_saliency(saliency, tumour, cfg.positive_threshold,
                                             cfg.negative_threshold)
    return (positive, negative, saliency) if return_saliency else (positive, negative)

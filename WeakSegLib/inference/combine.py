"""The combination of the over- and under-segmenter (seed 000 §2.4, Pipeline row 8)."""
from __future__ import annotations

import numpy as np


def combine(s_under: np.ndarray, s_over: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """S = w·S_over + (1 − w)·S_under with one weight per patch (``weight`` of shape (M,))
    broadcast over the patch's ``(M, H, W)`` maps."""
    w = np.asarray(weight, np.float32).reshape(-1, *([1] * (np.ndim(s_under) - 1)))
    return w * s_over + (1.0 - w) * s_under


def gate(maps: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Patches the classifier calls healthy (score < threshold) become empty."""
    keep = (np.asarray(scores) >= threshold).reshape(-1, *([1] * (np.ndim(maps) - 1)))
    return np.where(keep, maps, 0.0).astype(np.float32)


def difference_scores(flair: np.ndarray, variant: np.ndarray, segmentation: np.ndarray
                      ) -> np.ndarray:
    """Per slice of ``(Z, H, W)`` stacks: mean |x − v| over the segmented pixels (Pipeline
    row 10; a real tumour is what the converter removed, so D is large). NaN where the slice's
    segmentation is empty: such a slice has no score and is never flagged."""
    seg = np.asarray(segmentation, bool)
    diff = np.abs(np.asarray(flair, np.float32) - np.asarray(variant, np.float32))
    count = seg.reshape(len(seg), -1).sum(axis=1)
    total = np.where(seg, diff, 0).reshape(len(seg), -1).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def flagged(scores: np.ndarray, threshold: float) -> np.ndarray:
    """D < threshold: a segmentation the healthy variant does not explain — for review."""
    scores = np.asarray(scores, np.float32)
    return np.where(np.isnan(scores), False, scores < threshold)

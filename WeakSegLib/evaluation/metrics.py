"""Evaluation metrics exactly as DESIGN.md ("Metrics") defines them.

Slice Dice uses ε = 1 so that an empty prediction against a small truth is not 0 (seed 000
Fig. 14: empty vs 7 pixels → 0.125). HD95 comes from MONAI (directed 95th percentiles of the
surface distances, the larger of the two, in mm) with the BraTS convention for empty masks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..config import HD95_ONE_EMPTY_MM


def _dice(a: np.ndarray, b: np.ndarray, eps: float) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return (2.0 * int(np.logical_and(a, b).sum()) + eps) / (total + eps)


def per_slice_dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """2D Dice (ε = 1) of every axial slice of (z, y, x) volumes."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    inter = np.logical_and(pred, truth).sum(axis=(1, 2))
    total = pred.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
    return np.where(total == 0, 1.0, (2.0 * inter + 1.0) / (total + 1.0))


def slice_dice(pred: np.ndarray, truth: np.ndarray, brain: np.ndarray | None = None) -> float:
    """Mean 2D Dice over every axial slice that contains brain (all slices if no brain given)."""
    scores = per_slice_dice(pred, truth)
    if brain is not None:
        scores = scores[np.asarray(brain, bool).any(axis=(1, 2))]
    return float(scores.mean()) if scores.size else float("nan")


def tumour_slice_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean 2D Dice over the slices whose truth is non-empty (NaN when there are none)."""
    tumour = np.asarray(truth, bool).any(axis=(1, 2))
    return float(per_slice_dice(pred, truth)[tumour].mean()) if tumour.any() else float("nan")


def volume_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """3D Dice with ε = 0; two empty volumes agree perfectly."""
    return _dice(pred, truth, eps=0.0)


def hd95_mm(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance in mm; ``spacing`` in the array's axis order."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return HD95_ONE_EMPTY_MM
    import warnings

    import torch
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # MONAI's own deprecation notices
        value = compute_hausdorff_distance(torch.from_numpy(pred[None, None]),
                                           torch.from_numpy(truth[None, None]), percentile=95,
                                           spacing=[float(s) for s in spacing])
    return float(value.item())


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                         brain: np.ndarray | None = None) -> dict[str, float]:
    """The four figures WeakSeg reports for one case."""
    return {
        "slice_dice": slice_dice(pred, truth, brain),
        "tumour_slice_dice": tumour_slice_dice(pred, truth),
        "volume_dice": volume_dice(pred, truth),
        "hd95_mm": hd95_mm(pred, truth, spacing),
    }


def classifier_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5
                       ) -> dict[str, float]:
    """AUC, sensitivity and specificity at ``threshold`` on slice labels."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, float).ravel()
    predicted = scores >= threshold
    positives, negatives = labels.sum(), (~labels).sum()
    return {
        "auc": float(roc_auc_score(labels, scores)) if positives and negatives else float("nan"),
        "sensitivity": float((predicted & labels).sum() / positives) if positives else float("nan"),
        "specificity": float((~predicted & ~labels).sum() / negatives) if negatives else float("nan"),
        "n_slices": int(labels.size),
    }


def seed_overlap(positive: np.ndarray, negative: np.ndarray, truth: np.ndarray
                 ) -> dict[str, float]:
    """Seed 000 Table 3, voxels pooled: positive = |P∩G|/|P|, negative = |N∖G|/|N|."""
    positive, negative = np.asarray(positive, bool), np.asarray(negative, bool)
    truth = np.asarray(truth, bool)
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    return {
        "positive": float((positive & truth).sum() / n_pos) if n_pos else float("nan"),
        "negative": float((negative & ~truth).sum() / n_neg) if n_neg else float("nan"),
        "positive_voxels": n_pos,
        "negative_voxels": n_neg,
    }


def summarise(per_case: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean (ignoring NaN), SD and the number of cases, per metric."""
    out: dict[str, float] = {"n_cases": len(per_case)}
    if not per_case:
        return out
    for name in next(iter(per_case.values())):
        values = np.array([case[name] for case in per_case.values()], float)
        finite = values[np.isfinite(values)]
        out[name] = float(finite.mean()) if finite.size else float("nan")
        out[f"{name}_sd"] = float(finite.std()) if finite.size else float("nan")
    return out

"""Review priority: how likely each slice's segmentation is wrong, computed without a mask.

The radiologist's promise is "look at few slices, get a good segmentation", so the slices must
be ranked by how likely they are wrong. Seed 000's difference score D is one signal and stays a
column of its own; the others read the segmentation itself:

* ``disagreement`` — 1 − the mean 2D Dice between the default segmentation and the pipeline's
  other segmenters (a slice the networks disagree on is a slice none of them is sure of);
* ``disagreement_voxels`` — the voxels they disagree on, |A Δ B| averaged over the others and
  scaled by the case's largest: an estimate of how many voxels a correction would change,
  which is what volume Dice rewards (small end-of-tumour slices are often bad but cheap);
* ``classifier_conflict`` — the classifier against the segmentation: tumour called and nothing
  segmented (c), or the reverse (1 − c);
* ``continuity`` — the area jumps against the neighbouring slices (tumours are smooth along z);
* ``small_area`` — a segmentation much smaller than the case's larger ones (the ends of a
  tumour, where 2D Dice is fragile);
* ``difference`` — seed 000's D mapped so that low D (little explained difference) is high;
* ``uncertain_voxels`` — the default segmenter's own expected wrong voxels on the slice,
  Σ min(p, 1 − p) over its tumour probabilities p, scaled by the case's largest: where a
  boundary is unsure, a correction changes many voxels (one network, no other segmenters).

Each lies in [0, 1]. ``likely_wrong`` is the mean of the ones ``inference.review_scores`` names
(the default chosen by the cross-validation, benchmarks/review_priority.py). ``review_priority``
orders a case's slices in two tiers, because the two things a reviewer wants pull apart: the
slices where a correction changes the volume Dice most are large slices with a 2D Dice of
0.7–0.9, while the slices most likely wrong are small ones. So the top ``review_flag_fraction``
of the case's segmented slices by expected wrong voxels come first and are flagged — a fixed
review budget spent where it pays — and every other slice follows by how likely it is wrong, so
a small wrong slice is still seen before a right one. A slice's expected wrong voxels are the
sum of the two kinds of error, both counted in voxels, no weight between them: the boundary
voxels the segmenter itself is unsure of (``uncertain``) and, for a slice that is wrong as a
whole, likely_wrong × its extent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: every candidate score, in the order of the evaluation's tables
CANDIDATES = ("difference", "disagreement", "disagreement_voxels", "classifier_conflict",
              "continuity", "small_area", "uncertain_voxels")
#: the candidates that compare the default segmentation with the other segmenters
AGREEMENT_SCORES = ("disagreement", "disagreement_voxels")
#: the segmenters whose agreement with the default method is ``disagreement``'s input
REVIEW_OTHERS = ("initial", "under", "over", "seed_only", "self_trained", "combined")


@dataclass
class SliceStats:
    """Mask-free per-slice facts of one case on the input's z axis."""
    area: np.ndarray            # (Z,) voxels of the default segmentation
    agreement: np.ndarray       # (K, Z) 2D Dice of the default with each other segmenter
    classifier: np.ndarray      # (Z,) classifier score
    difference: np.ndarray      # (Z,) seed 000's D (NaN where the slice is empty)
    changed: np.ndarray | None = None   # (K, Z) voxels in exactly one of default and other k
    uncertain: np.ndarray | None = None  # (Z,) Σ min(p, 1 − p) of the default's probabilities


def dice_2d(intersection: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """2D Dice per slice from counts; two empty slices agree (1)."""
    total = area_a + area_b
    return np.where(total > 0, 2.0 * intersection / np.maximum(total, 1), 1.0)


def slice_stats(labels: dict[str, np.ndarray], default: str, others: list[str],
                classifier: np.ndarray, difference: np.ndarray,
                uncertain: np.ndarray | None = None) -> SliceStats:
    """SliceStats from label maps ``(Z, Y, X)`` of the default method and the other
    segmenters (those present in ``labels``); ``uncertain``: see ``uncertain_voxels``."""
    main = labels[default] > 0
    area = main.sum(axis=(1, 2)).astype(np.float64)
    rows, changed = [], []
    for name in others:
        if name in labels and name != default:
            other = labels[name] > 0
            inter = (main & other).sum(axis=(1, 2))
            other_area = other.sum(axis=(1, 2)).astype(np.float64)
            rows.append(dice_2d(inter, area, other_area))
            changed.append(area + other_area - 2 * inter)
    agreement = np.array(rows) if rows else np.ones((0, len(area)))
    return SliceStats(area, agreement, np.asarray(classifier, np.float64),
                      np.asarray(difference, np.float64),
                      np.array(changed) if changed else np.zeros((0, len(area))), uncertain)


def uncertain_voxels(probability: np.ndarray) -> np.ndarray:
    """Per slice of a ``(Z, H, W)`` tumour probability map: Σ min(p, 1 − p), the voxels the
    network itself expects to have wrong at the 0.5 threshold."""
    p = np.asarray(probability, np.float32).reshape(len(probability), -1)
    return np.minimum(p, 1.0 - p).sum(axis=1, dtype=np.float64)


def candidate_scores(stats: SliceStats) -> dict[str, np.ndarray]:
    """Every candidate score per slice, each in [0, 1] (higher = look first)."""
    area = stats.area
    segmented = area > 0
    scores: dict[str, np.ndarray] = {}
    d = np.nan_to_num(stats.difference, nan=np.inf)
    scores["difference"] = np.where(segmented, np.clip(1.0 - d / 0.5, 0.0, 1.0), 0.0)
    scores["disagreement"] = (1.0 - stats.agreement.mean(axis=0)) if len(stats.agreement) \
        else np.zeros_like(area)
    changed = stats.changed if stats.changed is not None and len(stats.changed) else \
        np.zeros((1, len(area)))
    voxels = changed.mean(axis=0)
    scores["disagreement_voxels"] = voxels / voxels.max() if voxels.max() > 0 else voxels
    c = np.clip(stats.classifier, 0.0, 1.0)
    scores["classifier_conflict"] = np.where(segmented, 1.0 - c, c)
    neighbours = _neighbour_mean(area)
    jump = np.abs(area - neighbours) / np.maximum(np.maximum(area, neighbours), 1.0)
    scores["continuity"] = np.where(segmented | (neighbours > 0), jump, 0.0)
    reference = np.percentile(area[segmented], 90) if segmented.any() else 1.0
    scores["small_area"] = np.where(segmented, 1.0 - np.minimum(area / reference, 1.0), 0.0)
    uncertain = stats.uncertain if stats.uncertain is not None else np.zeros_like(area)
    scores["uncertain_voxels"] = uncertain / uncertain.max() if uncertain.max() > 0 else \
        np.zeros_like(area)
    return scores


def _neighbour_mean(area: np.ndarray) -> np.ndarray:
    """Per slice, the mean area of the slices above and below (0 beyond the volume)."""
    padded = np.pad(np.asarray(area, np.float64), 1)
    return (padded[:-2] + padded[2:]) / 2.0


def extent_voxels(area: np.ndarray) -> np.ndarray:
    """Per slice, the larger of its segmented area and its neighbours' mean: what a correction
    of a slice wrong as a whole changes (an empty slice between segmented ones inherits their
    size)."""
    return np.maximum(np.asarray(area, np.float64), _neighbour_mean(area))


def slice_extent(area: np.ndarray) -> np.ndarray:
    """``extent_voxels`` scaled by the case's largest."""
    extent = extent_voxels(area)
    return extent / extent.max() if extent.max() > 0 else extent


def expected_wrong_voxels(stats: SliceStats, wrong: np.ndarray) -> np.ndarray:
    """Per slice: the segmenter's own unsure voxels (0 where unknown) + likely_wrong × extent,
    both in voxels of the input grid."""
    uncertain = stats.uncertain if stats.uncertain is not None else 0.0
    return uncertain + wrong * extent_voxels(stats.area)


def likely_wrong(stats: SliceStats, names: tuple[str, ...],
                 scores: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The mean of the named candidate scores per slice, in [0, 1]. ``scores``: the candidate
    scores of ``stats`` when the caller has them already."""
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise ValueError(f"review scores {list(names)}: choose from {list(CANDIDATES)}")
    scores = scores if scores is not None else candidate_scores(stats)
    return np.mean([scores[n] for n in names], axis=0)


#: the priority value that separates the two tiers: flagged slices lie above it
TIER_BOUNDARY = 0.5


def review_priority(stats: SliceStats, names: tuple[str, ...], flag_fraction: float | None,
                    scores: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per slice in [0, 1], higher = look first. With ``flag_fraction`` f: the ⌈f · segmented
    slices⌉ slices of most expected wrong voxels (``expected_wrong_voxels``, > 0) lie in
    (0.5, 1] in that order, every other slice in [0, 0.5) by likely_wrong; without, the
    priority is likely_wrong itself."""
    if flag_fraction is not None and not 0 <= flag_fraction <= 1:
        raise ValueError(f"review flag fraction {flag_fraction}: must lie in [0, 1] (or None)")
    wrong = likely_wrong(stats, names, scores)
    if flag_fraction is None:
        return wrong
    at_stake = expected_wrong_voxels(stats, wrong)
    if at_stake.max() > 0:
        at_stake = at_stake / at_stake.max()
    return two_tiers(wrong, at_stake, stats.area > 0, flag_fraction)


def two_tiers(wrong: np.ndarray, at_stake: np.ndarray, segmented: np.ndarray,
              flag_fraction: float) -> np.ndarray:
    """The ⌈``flag_fraction`` · segmented slices⌉ slices of largest ``at_stake`` (> 0, in
    [0, 1]) in (0.5, 1] in that order, every other slice in [0, 0.5) by ``wrong``."""
    budget = int(np.ceil(flag_fraction * np.count_nonzero(segmented) - 1e-9))
    order = np.argsort(-at_stake, kind="stable")[:budget]
    first = order[at_stake[order] > 0]
    priority = np.minimum(wrong * TIER_BOUNDARY, np.nextafter(TIER_BOUNDARY, 0.0))
    priority[first] = TIER_BOUNDARY + (1.0 - TIER_BOUNDARY) * at_stake[first]
    return priority


def flags(priority: np.ndarray, threshold: float) -> np.ndarray:
    """Slices to review first: priority at or above the threshold."""
    return np.asarray(priority) >= threshold

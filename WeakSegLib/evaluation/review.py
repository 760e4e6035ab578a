"""How well a review score finds the wrong slices (DESIGN.md "Review priority").

Over the slices where truth or prediction is non-empty, "bad" = 2D Dice (ε = 1) < 0.5; a score
is judged by its AUROC for bad and by its review curve: the volume Dice after a perfect reviewer
replaces the top k % of slices (k of the case's segmented slices, ranked over all its brain
slices by the score) with the truth — beside a random order and the oracle order (most wrong
voxels first). Everything works on per-slice counts, so the curves need no second pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REVIEW_PERCENTS = (0, 5, 10, 20, 30)
BAD_DICE = 0.5
_RANDOM_ORDERS = 20


@dataclass
class CaseSliceCounts:
    """Per input slice of one case: |P ∩ T|, |P|, |T|, whether it is a brain slice."""
    intersection: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray
    brain: np.ndarray

    @classmethod
    def from_labels(cls, prediction: np.ndarray, truth: np.ndarray, brain: np.ndarray
                    ) -> "CaseSliceCounts":
        p, t = prediction > 0, truth > 0
        return cls((p & t).sum(axis=(1, 2)).astype(float), p.sum(axis=(1, 2)).astype(float),
                   t.sum(axis=(1, 2)).astype(float), np.asarray(brain, bool))

    def slice_dice(self) -> np.ndarray:
        return (2 * self.intersection + 1) / (self.predicted + self.truth + 1)

    def judged(self) -> np.ndarray:
        """Slices where truth or prediction is non-empty."""
        return (self.predicted > 0) | (self.truth > 0)

    def corrected_volume_dice(self, order: np.ndarray, n: int) -> float:
        """Volume Dice after the first ``n`` slices of ``order`` are replaced by the truth."""
        inter, pred = self.intersection.copy(), self.predicted.copy()
        fixed = order[:n]
        inter[fixed], pred[fixed] = self.truth[fixed], self.truth[fixed]
        total = pred.sum() + self.truth.sum()
        return float(2 * inter.sum() / total) if total > 0 else 1.0


def auroc_for_bad(cases: list[CaseSliceCounts], scores: list[np.ndarray]) -> float:
    """AUROC of the score for "2D Dice < 0.5", pooled over the judged slices of all cases."""
    from sklearn.metrics import roc_auc_score

    bad, values = [], []
    for counts, score in zip(cases, scores):
        judged = counts.judged()
        bad.append(counts.slice_dice()[judged] < BAD_DICE)
        values.append(np.asarray(score, float)[judged])
    bad_all, values_all = np.concatenate(bad), np.concatenate(values)
    if bad_all.all() or not bad_all.any():
        return float("nan")
    return float(roc_auc_score(bad_all, values_all))


def _curve(cases: list[CaseSliceCounts], orders: list[np.ndarray],
           percents: tuple[int, ...]) -> list[float]:
    out = []
    for k in percents:
        values = [c.corrected_volume_dice(o, int(round(k / 100 * (c.predicted > 0).sum())))
                  for c, o in zip(cases, orders)]
        out.append(float(np.mean(values)))
    return out


def _score_order(counts: CaseSliceCounts, score: np.ndarray) -> np.ndarray:
    brain = np.flatnonzero(counts.brain)
    return brain[np.argsort(-np.asarray(score, float)[brain], kind="stable")]


def review_curves(cases: list[CaseSliceCounts], scores: dict[str, list[np.ndarray]],
                  percents: tuple[int, ...] = REVIEW_PERCENTS, seed: int = 0) -> dict:
    """Per score its AUROC and curve, plus the random and oracle curves, each with its area
    (trapezoid over k, normalised by the k range) and its gain at every k over k = 0."""
    rng = np.random.default_rng(seed)
    errors = [c.predicted + c.truth - 2 * c.intersection for c in cases]   # wrong voxels
    oracle = [np.flatnonzero(c.brain)[np.argsort(-e[c.brain], kind="stable")]
              for c, e in zip(cases, errors)]
    random_curves = [_curve(cases, [rng.permutation(np.flatnonzero(c.brain)) for c in cases],
                            percents) for _ in range(_RANDOM_ORDERS)]
    curves = {"oracle": _curve(cases, oracle, percents),
              "random": [float(v) for v in np.mean(random_curves, axis=0)]}
    # the oracle order's own AUROC for "bad": the slices with the most wrong voxels are mostly
    # large slices with a Dice above 0.5, so finding bad slices and gaining volume Dice fast
    # pull a ranking in different directions
    aurocs = {"oracle": auroc_for_bad(cases, [e.astype(float) for e in errors])}
    for name, per_case in scores.items():
        curves[name] = _curve(cases, [_score_order(c, s) for c, s in zip(cases, per_case)],
                              percents)
        aurocs[name] = auroc_for_bad(cases, per_case)
    span = max(percents) - min(percents) or 1
    out = {"percents": list(percents), "auroc": aurocs, "curves": curves,
           "area": {n: float(_trapezoid(v, percents) / span) for n, v in curves.items()},
           "gain": {n: [float(x - v[0]) for x in v] for n, v in curves.items()},
           "n_cases": len(cases),
           "n_judged_slices": int(sum(c.judged().sum() for c in cases)),
           "n_bad_slices": int(sum((c.judged() & (c.slice_dice() < BAD_DICE)).sum()
                                   for c in cases))}
    return out


def _trapezoid(values: list[float], at: tuple[int, ...]) -> float:
    """Area under a piecewise-linear curve (np.trapezoid is NumPy ≥ 2 only)."""
    v, x = np.asarray(values, float), np.asarray(at, float)
    return float(((v[1:] + v[:-1]) / 2 * np.diff(x)).sum())

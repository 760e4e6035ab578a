"""Mask-free review scores: each candidate reads what it claims to read."""
from __future__ import annotations

import numpy as np
import pytest

from WeakSegLib.inference.review import (CANDIDATES, TIER_BOUNDARY, SliceStats,
                                         candidate_scores, flags, likely_wrong,
                                         review_priority, slice_stats, uncertain_voxels)


def _volume(areas: list[int], size: int = 20) -> np.ndarray:
    out = np.zeros((len(areas), size, size), np.uint8)
    for z, a in enumerate(areas):
        out[z].flat[:a] = 1
    return out


def test_scores_point_at_the_suspicious_slices() -> None:
    main = _volume([0, 100, 100, 10, 100, 100, 0])
    other = main.copy()
    other[4] = 0                                   # another segmenter disagrees on slice 4
    classifier = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.05])
    stats = slice_stats({"self_trained": main, "initial": other}, "self_trained",
                        ["initial", "under"], classifier, np.full(7, 0.3))
    scores = candidate_scores(stats)
    assert set(scores) == set(CANDIDATES)
    for values in scores.values():
        assert np.all((values >= 0) & (values <= 1))
    assert np.argmax(scores["disagreement"]) == 4
    conflict = scores["classifier_conflict"]
    assert conflict[0] == pytest.approx(0.9)       # tumour called, nothing segmented
    assert conflict[5] == pytest.approx(0.9)       # segmented, classifier says healthy
    assert conflict[6] == pytest.approx(0.05)      # empty and healthy: nothing to see
    assert np.argmax(scores["continuity"][1:6]) + 1 == 3     # the area dip
    assert np.argmax(scores["small_area"]) == 3
    assert scores["small_area"][0] == 0            # an empty slice is not "small"


def test_difference_score_low_d_is_high_priority_and_empty_is_zero() -> None:
    stats = SliceStats(np.array([0.0, 50.0, 50.0]), np.ones((0, 3)), np.zeros(3),
                       np.array([np.nan, 0.05, 0.45]))
    d = candidate_scores(stats)["difference"]
    assert d[0] == 0 and d[1] > d[2]


def test_without_a_budget_the_priority_is_the_mean_of_the_named_scores() -> None:
    stats = slice_stats({"m": _volume([0, 50, 5])}, "m", [], np.array([0.8, 0.9, 0.2]),
                        np.full(3, np.nan))
    scores = candidate_scores(stats)
    priority = review_priority(stats, ("classifier_conflict", "small_area"), None)
    assert np.allclose(priority, (scores["classifier_conflict"] + scores["small_area"]) / 2)
    assert np.allclose(priority, likely_wrong(stats, ("classifier_conflict", "small_area")))
    assert flags(priority, 0.5).tolist() == (priority >= 0.5).tolist()
    with pytest.raises(ValueError, match="choose from"):
        review_priority(stats, ("no_such_score",), None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        review_priority(stats, ("classifier_conflict",), 1.5)


def test_the_budget_goes_to_the_most_wrong_voxels_and_the_rest_follow_by_likelihood() -> None:
    # ten segmented slices: slice 1 small and surely wrong (classifier says healthy), slices
    # 5-6 large and a little suspicious — a correction there changes more voxels
    main = _volume([0, 10, 100, 100, 100, 400, 400, 100, 100, 100, 100, 0])
    classifier = np.array([0.1, 0.05, 0.9, 0.9, 0.9, 0.6, 0.7, 0.9, 0.9, 0.9, 0.9, 0.1])
    stats = slice_stats({"m": main}, "m", [], classifier, np.full(12, np.nan))
    names = ("classifier_conflict",)
    wrong = likely_wrong(stats, names)
    priority = review_priority(stats, names, 0.2)          # ⌈0.2 × 10⌉ = 2 slices flagged
    assert np.flatnonzero(flags(priority, TIER_BOUNDARY)).tolist() == [5, 6]
    assert priority[5] > priority[6]                       # 0.4 × 1.0 before 0.3 × 1.0
    rest = np.setdiff1d(np.arange(12), [5, 6])
    assert np.all(priority[rest] < TIER_BOUNDARY)
    # below the budget, the order is how likely wrong: the small wrong slice leads
    assert np.argsort(-priority[rest], kind="stable").tolist() == \
        np.argsort(-wrong[rest], kind="stable").tolist()
    assert rest[np.argmax(priority[rest])] == 1
    assert np.all((priority >= 0) & (priority <= 1))
    # no budget, no flag; nothing segmented, nothing flagged
    assert not flags(review_priority(stats, names, 0.0), TIER_BOUNDARY).any()
    empty = slice_stats({"m": _volume([0] * 4)}, "m", [], np.full(4, 0.9), np.full(4, np.nan))
    assert not flags(review_priority(empty, names, 0.1), TIER_BOUNDARY).any()


def test_tumour_called_but_nothing_segmented_inside_the_tumour_is_looked_at_first() -> None:
    # slice 3 lies inside the segmented tumour, the classifier calls it tumour, and the
    # segmentation left it empty: under the default priority it must be the top slice
    from WeakSegLib.config import get_profile

    cfg = get_profile("fast").inference
    main = _volume([0, 0, 120, 0, 120, 100, 0, 0])
    classifier = np.array([0.02, 0.05, 0.95, 0.97, 0.95, 0.9, 0.05, 0.02])
    stats = slice_stats({"m": main}, "m", [], classifier, np.full(8, np.nan))
    priority = review_priority(stats, cfg.review_scores, cfg.review_flag_fraction)
    assert int(np.argmax(priority)) == 3
    assert flags(priority, cfg.review_threshold)[3]


def test_uncertain_voxels_count_what_the_network_itself_is_unsure_of() -> None:
    p = np.zeros((3, 10, 10), np.float32)
    p[0, :5] = 0.98                      # a sure tumour: little expected error
    p[1, :5] = 0.98
    p[1, 5:] = 0.4                       # ... and a wide unsure rim beside it
    p[2, :2] = 0.6
    u = uncertain_voxels(p)
    assert u == pytest.approx([50 * 0.02, 50 * 0.02 + 50 * 0.4, 20 * 0.4], rel=1e-5)
    stats = slice_stats({"m": (p > 0.5).astype(np.uint8)}, "m", [], np.full(3, 0.9),
                        np.full(3, np.nan), u)
    scores = candidate_scores(stats)["uncertain_voxels"]
    assert int(np.argmax(scores)) == 1 and scores.max() == pytest.approx(1.0)
    # without probabilities the score is silent, not an error
    silent = slice_stats({"m": (p > 0.5).astype(np.uint8)}, "m", [], np.full(3, 0.9),
                         np.full(3, np.nan))
    assert not candidate_scores(silent)["uncertain_voxels"].any()


def test_the_budget_counts_the_segmenters_unsure_voxels_beside_the_gross_errors() -> None:
    # ten segmented slices the classifier agrees with; slice 3 is the largest, slice 7 has a
    # wide unsure rim (an under-segmented edge): without the rim the budget goes to the larger
    # slice, with it to the rim
    areas = [0, 100, 100, 200, 100, 100, 100, 100, 100, 100, 100, 0]
    main = _volume(areas)
    classifier = np.array([0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1])
    rim = np.full(12, 2.0)
    rim[7] = 150.0
    names = ("classifier_conflict",)
    blind = slice_stats({"m": main}, "m", [], classifier, np.full(12, np.nan))
    seeing = slice_stats({"m": main}, "m", [], classifier, np.full(12, np.nan), rim)
    assert np.flatnonzero(flags(review_priority(blind, names, 0.1), TIER_BOUNDARY)).tolist() == [3]
    flagged = np.flatnonzero(flags(review_priority(seeing, names, 0.1), TIER_BOUNDARY))
    assert flagged[0] == 7 and len(flagged) == 1                    # ⌈0.1 × 10⌉ = 1
    # below the budget the order is still how likely wrong, whatever the rim
    priority = review_priority(seeing, names, 0.1)
    rest = np.setdiff1d(np.arange(12), [7])
    assert np.allclose(priority[rest], likely_wrong(seeing, names)[rest] * TIER_BOUNDARY)

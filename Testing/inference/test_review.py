"""Mask-free review scores: each candidate reads what it claims to read."""
from __future__ import annotations

import numpy as np
import pytest

from WeakSegLib.inference.review import (CANDIDATES, SliceStats, candidate_scores, flags,
                                         review_priority, slice_stats)


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


def test_priority_is_the_mean_of_the_named_scores_and_flags_follow_the_threshold() -> None:
    stats = slice_stats({"m": _volume([0, 50, 5])}, "m", [], np.array([0.8, 0.9, 0.2]),
                        np.full(3, np.nan))
    scores = candidate_scores(stats)
    priority = review_priority(stats, ("classifier_conflict", "small_area"))
    assert np.allclose(priority, (scores["classifier_conflict"] + scores["small_area"]) / 2)
    assert flags(priority, 0.5).tolist() == (priority >= 0.5).tolist()
    with pytest.raises(ValueError, match="choose from"):
        review_priority(stats, ("no_such_score",))


def test_extent_weight_puts_the_larger_of_two_equally_suspicious_slices_first() -> None:
    # slices 1 and 5 are both segmented where the classifier says healthy (conflict 0.9);
    # slice 5 is ten times larger, so correcting it changes more of the volume Dice
    main = _volume([0, 10, 10, 0, 0, 100, 100, 0])
    classifier = np.array([0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1])
    stats = slice_stats({"m": main}, "m", [], classifier, np.full(8, np.nan))
    plain = review_priority(stats, ("classifier_conflict",))
    weighted = review_priority(stats, ("classifier_conflict",), extent_offset=0.5)
    assert plain[1] == pytest.approx(plain[5])
    assert weighted[5] > weighted[1]
    assert np.all((weighted >= 0) & (weighted <= plain + 1e-12))
    with pytest.raises(ValueError, match="≥ 0"):
        review_priority(stats, ("classifier_conflict",), extent_offset=-1)


def test_tumour_called_but_nothing_segmented_inside_the_tumour_is_looked_at_first() -> None:
    # slice 3 lies inside the segmented tumour, the classifier calls it tumour, and the
    # segmentation left it empty: under the default priority it must be the top slice
    from WeakSegLib.config import get_profile

    cfg = get_profile("fast").inference
    main = _volume([0, 0, 120, 0, 120, 100, 0, 0])
    classifier = np.array([0.02, 0.05, 0.95, 0.97, 0.95, 0.9, 0.05, 0.02])
    stats = slice_stats({"m": main}, "m", [], classifier, np.full(8, np.nan))
    priority = review_priority(stats, cfg.review_scores, cfg.review_extent_offset)
    assert int(np.argmax(priority)) == 3
    assert flags(priority, cfg.review_threshold)[3]

"""Review-quality measures: AUROC for bad slices and review curves from per-slice counts."""
from __future__ import annotations

import numpy as np
import pytest

from WeakSegLib.evaluation.metrics import per_slice_dice, volume_dice
from WeakSegLib.evaluation.review import CaseSliceCounts, auroc_for_bad, review_curves


def _case() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((6, 10, 10), bool)
    pred = np.zeros_like(truth)
    truth[1:5, 2:8, 2:8] = True
    pred[1:5, 2:8, 2:8] = True
    pred[2] = False                      # slice 2 missed entirely (bad)
    pred[4, 2:8, 2:4] = False            # slice 4 partly right (good)
    pred[5, 0:2, 0:2] = True             # slice 5 a small false positive (bad)
    return pred, truth


def test_counts_reproduce_the_metrics_module() -> None:
    pred, truth = _case()
    counts = CaseSliceCounts.from_labels(pred, truth, np.ones(6, bool))
    assert np.allclose(counts.slice_dice(), per_slice_dice(pred, truth))
    assert counts.corrected_volume_dice(np.arange(6), 0) == pytest.approx(volume_dice(pred, truth))
    assert counts.corrected_volume_dice(np.arange(6), 6) == pytest.approx(1.0)


def test_a_score_that_ranks_the_bad_slices_first_matches_the_oracle() -> None:
    pred, truth = _case()
    counts = [CaseSliceCounts.from_labels(pred, truth, np.ones(6, bool))]
    perfect = np.array([0, 0, 1.0, 0, 0, 0.9])
    backwards = 1 - perfect
    assert auroc_for_bad(counts, [perfect]) == pytest.approx(1.0)
    assert auroc_for_bad(counts, [backwards]) == pytest.approx(0.0)
    result = review_curves(counts, {"perfect": [perfect], "backwards": [backwards]},
                           percents=(0, 25, 50))
    assert result["curves"]["perfect"][0] == pytest.approx(volume_dice(pred, truth))
    # one slice corrected: both take the missed slice; with two the oracle takes the partial
    # slice 4 (12 wrong voxels) before the 4-voxel false positive
    assert result["curves"]["perfect"][:2] == pytest.approx(result["curves"]["oracle"][:2])
    assert result["curves"]["oracle"][2] > result["curves"]["perfect"][2]
    assert result["gain"]["backwards"][-1] < result["gain"]["perfect"][-1]
    assert result["n_bad_slices"] == 2 and result["n_judged_slices"] == 5
    assert result["area"]["oracle"] >= result["area"]["random"]
    # the oracle order by wrong voxels puts the partly right slice 4 (12 wrong, good) above
    # the small false positive (4 wrong, bad): 5 of 6 bad-good pairs in order
    assert result["auroc"]["oracle"] == pytest.approx(5 / 6)

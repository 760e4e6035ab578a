"""Metrics against hand-computed values and independent library implementations."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from WeakSegLib.config import HD95_ONE_EMPTY_MM
from WeakSegLib.evaluation.metrics import (classifier_metrics, hd95_mm, per_slice_dice, seed_overlap,
                                segmentation_metrics, slice_dice, summarise, tumour_slice_dice,
                                volume_dice)


def test_slice_dice_epsilon_matches_seed_fig14() -> None:
    truth = np.zeros((1, 10, 10), bool)
    truth[0, 0, :7] = True                                   # 7-pixel truth
    assert per_slice_dice(np.zeros_like(truth), truth)[0] == pytest.approx(1 / 8)  # 0.125


def test_slice_dice_hand_example() -> None:
    pred = np.zeros((3, 4, 4), bool)
    truth = np.zeros((3, 4, 4), bool)
    pred[0, 0, :2] = True
    truth[0, 0, 1:3] = True                                  # |A∩B| = 1, |A| = |B| = 2 → 3/5
    truth[1, 0, 0] = True                                    # empty pred vs 1 px → 1/2
    # slice 2 empty/empty → 1
    assert per_slice_dice(pred, truth).tolist() == pytest.approx([3 / 5, 1 / 2, 1.0])
    assert slice_dice(pred, truth) == pytest.approx((0.6 + 0.5 + 1) / 3)
    assert tumour_slice_dice(pred, truth) == pytest.approx((0.6 + 0.5) / 2)
    brain = np.zeros_like(pred)
    brain[:2] = True                                         # slice 2 has no brain: not counted
    assert slice_dice(pred, truth, brain) == pytest.approx(0.55)


def test_volume_dice_matches_simpleitk() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((10, 12, 14)) > 0.6
    b = rng.random((10, 12, 14)) > 0.5
    measures = sitk.LabelOverlapMeasuresImageFilter()
    measures.Execute(sitk.GetImageFromArray(a.astype(np.uint8)),
                     sitk.GetImageFromArray(b.astype(np.uint8)))
    assert volume_dice(a, b) == pytest.approx(measures.GetDiceCoefficient())
    assert volume_dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert volume_dice(a, np.zeros_like(a)) == 0.0
    assert np.isnan(tumour_slice_dice(a, np.zeros_like(a)))


def test_hd95_known_shift_and_anisotropic_spacing() -> None:
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    b = np.roll(a, 2, axis=0)                                # shifted 2 voxels along z
    assert hd95_mm(a, b, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hd95_mm(a, b, (3.0, 1.0, 1.0)) == pytest.approx(6.0)   # z spacing honoured
    assert hd95_mm(a, b, (1.0, 0.5, 0.5)) == pytest.approx(2.0)   # in-plane spacing irrelevant
    assert hd95_mm(a, a, (1.0, 1.0, 1.0)) == 0.0


def test_hd95_empty_conventions() -> None:
    a = np.zeros((5, 5, 5), bool)
    b = a.copy()
    b[2, 2, 2] = True
    assert hd95_mm(a, a, (1, 1, 1)) == 0.0
    assert hd95_mm(a, b, (1, 1, 1)) == HD95_ONE_EMPTY_MM == 373.13
    assert hd95_mm(b, a, (1, 1, 1)) == HD95_ONE_EMPTY_MM


def test_segmentation_metrics_keys() -> None:
    a = np.zeros((4, 8, 8), bool)
    a[1:3, 2:5, 2:5] = True
    assert segmentation_metrics(a, a, (1, 1, 1)) == {
        "slice_dice": 1.0, "tumour_slice_dice": 1.0, "volume_dice": 1.0, "hd95_mm": 0.0}


def test_classifier_metrics_hand_example() -> None:
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.6, 0.3, 0.4, 0.1])
    out = classifier_metrics(labels, scores)
    assert out["sensitivity"] == pytest.approx(2 / 3)
    assert out["specificity"] == pytest.approx(1.0)
    assert out["auc"] == pytest.approx(5 / 6)                 # 5 of 6 pos/neg pairs ordered
    assert np.isnan(classifier_metrics(np.ones(3), np.ones(3))["auc"])


def test_seed_overlap_pooled() -> None:
    truth = np.zeros((2, 4, 4), bool)
    truth[:, :2, :2] = True                                   # 8 tumour voxels
    positive = np.zeros_like(truth)
    positive[0, :2, :3] = True                                # 6 voxels, 4 in tumour
    negative = ~truth
    negative[1, 0, 0] = True                                  # one tumour voxel wrongly negative
    out = seed_overlap(positive, negative, truth)
    assert out["positive"] == pytest.approx(4 / 6)
    assert out["negative"] == pytest.approx(24 / 25)


def test_summarise_ignores_nan() -> None:
    out = summarise({"a": {"x": 1.0}, "b": {"x": float("nan")}, "c": {"x": 3.0}})
    assert out["n_cases"] == 3 and out["x"] == 2.0 and out["x_sd"] == 1.0

"""Preprocessing: the way back to the original grid is exact; seed 000 §3.1.1 rules hold."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.config import DataConfig, get_profile
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.preprocess import (brain_box, crop_or_pad, normalise_intensities,
                                        preprocess_case, training_slices)
from WeakSegLib.data.reader import read_case
from WeakSegLib.evaluation.metrics import volume_dice


@pytest.fixture(scope="module")
def real_case(brats_sample: Path):
    return read_case(discover_cohort(brats_sample / "Brats18_CBICA_AAB_1").cases[0])


def test_mask_round_trip_is_exact_at_full_resolution(real_case) -> None:
    prep = preprocess_case(real_case, get_profile("paper").data)
    assert prep.image.shape[1:2] == (2,)
    assert prep.mask.shape == (prep.n_slices, *prep.image.shape[2:])
    back = prep.mapping.to_original(prep.mask)
    assert back.shape == real_case.mask.shape
    assert np.array_equal(back, real_case.mask)


def test_round_trip_of_arbitrary_slice_predictions(real_case) -> None:
    """Any per-slice prediction lands where it came from: mark slice i with value i+1."""
    prep = preprocess_case(real_case, get_profile("paper").data)
    marks = np.zeros((prep.n_slices, *prep.image.shape[2:]), np.int32)
    marks[:, 5, 7] = np.arange(1, prep.n_slices + 1)
    back = prep.mapping.to_original(marks)
    box = prep.mapping.box
    for i in (0, prep.n_slices // 2, prep.n_slices - 1):
        z = prep.mapping.original_slice(i)
        assert back[z, box[1].start + 5, box[2].start + 7] == i + 1
    assert (back != 0).sum() == prep.n_slices


def test_half_resolution_round_trip_keeps_grid_and_shape(real_case) -> None:
    prep = preprocess_case(real_case, get_profile("fast").data)
    cropped = prep.mapping.cropped_shape
    assert prep.image.shape[2:] == (round(cropped[1] / 2), round(cropped[2] / 2))
    back = prep.mapping.to_original(prep.mask)
    assert back.shape == real_case.mask.shape
    assert volume_dice(back, real_case.mask) > 0.95      # resampling ½ and back is lossy, a little
    probabilities = prep.mapping.to_original(prep.mask.astype(np.float32), kind="binary")
    assert volume_dice(probabilities, real_case.mask) > 0.95


def test_crop_is_the_brain_bounding_box(real_case) -> None:
    prep = preprocess_case(real_case, get_profile("paper").data)
    brain = real_case.brain
    outside = brain.copy()
    outside[prep.mapping.box] = False
    assert not outside.any()
    for axis, s in enumerate(prep.mapping.box):
        other = tuple(a for a in range(3) if a != axis)
        profile = brain.any(axis=other)
        assert profile[s.start] and profile[s.stop - 1]


def test_intensities_are_clipped_and_scaled(real_case) -> None:
    prep = preprocess_case(real_case, get_profile("paper").data)
    assert prep.image.min() == 0.0 and prep.image.max() == 1.0
    flair = prep.image[:, 0]
    # after clipping at the 99th percentile at least 1 % of the brain sits at the maximum
    brain = flair > 0
    assert (flair[brain] == 1.0).mean() >= 0.009


def test_normalise_intensities_hand_example() -> None:
    volume = np.array([0, 0, 10, 20, 30, 1000], np.float32)
    out = normalise_intensities(volume, (0.0, 75.0))
    # non-zero values clipped to [10, p75 = 30+…]; zeros stay the minimum
    assert out[0] == 0 and out[1] == 0 and out.max() == 1.0
    assert out[-1] == 1.0 and out[2] < out[3] < out[4]


def test_training_slices_trim_and_zero_rule(real_case) -> None:
    cfg = get_profile("paper").data
    prep = preprocess_case(real_case, cfg)
    kept = training_slices(prep, cfg)
    trim = round(cfg.trim_fraction * prep.n_slices)
    assert kept.min() >= trim and kept.max() < prep.n_slices - trim
    assert np.all(prep.nonzero_fraction[kept] >= 1 - cfg.max_zero_fraction)
    no_trim = training_slices(prep, DataConfig(trim_fraction=0.0, max_zero_fraction=1.0))
    assert len(no_trim) == prep.n_slices > len(kept)


def test_brats_keeps_the_slices_the_old_30_slice_rule_kept(real_case) -> None:
    """The fraction of the brain's extent keeps on BraTS what dropping 30 of 155 slices kept."""
    cfg = get_profile("paper").data
    prep = preprocess_case(real_case, cfg)
    original = np.arange(prep.n_slices) + prep.mapping.first_slice
    old = np.flatnonzero((original >= 30) & (original < 155 - 30)
                         & ((1.0 - prep.nonzero_fraction) <= cfg.max_zero_fraction))
    assert np.array_equal(training_slices(prep, cfg), old)


def test_trimming_follows_the_brain_extent_not_a_slice_count() -> None:
    """A 20-slice head keeps its middle slices (30 slices at each end left nothing)."""
    from WeakSegLib.data.preprocess import GridMapping, PreprocessedCase

    image = np.full((18, 1, 8, 8), 0.5, np.float32)
    prep = PreprocessedCase("thick", ["flair"], image, GridMapping((20, 8, 8), (
        slice(1, 19), slice(0, 8), slice(0, 8)), (8, 8)))
    kept = training_slices(prep, DataConfig())
    assert list(kept) == list(range(2, 16))


def test_crop_or_pad_records_offsets() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 50, 90)).astype(np.float32)
    out, crop, pad = crop_or_pad(image, 64, rng)
    assert out.shape == (2, 64, 64)
    assert crop[0] == 0 and pad[1] == 0
    assert np.array_equal(out[:, pad[0]:pad[0] + 50, :], image[:, :, crop[1]:crop[1] + 64])


def test_brain_box_of_empty_volume_is_everything() -> None:
    assert brain_box(np.zeros((3, 4, 5), bool)) == (slice(0, 3), slice(0, 4), slice(0, 5))


def test_pixel_area_ratio_is_original_pixels_per_preprocessed_pixel() -> None:
    """A voxel count on the preprocessed grid times this ratio is the same area on the original
    grid (the review's unsure-voxel counts are compared with original-grid slice areas)."""
    from WeakSegLib.data.preprocess import GridMapping

    mapping = GridMapping((10, 100, 90), (slice(0, 10), slice(10, 90), slice(5, 85)), (40, 40))
    assert mapping.pixel_area_ratio == 4.0
    square = np.zeros((10, 40, 40), np.uint8)
    square[3, 10:30, 10:30] = 1                                  # 400 preprocessed pixels
    restored = mapping.to_original(square, kind="label")
    assert restored[3].sum() == 400 * mapping.pixel_area_ratio

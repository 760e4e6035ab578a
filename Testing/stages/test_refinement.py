"""Refinement (Pipeline row 6) with a toy classifier that sees tumour where the image is bright."""
from __future__ import annotations

import numpy as np

from WeakSegLib.config import RefinementConfig
from WeakSegLib.stages.refinement import hidden_copies, refine_seeds, slice_components


def _toy_classifier(images: np.ndarray) -> np.ndarray:
    """'Tumour' (score 0.9) while any pixel of channel 0 is above 0.8, else 0.1."""
    return np.where(images[:, 0].reshape(len(images), -1).max(axis=1) > 0.8, 0.9, 0.1)


def _slice() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((1, 2, 32, 32), 0.3, np.float32)
    image[0, :, 8:14, 8:14] = 1.0                   # the tumour
    truth = np.zeros((1, 32, 32), bool)
    truth[0, 8:14, 8:14] = True
    probability = np.zeros((1, 32, 32), np.float32)
    probability[0, 9:13, 9:13] = 0.9                # a component inside the tumour (dilation covers it)
    probability[0, 22:27, 22:27] = 0.8              # a component on healthy tissue
    return image, truth, probability


def test_component_covering_the_tumour_is_kept_and_the_other_dropped() -> None:
    image, truth, probability = _slice()
    negative = np.ones((1, 32, 32), bool)
    negative[0, 5:30, 5:30] = False
    refined = refine_seeds(image, np.array([1]), probability, negative, _toy_classifier,
                           RefinementConfig())
    assert refined["n_components"] == 2 and refined["n_accepted"] == 1
    positive = refined["positive"][0]
    assert positive[10, 10] and not positive[24, 24]
    assert positive.sum() == 16                     # the component itself, not its dilation
    assert refined["reliable"].tolist() == [True]
    assert not (refined["negative"] & refined["positive"]).any()


def test_a_slice_whose_components_do_not_hide_the_tumour_is_not_reliable() -> None:
    image, _, probability = _slice()
    probability[0, 9:13, 9:13] = 0.0                # only the healthy component is left
    refined = refine_seeds(image, np.array([1]), probability, np.zeros((1, 32, 32), bool),
                           _toy_classifier, RefinementConfig())
    assert refined["n_accepted"] == 0 and not refined["reliable"][0]


def test_healthy_slices_are_not_refined() -> None:
    image, _, probability = _slice()
    refined = refine_seeds(image, np.array([0]), probability, np.ones((1, 32, 32), bool),
                           _toy_classifier, RefinementConfig())
    assert refined["n_components"] == 0 and not refined["positive"].any()


def test_hidden_copies_grow_with_the_radius() -> None:
    component = np.zeros((16, 16), bool)
    component[8, 8] = True
    copies = hidden_copies(np.ones((1, 16, 16), np.float32), component, (1, 2, 3), "zero")
    hidden = [(c[0] == 0).sum() for c in copies]
    assert hidden == sorted(hidden) and hidden[0] > 1


def test_specks_and_surplus_components_are_not_tried() -> None:
    probability = np.zeros((20, 20), np.float32)
    probability[0, 0] = 1.0                                       # a 1-pixel speck
    probability[5:10, 5:10] = 1.0                                 # 25 px
    probability[12:15, 12:15] = 1.0                               # 9 px
    sizes = [c.sum() for c in slice_components(probability, 0.5, min_px=5)]
    assert sizes == [25, 9]
    assert [c.sum() for c in slice_components(probability, 0.5, max_count=1)] == [25]


def test_subset_segmenters_get_as_many_updates_as_the_initial_one() -> None:
    from WeakSegLib.config import SegmenterConfig
    from WeakSegLib.stages.segmenter import equal_update_schedule

    cfg = SegmenterConfig(epochs=10, halve_every=8, batch_size=32)
    assert equal_update_schedule(cfg, 400, 400) == (10, 8)
    assert equal_update_schedule(cfg, 400, 100) == (40, 32)     # a quarter of the slices
    assert equal_update_schedule(cfg, 400, 1000) == (10, 8)     # never fewer epochs
    floor = SegmenterConfig(epochs=10, halve_every=8, batch_size=32, min_updates=140)
    assert equal_update_schedule(floor, 468, 468) == (10, 8)    # 14 batches × 10 = 140 already
    epochs, _ = equal_update_schedule(floor, 149, 149)          # 4 batches an epoch
    assert epochs == 35 and epochs * 4 >= 140

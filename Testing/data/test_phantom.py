"""Phantom cohort generator: BraTS-style files, geometry, determinism, tumour and background.

Small grids (shape_scale 0.3-0.5) keep the whole file to a few seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from WeakSegLib.data.phantom import (PHANTOM_MODALITIES, build_phantom_cohort, make_phantom_case,
                                     phantom_geometry, tumour_plan)

SCALE = 0.4
KEYS = PHANTOM_MODALITIES + ("seg",)


def _read(case_dir: Path, key: str) -> sitk.Image:
    return sitk.ReadImage(str(case_dir / f"{case_dir.name}_{key}.nii.gz"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[Path]:
    return build_phantom_cohort(tmp_path_factory.mktemp("a"), 2, 7, shape_scale=SCALE,
                                show_progress=False)


@pytest.fixture(scope="module")
def tumour_case() -> dict[str, np.ndarray]:
    return make_phantom_case(np.random.default_rng(11), shape_scale=0.5, tumour=True)


def test_brats_layout_and_shared_geometry(cohort):
    assert [d.name for d in cohort] == ["Phantom_000", "Phantom_001"]
    shape, spacing, origin = phantom_geometry(SCALE)
    for case_dir in cohort:
        assert sorted(p.name for p in case_dir.iterdir()) == sorted(
            f"{case_dir.name}_{k}.nii.gz" for k in KEYS)
        for key in KEYS:
            img = _read(case_dir, key)
            assert img.GetSize() == shape[::-1]
            assert img.GetSpacing() == pytest.approx(spacing)
            assert img.GetOrigin() == pytest.approx(origin)
            assert img.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
            expected = sitk.sitkUInt8 if key == "seg" else sitk.sitkFloat32
            assert img.GetPixelID() == expected
    assert spacing == pytest.approx((2.5, 2.5, 2.5), abs=0.05)


def test_full_size_geometry_is_brats():
    shape, spacing, origin = phantom_geometry(1.0)
    assert shape == (155, 240, 240)
    assert spacing == (1.0, 1.0, 1.0)
    assert origin == (0.0, -239.0, 0.0)
    with pytest.raises(ValueError):
        phantom_geometry(1.5)


def test_same_seed_same_files_other_seed_differs(cohort, tmp_path):
    again = build_phantom_cohort(tmp_path / "b", 2, 7, shape_scale=SCALE, show_progress=False)
    other = build_phantom_cohort(tmp_path / "c", 1, 8, shape_scale=SCALE, show_progress=False)
    for a, b in zip(cohort, again):
        for key in KEYS:
            assert (a / f"{a.name}_{key}.nii.gz").read_bytes() == \
                (b / f"{b.name}_{key}.nii.gz").read_bytes()
    first = sitk.GetArrayFromImage(_read(cohort[0], "flair"))
    assert not np.array_equal(first, sitk.GetArrayFromImage(_read(other[0], "flair")))


def test_tumour_is_segmented_and_bright_on_flair(tumour_case):
    seg, brain, flair = tumour_case["seg"], tumour_case["brain"] > 0, tumour_case["flair"]
    assert seg.dtype == np.uint8 and set(np.unique(seg)) == {0, 1}
    assert seg.sum() > 100
    assert not np.any(seg.astype(bool) & ~brain)
    assert flair[seg > 0].mean() > 1.3 * flair[brain].mean()
    # many slices hold no tumour
    assert (seg.any(axis=(1, 2)) == 0).sum() > seg.shape[0] // 3


def test_contrasts_follow_mr_physics(tumour_case):
    """T1: white > CSF; T2: CSF brighter than the brain's median; T1ce: the rim enhances."""
    brain = tumour_case["brain"] > 0
    t1, t2, t1ce = (tumour_case[k] for k in ("t1", "t2", "t1ce"))
    assert np.percentile(t2[brain], 99) > 2.0 * np.median(t2[brain])
    assert np.percentile(t1[brain], 2) < 0.6 * np.median(t1[brain])
    seg = tumour_case["seg"] > 0
    assert np.percentile(t1ce[seg] / np.median(t1ce[brain]), 99) > 1.2


def test_background_is_exactly_zero_outside_the_brain(tumour_case):
    brain = tumour_case["brain"] > 0
    assert 0.05 < brain.mean() < 0.5
    for key in PHANTOM_MODALITIES:
        img = tumour_case[key]
        assert img.dtype == np.float32
        assert np.all(img[~brain] == 0.0)
        assert (img[brain] > 0).mean() > 0.99
        assert 100.0 < np.median(img[brain]) < 1000.0   # scanner-like range


def test_axial_slices_run_inferior_to_superior(tumour_case):
    """The brain's widest axial slices are in the upper half of the brain's extent (cerebrum),
    and the brain is centred on the BraTS field of view."""
    brain = tumour_case["brain"] > 0
    area = brain.sum(axis=(1, 2))
    z = np.flatnonzero(area)
    assert np.argmax(area) > z[0] + 0.4 * (z[-1] - z[0])
    assert area[z[0]] < 0.3 * area.max()   # brainstem at the bottom, not a cut cerebrum
    y, x = np.nonzero(brain.any(axis=0))
    assert abs(y.mean() / brain.shape[1] - 0.53) < 0.08
    assert abs(x.mean() / brain.shape[2] - 0.49) < 0.08


def test_healthy_cases_have_empty_seg(tmp_path):
    healthy = make_phantom_case(np.random.default_rng(3), shape_scale=0.3, tumour=False)
    assert healthy["seg"].sum() == 0
    plan = tumour_plan(7, 0)
    assert plan.count(False) == 1 and tumour_plan(7, 0) == plan
    assert tumour_plan(1, 0) == [True]
    dirs = build_phantom_cohort(tmp_path, 4, 5, shape_scale=0.3, show_progress=False)
    empty = [sitk.GetArrayFromImage(_read(d, "seg")).sum() == 0 for d in dirs]
    assert empty == [not t for t in tumour_plan(4, 5)]
    assert empty.count(True) == 1


def test_refuses_to_overwrite_a_case_folder(tmp_path):
    (tmp_path / "Phantom_000").mkdir()            # empty folders are fine
    build_phantom_cohort(tmp_path, 1, 1, shape_scale=0.3, show_progress=False)
    with pytest.raises(ValueError, match="Phantom_000"):
        build_phantom_cohort(tmp_path, 1, 1, shape_scale=0.3, show_progress=False)

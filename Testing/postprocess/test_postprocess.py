"""Post-processing library on synthetic volumes with known answers (arrays are (z, y, x))."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

from WeakSegLib.postprocess import (
    OPERATIONS, apply_ops, consistent_tumour_mask, end_landmarks, fill_holes_triplanar,
    centre_line, keep_inside, keep_largest_component, open_1d, parse_ops, reconstruct_tube,
    remove_small_components, split_left_right,
)


def n_components(mask: np.ndarray) -> int:
    return int(label(mask, connectivity=3).max())


# ---------------------------------------------------------------- tube reconstruction
def _cylinder(shape, centre_zx, radius, y0, y1):
    z, y, x = np.indices(shape)
    return ((z - centre_zx[0]) ** 2 + (x - centre_zx[1]) ** 2 <= radius ** 2) & (y >= y0) & (y <= y1)


@pytest.fixture
def broken_tube():
    shape = (31, 80, 41)
    truth = _cylinder(shape, (15, 15), 3, 10, 69)
    prediction = truth.copy()
    prediction[:, 30:35] = False  # gaps the network missed
    prediction[:, 50:53] = False
    # a look-alike blob hanging on the nerve through a thin bridge, reaching far in x
    prediction[13:18, 38:43, 28:36] = True
    prediction[15, 40, 15:28] = True
    # a detached false positive further away
    prediction[3:7, 20:25, 3:7] = True
    intensity = np.full(shape, 100.0)  # bright fat around the nerve
    intensity[truth] = 40.0
    intensity[13:18, 38:43, 28:36] = 40.0  # the blob looks like nerve: only geometry removes it
    intensity[3:7, 20:25, 3:7] = 40.0
    return truth, prediction, intensity


def test_tube_rebuilt_as_one_component_between_landmarks(broken_tube):
    truth, prediction, intensity = broken_tube
    assert n_components(prediction) == 4  # broken in three + detached blob
    first, second = end_landmarks(prediction)
    assert first[1] < 12 and second[1] > 67
    tube = reconstruct_tube(prediction, intensity)
    assert n_components(tube) == 1
    for landmark in (first, second):
        assert tube[tuple(np.rint(landmark).astype(int))]
    assert tube[:, 30:35].any(axis=(0, 2)).all() and tube[:, 50:53].any(axis=(0, 2)).all()
    assert not tube[:, :, 24:].any()      # the far part of the attached blob is gone
    assert not tube[3:7, 20:25, 3:7].any()  # the detached blob is gone
    dice = 2 * (tube & truth).sum() / (tube.sum() + truth.sum())
    assert dice > 0.8


def test_tube_direction_and_intensity_refinement(broken_tube):
    truth, prediction, intensity = broken_tube
    forward = reconstruct_tube(prediction, intensity)
    first, second = end_landmarks(prediction)
    backward = reconstruct_tube(prediction, intensity, start=second, end=first)
    assert n_components(backward) == 1 and backward[:, 12:68].any(axis=(0, 2)).all()
    assert (forward ^ backward).sum() < 0.2 * forward.sum()
    # a bright (fat-like) false positive next to the nerve is refined away before painting R2
    bright = prediction.copy()
    bright[14:17, 15:20, 16:22] = True  # solidly attached (a 1-voxel neck would be opened away)
    intensity2 = intensity.copy()
    intensity2[14:17, 15:20, 19:22] = 100.0
    assert reconstruct_tube(bright, None)[14:17, 15:20, 19:22].all()  # within R2, kept
    assert not reconstruct_tube(bright, intensity2)[14:17, 15:20, 19:22].any()


def test_centre_line_follows_label_with_unit_y_steps():
    shape = (21, 40, 41)
    label_mask = np.zeros(shape, bool)
    for y in range(5, 36):  # a diagonal tube drifting in x
        label_mask[8:13, y, 10 + (y - 5) // 2: 15 + (y - 5) // 2] = True
    line = centre_line(label_mask, (10, 5, 12), (10, 35, 27))
    steps = np.diff(line, axis=0)
    assert (steps[:, 1] == 1).all() and (np.abs(steps[:, [0, 2]]) <= 1).all()
    assert label_mask[tuple(line.T)].all()
    assert tuple(line[-1]) == (10, 35, 27)
    # an end too far sideways to reach: the path stops at the nearest reachable voxel
    short = centre_line(np.zeros(shape, bool), (10, 5, 5), (10, 10, 30))
    assert tuple(short[-1]) == (10, 10, 10)


def test_tube_with_anisotropic_spacing(broken_tube):
    _, prediction, intensity = broken_tube
    iso = reconstruct_tube(prediction, intensity)
    thick = reconstruct_tube(prediction, intensity, spacing=(2.0, 1.0, 1.0))
    assert n_components(thick) == 1
    # in a gap only the R1 = 2.5 sphere is painted: 2.5 voxels in y/x but 1 voxel in z at 2 mm
    gap_iso, gap_thick = np.argwhere(iso[:, 31:34]), np.argwhere(thick[:, 31:34])
    assert np.ptp(gap_iso[:, 0]) == 4 and np.ptp(gap_thick[:, 0]) == 2
    assert np.ptp(gap_iso[:, 2]) == np.ptp(gap_thick[:, 2]) == 4


# ---------------------------------------------------------------- holes
def test_fill_holes_closes_cavity_keeps_open_groove():
    mask = np.zeros((16, 16, 16), bool)
    mask[2:13, 2:13, 2:13] = True
    mask[4:7, 5:8, 5:8] = False          # enclosed cavity
    mask[9:13, 6:9, 2:13] = False        # groove open at the top, through the whole x extent
    filled = fill_holes_triplanar(mask)
    assert filled[4:7, 5:8, 5:8].all()
    assert not filled[9:13, 6:9, 2:13].any()
    assert (filled & ~mask).sum() == 27


def test_fill_holes_on_the_mask_box_equals_filling_the_whole_volume():
    """The fill runs inside the mask's bounding box (issue 17: speed); it must give exactly
    what the three passes give on the whole volume, also for masks touching the border."""
    from scipy.ndimage import binary_fill_holes, gaussian_filter

    from WeakSegLib.postprocess.holes import _plane_structure

    rng = np.random.default_rng(3)
    for trial in range(6):
        noise = gaussian_filter(rng.random((24, 40, 36)), 1.5)
        mask = noise > np.quantile(noise, 0.7 + 0.04 * trial)
        if trial % 2:
            mask[:, :, -1] |= mask[:, :, -2]          # touch the volume border
        expected = mask.copy()
        for axis in (0, 1, 2):
            expected = binary_fill_holes(expected, structure=_plane_structure(axis))
        assert (expected != mask).any() or trial > 2  # the random masks do have holes
        np.testing.assert_array_equal(fill_holes_triplanar(mask), expected)
    assert not fill_holes_triplanar(np.zeros((4, 5, 6), bool)).any()


def test_fill_holes_closes_cavity_leaking_through_a_thin_3d_channel():
    mask = np.zeros((16, 16, 16), bool)
    mask[2:13, 2:13, 2:13] = True
    mask[5:9, 5:9, 5:9] = False
    mask[6, 6, 8:13] = False  # a 1-voxel channel to the outside along x
    filled = fill_holes_triplanar(mask)
    assert filled[5:9, 5:9, 5:9].all()


# ---------------------------------------------------------------- volume filter
def test_min_volume_honours_anisotropic_spacing():
    mask = np.zeros((10, 20, 20), bool)
    mask[2:4, 2:7, 2:7] = True     # 50 voxels
    mask[5:9, 10:18, 10:18] = True  # 256 voxels
    iso = remove_small_components(mask, (1.0, 1.0, 1.0), 100.0)
    assert iso.sum() == 256
    thick = remove_small_components(mask, (3.0, 1.0, 1.0), 100.0)  # 50 voxels = 150 mm³
    assert thick.sum() == 306
    fine = remove_small_components(mask, (1.0, 0.5, 0.5), 100.0)  # 256 voxels = 64 mm³
    assert not fine.any()
    with pytest.raises(ValueError):
        remove_small_components(mask, (1.0, 1.0), 10.0)


# ---------------------------------------------------------------- laterality
def test_split_left_right_uses_brain_centre_not_array_centre():
    shape = (20, 20, 100)
    brain = np.zeros(shape, bool)
    brain[2:18, 2:18, 50:91] = True  # head shifted: brain x in [50, 90], centre 70
    eyes = np.zeros(shape, bool)
    eyes[8:11, 3:6, 60:64] = True    # x≈61.5: right of the array centre, low side of the brain
    eyes[8:11, 3:6, 76:80] = True    # x≈77.5
    left, right = split_left_right(eyes, brain)  # LPS identity: high x = patient left
    assert left[8:11, 3:6, 76:80].all() and not left[:, :, :70].any()
    assert right[8:11, 3:6, 60:64].all() and not right[:, :, 70:].any()
    left_ras, right_ras = split_left_right(eyes, brain, left_at_high_x=False)
    assert np.array_equal(left_ras, right) and np.array_equal(right_ras, left)


def test_keep_inside():
    container = np.zeros((10, 10, 10), bool)
    container[2:8, 2:8, 2:8] = True
    structure = np.zeros_like(container)
    structure[6:9, 6:9, 6:9] = True   # overlaps
    structure[0, 0, 0] = True         # outside
    kept = keep_inside(structure, container)
    assert kept.sum() == 27 and not kept[0, 0, 0]
    assert (keep_inside(structure, container, mode="clip") == (structure & container)).all()


# ---------------------------------------------------------------- 1D opening
def test_open_1d_removes_thin_bridge_and_spur():
    mask = np.zeros((12, 12, 30), bool)
    mask[3:9, 3:9, 2:10] = True      # large cube
    mask[4:7, 4:7, 20:23] = True     # small cube
    mask[6, 6, 10:20] = True         # 1-voxel bridge along x
    mask[6, 9:12, 5] = True          # 1-voxel spur along y
    assert n_components(mask) == 1
    opened = open_1d(mask, 2)
    assert (opened == keep_largest_component(opened)).all()
    assert opened[3:9, 3:9, 2:10].all()
    assert opened.sum() == 6 * 6 * 8


# ---------------------------------------------------------------- tumour consistency
def test_consistent_tumour_mask():
    mask = np.zeros((12, 20, 20), bool)
    mask[2:6, 4:10, 4:10] = True     # tumour over 4 slices, with a hole
    mask[3, 6:8, 6:8] = False
    mask[8, 15:18, 15:18] = True     # one-slice speck
    mask[8:11, 1:3, 14:17] = True    # persists, but on slices the classifier calls healthy
    scores = np.zeros(12)
    scores[1:7] = 0.9
    out = consistent_tumour_mask(mask, slice_scores=scores)
    expected = np.zeros_like(mask)
    expected[2:6, 4:10, 4:10] = True
    assert (out == expected).all()
    no_scores = consistent_tumour_mask(mask, fill_holes=False)
    assert no_scores[8:11, 1:3, 14:17].all() and not no_scores[8, 15:18, 15:18].any()
    assert not no_scores[3, 6:8, 6:8].any()
    with pytest.raises(ValueError):
        consistent_tumour_mask(mask, slice_scores=np.ones(5))


# ---------------------------------------------------------------- ops registry
def test_parse_and_apply_ops():
    assert parse_ops("largest,fill_holes,min_volume:100") == [
        ("largest", ()), ("fill_holes", ()), ("min_volume", (100.0,))]
    assert parse_ops("open") == [("open", ())] and parse_ops("open:3") == [("open", (3,))]
    mask = np.zeros((10, 20, 20), bool)
    mask[2:4, 2:7, 2:7] = True
    mask[5:9, 10:18, 10:18] = True
    out = apply_ops(mask, "min_volume:100", spacing=(3.0, 1.0, 1.0))
    assert out.sum() == 306
    assert apply_ops(mask, ["largest"]).sum() == 256
    assert set(OPERATIONS) >= {"largest", "fill_holes", "min_volume", "open", "tube", "tumour"}


@pytest.mark.parametrize("spec, message", [
    ("largest,bogus", "unknown operation 'bogus'"),
    ("min_volume", "takes 1 parameter"),
    ("min_volume:abc", "not a valid float"),
    ("min_volume:-5", "must not be negative"),
    ("largest:3", "takes 0 parameter"),
    ("open:2.5", "not a valid int"),
    ("open:2:3", "takes 0 to 1 parameter"),
    ("", "no operations"),
    ("largest,,fill_holes", "empty operation name"),
])
def test_parse_ops_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_ops(spec)


def test_apply_ops_missing_context():
    with pytest.raises(ValueError, match="needs spacing"):
        apply_ops(np.ones((3, 3, 3), bool), "min_volume:1")


def test_cli_postprocess_keeps_geometry_and_reports_bad_ops(tmp_path, capsys) -> None:
    import SimpleITK as sitk

    from helpers import write_volume
    from WeakSegLib.cli import EXIT_BAD_INPUT, main

    labels = np.zeros((10, 12, 14), np.uint8)
    labels[2:8, 2:8, 2:8] = 1
    labels[4, 4, 4] = 0                      # an enclosed hole
    labels[9, 11, 13] = 1                    # a speck far away
    source = write_volume(tmp_path / "pred.nii.gz", labels, spacing=(0.5, 0.5, 3.0))
    out = tmp_path / "post.nii.gz"
    assert main(["postprocess", "--input", str(source), "--out", str(out), "--quiet",
                 "--ops", "largest,fill_holes,min_volume:1"]) == 0
    result = sitk.ReadImage(str(out))
    assert result.GetSpacing() == (0.5, 0.5, 3.0)
    array = sitk.GetArrayFromImage(result)
    assert array[4, 4, 4] == 1 and array[9, 11, 13] == 0 and array.sum() == 216
    assert main(["postprocess", "--input", str(source), "--out", str(tmp_path / "x.nii.gz"),
                 "--ops", "largest,blur"]) == EXIT_BAD_INPUT
    assert "--ops" in capsys.readouterr().err
    assert main(["postprocess", "--input", str(source), "--out", str(out),
                 "--ops", "largest"]) == EXIT_BAD_INPUT            # never overwrites unasked

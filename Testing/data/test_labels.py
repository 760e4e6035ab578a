"""Slice labels from masks, labels.csv and slice ranges."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.labels import labels_from_csv, labels_from_mask, labels_from_ranges
from WeakSegLib.data.reader import read_case


def test_erosion_drops_thin_slices() -> None:
    mask = np.zeros((4, 20, 20), np.uint8)
    mask[0, 5:15, 5:15] = 1       # 10×10 square survives a radius-2 disk
    mask[1, 5:8, 5:15] = 1        # 3 px thin strip vanishes
    mask[2, 10, 10] = 1           # one voxel vanishes
    assert labels_from_mask(mask, erode=2).tolist() == [1, 0, 0, 0]
    assert labels_from_mask(mask, erode=0).tolist() == [1, 1, 1, 0]


def test_real_mask_tumour_slice_count(brats_sample: Path) -> None:
    for files in discover_cohort(brats_sample).cases[:2]:
        case = read_case(files, require_mask=True)
        labels = labels_from_mask(case.mask)
        any_voxel = case.mask.any(axis=(1, 2))
        assert 56 <= labels.sum() <= 85                 # the data README's range
        assert labels.sum() <= any_voxel.sum()
        assert not (labels.astype(bool) & ~any_voxel).any()


def test_labels_csv(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("case,slice,label\nA,2,1\nA,3,1\nB,0,0\n")
    labels = labels_from_csv(path, {"A": 5, "B": 3})
    assert labels["A"].tolist() == [0, 0, 1, 1, 0] and labels["B"].tolist() == [0, 0, 0]


def test_slice_ranges_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "ranges.csv"
    path.write_text("case,first_slice,last_slice\nA,1,3\n")
    assert labels_from_ranges(path, {"A": 6})["A"].tolist() == [0, 1, 1, 1, 0, 0]


@pytest.mark.parametrize("text, problem", [
    ("case,slice\nA,1\n", "needs the header"),
    ("case,slice,label\nA,x,1\n", "line 2: slice 'x' is not an integer"),
    ("case,slice,label\nA,9,1\n", "line 2: slice 9 is outside"),
    ("case,slice,label\nZ,1,1\n", "line 2: case 'Z' is not in the cohort"),
    ("case,slice,label\nA,1,3\n", "label must be 0 or 1"),
])
def test_bad_labels_csv(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        labels_from_csv(path, {"A": 5})
    assert str(path) in str(err.value)


def test_bad_ranges(tmp_path: Path) -> None:
    path = tmp_path / "ranges.csv"
    path.write_text("case,first_slice,last_slice\nA,4,2\n")
    with pytest.raises(InputError, match="before first_slice"):
        labels_from_ranges(path, {"A": 6})

"""Review records: accepted/corrected slices become masks, rejected/pending do not; a bad file
is an error naming it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import synthetic_arrays, write_volume
from WeakSegLib.config import DataConfig
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.mixed_slices import build_mixed_slices
from WeakSegLib.mixed.records import (load_review_records, review_annotations,
                                      status_counts)

SHAPE = (20, 32, 28)


def record(slice_: int, status: str, **extra: object) -> dict:
    return {"case": "Case1", "slice": slice_, "status": status, "reviewer": "dr.r",
            "time": f"2024-05-01T10:{slice_:02d}:00+00:00", **extra}


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Case1's reviewed label map (a square on slices 9–11) and its records."""
    label_map = np.zeros(SHAPE, np.uint8)
    label_map[9:12, 10:16, 8:14] = 1
    write_volume(tmp_path / "Case1_reviewed.nii.gz", label_map)
    records = [record(10, "accepted"), record(11, "corrected"), record(12, "rejected"),
               record(13, "pending"), record(7, "accepted")]        # 7: accepted as empty
    for r in records:
        r["mask_path"] = "Case1_reviewed.nii.gz"
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records))
    return path, label_map


def test_accepted_and_corrected_become_masks(reviewed: tuple[Path, np.ndarray]) -> None:
    path, label_map = reviewed
    records = load_review_records(path)
    assert [r.status for r in records] == ["accepted", "corrected", "rejected", "pending",
                                           "accepted"]
    assert records[0].mask_path == path.parent / "Case1_reviewed.nii.gz"
    result = review_annotations(records, {"Case1": SHAPE}, source=path)["Case1"]
    assert np.flatnonzero(result.annotated).tolist() == [7, 10, 11]
    for z in (7, 10, 11):
        assert (result.mask[z] == label_map[z]).all()
    assert not result.mask[12].any()                 # rejected: no mask taken
    assert result.statuses == {7: "accepted", 10: "accepted", 11: "corrected", 12: "rejected",
                               13: "pending"}
    assert status_counts(records) == {"accepted": 2, "corrected": 1, "rejected": 1,
                                      "pending": 1}


def test_last_record_of_a_slice_wins(tmp_path: Path) -> None:
    write_volume(tmp_path / "m.nii.gz", np.ones(SHAPE, np.uint8))
    path = tmp_path / "r.json"
    path.write_text(json.dumps([record(7, "accepted", mask_path="m.nii.gz"),
                                record(7, "rejected"), record(8, "rejected"),
                                record(8, "corrected", mask_path="m.nii.gz")]))
    result = review_annotations(load_review_records(path), {"Case1": SHAPE})["Case1"]
    assert np.flatnonzero(result.annotated).tolist() == [8]


def test_label_map_given_per_case(tmp_path: Path) -> None:
    label_map = tmp_path / "case1_seg.nii.gz"
    write_volume(label_map, np.ones(SHAPE, np.uint8))
    path = tmp_path / "r.json"
    path.write_text(json.dumps([record(3, "corrected")]))
    records = load_review_records(path)
    with pytest.raises(InputError, match=r"r\.json: record 0 \(Case1, slice 3, corrected\) has "
                                         "no mask_path"):
        review_annotations(records, {"Case1": SHAPE}, source=path)
    result = review_annotations(records, {"Case1": SHAPE}, {"Case1": label_map}, path)
    assert result["Case1"].mask[3].all()


@pytest.mark.parametrize("content, problem", [
    ("{not json", "is not valid JSON"),
    ('{"case": "Case1"}', "holds a JSON dict; expected a JSON list"),
    ('[{"case": "Case1", "slice": 1, "status": "approved", "reviewer": "r", "time": "t"}]',
     "record 0: status 'approved' is not one of accepted, corrected, rejected, pending"),
    ('[{"case": "Case1", "slice": -1, "status": "accepted", "reviewer": "r", "time": "t"}]',
     "record 0: slice must be a 0-based integer"),
    ('[{"case": "Case1", "status": "accepted"}]', "record 0: lacks slice, reviewer, time"),
    ('[3]', "record 0: is a int, not an object"),
])
def test_bad_file_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "review.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_review_records(path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)


def test_missing_file_and_foreign_case(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="review records file does not exist"):
        load_review_records(tmp_path / "absent.json")
    path = tmp_path / "r.json"
    path.write_text(json.dumps([record(3, "rejected"), dict(record(4, "rejected"), case="X")]))
    with pytest.raises(InputError, match=r"r\.json: record 1: case 'X' is not in the cohort"):
        review_annotations(load_review_records(path), {"Case1": SHAPE}, source=path)
    path.write_text(json.dumps([record(30, "rejected")]))
    with pytest.raises(InputError, match="slice 30 is outside case Case1's 20 slices"):
        review_annotations(load_review_records(path), {"Case1": SHAPE}, source=path)


def test_label_map_on_another_grid(tmp_path: Path) -> None:
    write_volume(tmp_path / "small.nii.gz", np.ones((20, 16, 16), np.uint8))
    path = tmp_path / "r.json"
    path.write_text(json.dumps([record(3, "accepted", mask_path="small.nii.gz")]))
    with pytest.raises(InputError, match=r"small\.nii\.gz: label map of shape"):
        review_annotations(load_review_records(path), {"Case1": SHAPE}, source=path)


def test_reviewed_slices_are_the_only_masks_of_a_weak_case(
        tmp_path: Path, reviewed: tuple[Path, np.ndarray]) -> None:
    root = tmp_path / "cohort"
    for i in range(2):
        for key, array in synthetic_arrays(seed=i).items():
            write_volume(root / f"Case{i}" / f"Case{i}_{key}.nii.gz", array)
    cohort = discover_cohort(root)
    path, label_map = reviewed
    reviews = review_annotations(load_review_records(path), {"Case1": SHAPE}, source=path)
    cfg = DataConfig(size=16, trim_fraction=0.05)
    data = build_mixed_slices(cohort, cfg, ["flair", "t1"], full_cases=["Case0"],
                              reviews=reviews)
    case0, case1 = data.case_index == 0, data.case_index == 1
    assert data.has_mask[case0].all()
    assert sorted(data.slice_index[case1 & data.has_mask]) == [7, 10, 11]
    # labels of reviewed slices follow their reviewed mask; the others the case's own mask
    row = np.flatnonzero(case1 & (data.slice_index == 7))[0]
    assert data.labels[row] == 0 and not data.masks[row].any()
    row = np.flatnonzero(case1 & (data.slice_index == 10))[0]
    assert data.labels[row] == 1 and data.masks[row].sum() == label_map[10].sum()  # 6×6 square
    assert not data.targets(np.flatnonzero(case1 & ~data.has_mask)).any()
    again = data.with_full_cases(["Case1"])
    assert not again.has_mask[case0].any() and again.has_mask[case1].sum() == 3
    # reviewed slices are kept where the training rules (here: no slice may have any zero
    # pixel, so none would pass) drop every other slice
    strict = build_mixed_slices(cohort, DataConfig(size=16, trim_fraction=0.3,
                                                   max_zero_fraction=0.0), ["flair", "t1"],
                                reviews=reviews)
    assert sorted(strict.slice_index[strict.case_index == 1]) == [7, 10, 11]
    assert strict.has_mask.all()


def test_unflagged_slices_of_a_segment_output_become_accepted_records(tmp_path: Path) -> None:
    from WeakSegLib.mixed.records import records_from_segmentation

    folder = tmp_path / "seg" / "Case1"
    folder.mkdir(parents=True)
    write_volume(folder / "Case1_combined.nii.gz", np.zeros(SHAPE, np.uint8))
    (folder / "Case1_slices.csv").write_text(
        "slice,classifier_score,difference_score,flagged\n"
        "0,0.1,,0\n1,0.9,0.35,0\n2,0.9,0.05,1\n3,0.8,0.2,0\n")
    records = records_from_segmentation(tmp_path / "seg", ["Case1", "Other"])
    assert [(r.slice, r.status) for r in records] == [(1, "accepted"), (3, "accepted")]
    assert records[0].mask_path == folder / "Case1_combined.nii.gz"
    shapes = {"Case1": SHAPE}
    reviewed = review_annotations(records, shapes)["Case1"]
    assert reviewed.annotated.tolist()[:4] == [False, True, False, True]
    # today's table: flagged by review priority, whatever D says; the default method's map
    write_volume(folder / "Case1_self_trained.nii.gz", np.zeros(SHAPE, np.uint8))
    (folder / "Case1_slices.csv").write_text(
        "slice,classifier_score,difference_score,review_priority,flagged\n"
        "0,0.1,,0.0,0\n1,0.9,0.35,0.9,1\n2,0.9,0.05,0.1,0\n3,0.8,0.2,0.2,0\n")
    records = records_from_segmentation(tmp_path / "seg", ["Case1"])
    assert [r.slice for r in records] == [2, 3]
    assert records[0].mask_path == folder / "Case1_self_trained.nii.gz"
    (folder / "Case1_slices.csv").write_text("z,score\n1,0.3\n")
    with pytest.raises(InputError, match="Case1_slices.csv"):
        records_from_segmentation(tmp_path / "seg", ["Case1"])
    with pytest.raises(InputError, match="does not exist"):
        records_from_segmentation(tmp_path / "nowhere", ["Case1"])

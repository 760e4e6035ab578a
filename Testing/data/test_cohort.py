"""Cohort discovery and modality recognition on real BraTS names, renamed copies and mappings."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.modalities import recognise_modality


@pytest.mark.parametrize("name, expected", [
    ("Brats18_CBICA_AAB_1_flair.nii.gz", "flair"), ("Brats18_CBICA_AAB_1_t1.nii.gz", "t1"),
    ("Brats18_CBICA_AAB_1_t1ce.nii.gz", "t1ce"), ("Brats18_CBICA_AAB_1_t2.nii.gz", "t2"),
    ("Brats18_CBICA_AAB_1_seg.nii.gz", "seg"),
    ("BraTS-GLI-00001-000-t2f.nii.gz", "flair"), ("BraTS-GLI-00001-000-t1n.nii.gz", "t1"),
    ("BraTS-GLI-00001-000-t1c.nii.gz", "t1ce"), ("BraTS-GLI-00001-000-t2w.nii.gz", "t2"),
    ("BraTS-GLI-00001-000-seg.nii.gz", "seg"),
    ("flair.nii.gz", "flair"), ("FLAIR.nrrd", "flair"), ("t1c.nii.gz", "t1ce"),
    ("t1gd.nii", "t1ce"), ("t1_gd.nii.gz", "t1ce"), ("T1.mha", "t1"), ("t2.nii.gz", "t2"),
    ("mask.nii.gz", "seg"), ("label.nrrd", "seg"),
    ("anatomy.nii.gz", None), ("Brats18_X_dwi.nii.gz", None),
])
def test_recognise_modality(name: str, expected: str | None) -> None:
    assert recognise_modality(Path(name)) == expected


def test_brats2018_sample_is_a_cohort_of_eight(brats_sample: Path) -> None:
    cohort = discover_cohort(brats_sample)
    assert len(cohort) == 8
    assert cohort.common_modalities() == ["flair", "t1"]
    for case in cohort:
        assert case.images["flair"].name == f"{case.name}_flair.nii.gz"
        assert case.images["t1"].name == f"{case.name}_t1.nii.gz"
        assert case.mask is not None and case.mask.name == f"{case.name}_seg.nii.gz"


def test_brats2023_names_single_case_folder(no_label_case: Path) -> None:
    cohort = discover_cohort(no_label_case)
    assert cohort.names == ["BraTS-GLI-00001-000"]
    case = cohort.cases[0]
    assert case.modalities == ["flair", "t1", "t1ce", "t2"]
    assert case.images["flair"].name.endswith("-t2f.nii.gz")
    assert case.images["t1ce"].name.endswith("-t1c.nii.gz")
    assert case.mask is None
    # The parent folder is a cohort of that one case.
    assert discover_cohort(no_label_case.parent).names == ["BraTS-GLI-00001-000"]


def test_renamed_copies_with_plain_names(no_label_case: Path, tmp_path: Path) -> None:
    plain = {"t2f": "flair.nii.gz", "t1n": "t1.nii.gz", "t1c": "t1gd.nii.gz", "t2w": "t2.nii.gz"}
    case_dir = tmp_path / "patient7"
    case_dir.mkdir()
    for suffix, new_name in plain.items():
        shutil.copy(no_label_case / f"BraTS-GLI-00001-000-{suffix}.nii.gz", case_dir / new_name)
    (case_dir / "notes.txt").write_text("not an image; discovery ignores it")
    case = discover_cohort(case_dir).cases[0]
    assert case.name == "patient7"
    assert {k: p.name for k, p in case.images.items()} == {
        "flair": "flair.nii.gz", "t1": "t1.nii.gz", "t1ce": "t1gd.nii.gz", "t2": "t2.nii.gz"}


def test_explicit_files_and_mapping(no_label_case: Path, tmp_path: Path) -> None:
    files = sorted(no_label_case.glob("*.nii.gz"))
    assert discover_cohort(files).cases[0].modalities == ["flair", "t1", "t1ce", "t2"]
    odd = tmp_path / "scan_A.nii.gz"
    shutil.copy(no_label_case / "BraTS-GLI-00001-000-t2f.nii.gz", odd)
    case = discover_cohort(tmp_path, mapping={"flair": odd}).cases[0]
    assert case.images == {"flair": odd}
    case = discover_cohort(tmp_path, aliases={"A": "flair"}).cases[0]
    assert case.images == {"flair": odd}


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no cases found") as err:
        discover_cohort(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        discover_cohort(tmp_path / "nowhere")


def test_no_flair(tmp_path: Path, no_label_case: Path) -> None:
    case_dir = tmp_path / "c1"
    case_dir.mkdir()
    shutil.copy(no_label_case / "BraTS-GLI-00001-000-t1n.nii.gz", case_dir / "c1_t1.nii.gz")
    with pytest.raises(InputError, match="no FLAIR") as err:
        discover_cohort(case_dir)
    assert "c1_t1.nii.gz" in str(err.value) and str(case_dir) in str(err.value)


def test_unknown_file_name_without_mapping(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "c1_flair.nii.gz").write_bytes(b"")
    (tmp_path / "c1" / "c1_weird.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="cannot tell which modality") as err:
        discover_cohort(tmp_path)
    assert "c1_weird.nii.gz" in str(err.value)


def test_two_files_for_one_modality(tmp_path: Path) -> None:
    (tmp_path / "flair.nii.gz").write_bytes(b"")
    (tmp_path / "x_t2f.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="two files claim modality 'flair'"):
        discover_cohort(tmp_path)


def test_bad_alias_target(tmp_path: Path) -> None:
    (tmp_path / "flair.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown modality"):
        discover_cohort(tmp_path, aliases={"fl": "pd"})

"""A DICOM series folder is an input like a file: made here from a (cropped) sample case."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dicom_helpers import cropped, write_dicom_series
from WeakSegLib.config import DataConfig
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.geometry import Geometry
from WeakSegLib.data.reader import read_case

#: a small block of the sample case around its tumour: 12 slices of 70 × 60
BOX = (slice(60, 72), slice(60, 120), slice(70, 140))


def _sample(brats_sample: Path, key: str) -> sitk.Image:
    case = brats_sample / "Brats18_CBICA_AAB_1"
    image = cropped(sitk.ReadImage(str(case / f"Brats18_CBICA_AAB_1_{key}.nii.gz")), BOX)
    return sitk.Cast(image, sitk.sitkInt16)


@pytest.mark.parametrize("code", ["LPS", "PIR"])      # axial as BraTS, and sagittal slices
def test_dicom_series_reads_like_the_nifti(brats_sample: Path, tmp_path: Path, code: str
                                           ) -> None:
    flair, t1, seg = (_sample(brats_sample, k) for k in ("flair", "t1", "seg"))
    stored = sitk.DICOMOrient(flair, code)
    nifti = tmp_path / "nifti" / "c1"
    nifti.mkdir(parents=True)
    for key, image in (("flair", stored), ("t1", t1), ("seg", seg)):
        sitk.WriteImage(sitk.DICOMOrient(image, code), str(nifti / f"c1_{key}.nii.gz"))
    dicom = tmp_path / "dicom" / "c1"
    write_dicom_series(stored, dicom / "c1_flair", description="AX T2 FLAIR")
    for key in ("t1", "seg"):
        sitk.WriteImage(sitk.ReadImage(str(nifti / f"c1_{key}.nii.gz")),
                        str(dicom / f"c1_{key}.nii.gz"))
    from_dicom = read_case(discover_cohort(dicom).cases[0], data=DataConfig())
    from_nifti = read_case(discover_cohort(nifti).cases[0], data=DataConfig())
    assert from_dicom.warnings == [] and from_dicom.channels == ["flair", "t1"]
    assert from_dicom.input_geometry.differences(from_nifti.input_geometry) == []
    assert from_dicom.geometry.differences(from_nifti.geometry) == []
    for key in ("flair", "t1"):
        assert np.array_equal(from_dicom.images[key], from_nifti.images[key])
    assert np.array_equal(from_dicom.mask, from_nifti.mask)
    # and the model's frame is the axial BraTS block whatever the stored layout
    assert np.array_equal(from_dicom.images["flair"], sitk.GetArrayFromImage(flair))


def test_a_lone_series_folder_is_a_case_named_by_its_description(brats_sample: Path,
                                                                  tmp_path: Path) -> None:
    folder = write_dicom_series(_sample(brats_sample, "flair"), tmp_path / "series_0003",
                                description="AX T2 FLAIR")
    cohort = discover_cohort(folder)
    assert list(cohort.cases[0].images) == ["flair"]
    assert read_case(cohort.cases[0]).images["flair"].shape == (12, 60, 70)


def test_series_with_mixed_orientations(brats_sample: Path, tmp_path: Path) -> None:
    folder = write_dicom_series(_sample(brats_sample, "flair"), tmp_path / "c1_flair",
                                tilt_slices=(5,))
    with pytest.raises(InputError, match="mixes 2 slice orientations") as err:
        read_case(discover_cohort(folder).cases[0])
    assert "c1_flair" in str(err.value) and len(str(err.value).splitlines()) == 1


def test_folder_with_two_series(brats_sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "c1_flair"
    write_dicom_series(_sample(brats_sample, "flair"), folder, description="AX FLAIR",
                       series_uid="1.2.3.4.1")
    t1 = _sample(brats_sample, "t1")
    write_dicom_series(t1, tmp_path / "t1", description="AX T1", series_uid="1.2.3.4.2")
    for path in (tmp_path / "t1").iterdir():
        path.rename(folder / f"t1_{path.name}")
    with pytest.raises(InputError, match="holds 2 DICOM series") as err:
        read_case(discover_cohort(folder).cases[0])
    message = str(err.value)
    assert "1.2.3.4.1 (AX FLAIR, 12 files)" in message and "1.2.3.4.2 (AX T1" in message


@pytest.mark.realdata
def test_segment_of_a_dicom_series_equals_segment_of_the_nifti(brats_sample: Path,
                                                               tmp_path: Path) -> None:
    """The default model on a small block of the sample case, FLAIR as a sagittal DICOM series
    or as NIfTI: the same label map on the same grid."""
    torch = pytest.importorskip("torch", reason="segment needs torch (not in the torch-free run)")

    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.segment import segment_cohort

    torch.set_num_threads(1)
    bundle = load_bundle("default", "cpu")
    multimodal = brats_sample.parent / "brats2018-multimodal" / "Brats18_CBICA_AMH_1"
    if not multimodal.is_dir():
        pytest.skip(f"{multimodal} is absent: the default model needs FLAIR, T1, T1ce and T2")
    images = {k: sitk.DICOMOrient(sitk.Cast(cropped(sitk.ReadImage(
        str(multimodal / f"Brats18_CBICA_AMH_1_{k}.nii.gz")), (slice(60, 72), slice(50, 150),
                                                              slice(60, 160))), sitk.sitkInt16),
        "PIR") for k in bundle.channels}
    labels = {}
    for kind in ("nifti", "dicom"):
        folder = tmp_path / kind / "c1"
        folder.mkdir(parents=True)
        for key, image in images.items():
            if kind == "dicom" and key == "flair":
                write_dicom_series(image, folder / "c1_flair")
            else:
                sitk.WriteImage(image, str(folder / f"c1_{key}.nii.gz"))
        # a block cut out of a skull-stripped scan: no skull to remove, no zero border to see
        segment_cohort(bundle, discover_cohort(folder), tmp_path / f"out_{kind}", ["seed_only"],
                       show_progress=False, brain_mask="off")
        labels[kind] = sitk.ReadImage(str(tmp_path / f"out_{kind}" / "c1" / "c1_seed_only.nii.gz"))
    assert sitk.GetArrayFromImage(labels["nifti"]).sum() > 100      # the block holds tumour
    assert Geometry.of(labels["dicom"]).differences(Geometry.of(images["flair"])) == []
    assert Geometry.of(labels["dicom"]).differences(Geometry.of(labels["nifti"])) == []
    assert np.array_equal(sitk.GetArrayFromImage(labels["dicom"]),
                          sitk.GetArrayFromImage(labels["nifti"]))

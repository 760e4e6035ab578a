"""Reading real and synthetic cases; every kind of bad image gives a message naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import synthetic_arrays, write_volume
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.reader import Geometry, read_case, write_label_map


def _case_dir(tmp_path: Path, arrays: dict[str, np.ndarray], **geometry) -> Path:
    folder = tmp_path / "c1"
    for key, array in arrays.items():
        write_volume(folder / f"c1_{key}.nii.gz", array, **geometry.get(key, {}))
    return folder


def test_real_case_reads_with_its_geometry(brats_sample: Path) -> None:
    files = discover_cohort(brats_sample / "Brats18_CBICA_AAB_1").cases[0]
    case = read_case(files, require_mask=True)
    assert case.channels == ["flair", "t1"]
    assert case.geometry.shape == (155, 240, 240)
    assert case.geometry.spacing == (1.0, 1.0, 1.0)
    assert case.geometry.origin[1] == -239.0
    assert case.mask.dtype == np.uint8 and set(np.unique(case.mask)) == {0, 1}
    assert case.stack().shape == (2, 155, 240, 240)


def test_nrrd_reads_like_nifti(brats_sample: Path, tmp_path: Path) -> None:
    source = brats_sample / "Brats18_CBICA_AAB_1" / "Brats18_CBICA_AAB_1_flair.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(source)), str(tmp_path / "flair.nrrd"))
    case = read_case(discover_cohort(tmp_path).cases[0])
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(source)))
    assert np.array_equal(case.images["flair"], reference)


def test_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    bad = tmp_path / "c1" / "c1_flair.nii.gz"
    bad.write_text("this is not a NIfTI file")
    with pytest.raises(InputError, match="cannot read it as an image") as err:
        read_case(discover_cohort(tmp_path).cases[0])
    assert str(bad) in str(err.value)


def test_non_image_file_mapped_explicitly(tmp_path: Path) -> None:
    text = tmp_path / "report.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="cannot read it as an image") as err:
        read_case(discover_cohort(tmp_path, mapping={"flair": text}).cases[0])
    assert "report.txt" in str(err.value)


def test_modalities_of_different_shapes_are_resampled_onto_the_flair_grid(tmp_path: Path
                                                                        ) -> None:
    arrays = synthetic_arrays()
    arrays["t1"] = arrays["t1"][:, :30]
    case = read_case(discover_cohort(_case_dir(tmp_path, arrays)).cases[0])
    assert case.images["t1"].shape == arrays["flair"].shape
    assert np.array_equal(case.images["t1"][:, :30], arrays["t1"])   # same voxels where it has them
    assert not case.images["t1"][:, 30:].any()                        # zero outside its extent
    assert len(case.warnings) == 1 and "c1_t1.nii.gz" in case.warnings[0] \
        and "resampled" in case.warnings[0] and "size" in case.warnings[0]


def test_modality_from_another_series_is_resampled_in_physical_space(tmp_path: Path) -> None:
    """A T1 at 2 mm slices, shifted by a voxel: its values land where they are in space."""
    arrays = synthetic_arrays()
    folder = tmp_path / "c1"
    write_volume(folder / "c1_flair.nii.gz", arrays["flair"])
    t1 = arrays["t1"][::2]                                  # every other slice: 2 mm apart
    write_volume(folder / "c1_t1.nii.gz", t1, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    write_volume(folder / "c1_seg.nii.gz", arrays["seg"][::2], spacing=(1.0, 1.0, 2.0))
    case = read_case(discover_cohort(folder).cases[0])
    assert np.allclose(case.images["t1"][::2][:-1], t1[:-1], atol=1e-3)   # on its own slices
    assert set(np.unique(case.mask)) <= {0, 1}                              # nearest for masks
    assert np.array_equal(case.mask[::2], arrays["seg"][::2])
    assert {w.split(":")[0].rsplit("/", 1)[-1] for w in case.warnings} == {"c1_t1.nii.gz",
                                                                          "c1_seg.nii.gz"}


def test_modalities_that_do_not_overlap_in_space(tmp_path: Path) -> None:
    folder = _case_dir(tmp_path, synthetic_arrays(), t1={"origin": (0.0, 0.0, 400.0)})
    with pytest.raises(InputError, match="does not overlap c1_flair.nii.gz in space") as err:
        read_case(discover_cohort(folder).cases[0])
    assert "c1_t1.nii.gz" in str(err.value) and len(str(err.value).splitlines()) == 1


def test_4d_file(tmp_path: Path) -> None:
    image = sitk.JoinSeries([sitk.GetImageFromArray(a) for a in
                             (synthetic_arrays()["flair"], synthetic_arrays()["t1"])])
    sitk.WriteImage(image, str(tmp_path / "flair.nii.gz"))
    with pytest.raises(InputError, match="4D image") as err:
        read_case(discover_cohort(tmp_path).cases[0])
    assert "flair.nii.gz" in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_nan_voxels(tmp_path: Path, suffix: str) -> None:
    # SimpleITK reads NaN in NIfTI as 0; the reader must still notice it.
    arrays = synthetic_arrays()
    arrays["flair"][3, 4, 5] = np.nan
    arrays["flair"][3, 4, 6] = np.inf
    folder = tmp_path / "c1"
    for key, array in arrays.items():
        write_volume(folder / f"c1_{key}{suffix}", array)
    with pytest.raises(InputError, match="2 NaN or infinite voxels") as err:
        read_case(discover_cohort(folder).cases[0])
    assert f"c1_flair{suffix}" in str(err.value)


def test_2d_image(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.ones((32, 32), np.float32))
    sitk.WriteImage(image, str(tmp_path / "flair.nii.gz"))
    with pytest.raises(InputError, match="2D image") as err:
        read_case(discover_cohort(tmp_path).cases[0])
    assert "flair.nii.gz" in str(err.value)


def test_missing_mask_when_required(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    del arrays["seg"]
    with pytest.raises(InputError, match="has no mask"):
        read_case(discover_cohort(_case_dir(tmp_path, arrays)).cases[0], require_mask=True)


def test_label_map_keeps_geometry_and_never_overwrites(tmp_path: Path) -> None:
    folder = _case_dir(tmp_path, synthetic_arrays(), flair={"spacing": (0.9, 0.8, 2.5),
                                                            "origin": (1.0, -2.0, 3.0)},
                       t1={"spacing": (0.9, 0.8, 2.5), "origin": (1.0, -2.0, 3.0)},
                       seg={"spacing": (0.9, 0.8, 2.5), "origin": (1.0, -2.0, 3.0)})
    case = read_case(discover_cohort(folder).cases[0])
    out = write_label_map(tmp_path / "out" / "pred.nii.gz", case.mask, case.geometry)
    assert Geometry.of(sitk.ReadImage(str(out))).differences(case.geometry) == []
    with pytest.raises(InputError, match="already exists"):
        write_label_map(out, case.mask, case.geometry)

"""The model's frame: canonical orientation and in-plane spacing, and the exact way back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import synthetic_arrays
from WeakSegLib.config import CANONICAL_ORIENTATION, DataConfig
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.frame import InputFrame, overlap_fraction, orientation_code
from WeakSegLib.data.geometry import Geometry
from WeakSegLib.data.reader import read_case


def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def test_brats_orientation_is_canonical(brats_sample: Path) -> None:
    """BraTS files already have the canonical layout: their frame changes nothing."""
    flair = brats_sample / "Brats18_CBICA_AAB_1" / "Brats18_CBICA_AAB_1_flair.nii.gz"
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(flair))
    reader.ReadImageInformation()
    geometry = Geometry(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(),
                        reader.GetDirection())
    assert orientation_code(geometry) == CANONICAL_ORIENTATION
    frame = InputFrame.of(geometry, DataConfig().inplane_spacing)
    assert frame.identity and frame.model == geometry and frame.acquisition == "axial"


@pytest.mark.parametrize("code", ["PIR", "ASL", "RAI", "SAR", "LPI", "IPL"])
def test_any_orientation_maps_to_the_canonical_array_and_back_exactly(code: str) -> None:
    array = synthetic_arrays()["flair"]
    canonical = _image(array, spacing=(0.9, 0.8, 2.5), origin=(3.0, -5.0, 7.0))
    turned = sitk.DICOMOrient(canonical, code)
    frame = InputFrame.of(Geometry.of(turned))
    model = frame.to_model(sitk.GetArrayFromImage(turned))
    assert np.array_equal(model, array)                 # the same voxels, axial again
    assert frame.model.differences(Geometry.of(canonical)) == []
    back = frame.to_input(model > 400, "label")
    assert back.dtype == np.uint8
    assert np.array_equal(back, sitk.GetArrayFromImage(turned) > 400)
    assert frame.reoriented == (code != CANONICAL_ORIENTATION)


def test_slice_numbers_follow_the_input_axis() -> None:
    array = synthetic_arrays()["flair"]
    flipped = sitk.DICOMOrient(_image(array), "LPI")   # axial, slices stored top to bottom
    frame = InputFrame.of(Geometry.of(flipped))
    assert frame.slice_axis == "k" and frame.acquisition == "axial"
    depth = array.shape[0]
    assert list(frame.input_slices()) == list(range(depth - 1, -1, -1))
    labels = np.arange(depth)
    assert list(frame.slices_to_model(labels)) == list(range(depth - 1, -1, -1))
    sagittal = InputFrame.of(Geometry.of(sitk.DICOMOrient(_image(array), "PIR")))
    assert sagittal.acquisition == "sagittal" and sagittal.slice_axis != "k"
    with pytest.raises(ValueError, match="sagittal"):
        sagittal.slices_to_model(np.zeros(array.shape[2]))


def test_inplane_resampling_to_the_trained_spacing_keeps_the_slices() -> None:
    shape = (12, 110, 100)
    z, y, x = np.indices(shape)
    blob = (((y - 55) / 30.0) ** 2 + ((x - 50) / 25.0) ** 2 < 1).astype(np.float32) * 100
    geometry = Geometry.of(_image(blob, spacing=(0.45, 0.45, 5.0), origin=(10.0, 20.0, -30.0)))
    frame = InputFrame.of(geometry, inplane_spacing=1.0)
    assert frame.resampled and frame.model.spacing == (1.0, 1.0, 5.0)
    assert frame.model.size == (45, 50, 12)             # 100·0.45, 110·0.45, slices kept
    model = frame.to_model(blob)
    assert model.shape == frame.model.shape
    # the same physical extent: the blob's area in mm² is kept within a few percent
    area_in = (blob[5] > 50).sum() * 0.45 ** 2
    area_model = (model[5] > 50).sum() * 1.0
    assert abs(area_model - area_in) / area_in < 0.05
    back = frame.to_input(model > 50, "label")
    assert back.shape == shape
    dice = 2 * (back & (blob > 50)).sum() / (back.sum() + (blob > 50).sum())
    assert dice > 0.97
    assert not InputFrame.of(geometry, inplane_spacing=0.455).resampled   # within 2 %


def test_overlap_fraction() -> None:
    a = Geometry((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    half = Geometry((10, 10, 10), (1.0, 1.0, 1.0), (5.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    far = Geometry((10, 10, 10), (1.0, 1.0, 1.0), (500.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert overlap_fraction(a, a) == pytest.approx(1.0)
    assert overlap_fraction(half, a) == pytest.approx(0.5)
    assert overlap_fraction(far, a) == 0.0


def test_read_case_brings_a_coronal_case_to_the_model_frame(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    folder = tmp_path / "c1"
    folder.mkdir()
    for key, array in arrays.items():
        sitk.WriteImage(sitk.DICOMOrient(_image(array), "LSP"), str(folder / f"c1_{key}.nii.gz"))
    case = read_case(discover_cohort(folder).cases[0], data=DataConfig())
    assert case.frame.acquisition == "coronal"
    assert np.array_equal(case.images["flair"], arrays["flair"])
    assert np.array_equal(case.mask, arrays["seg"])
    assert case.input_geometry.size == sitk.ReadImage(str(folder / "c1_flair.nii.gz")).GetSize()


def test_a_fine_grid_is_read_at_the_trained_spacing_with_its_slices_kept(tmp_path: Path
                                                                         ) -> None:
    """A 0.5 × 0.5 mm case reaches the model at 1 mm (training and segment alike)."""
    arrays = synthetic_arrays(shape=(6, 40, 36))
    folder = tmp_path / "c1"
    folder.mkdir()
    for key, array in arrays.items():
        sitk.WriteImage(_image(array, spacing=(0.5, 0.5, 5.0)), str(folder / f"c1_{key}.nii.gz"))
    case = read_case(discover_cohort(folder).cases[0], data=DataConfig())
    assert case.geometry.spacing == (1.0, 1.0, 5.0) and case.geometry.shape == (6, 20, 18)
    assert case.mask.shape == (6, 20, 18) and set(np.unique(case.mask)) <= {0, 1}
    assert case.input_geometry.shape == (6, 40, 36)
    kept = read_case(discover_cohort(folder).cases[0])          # no ``data``: spacing kept
    assert kept.geometry.shape == (6, 40, 36) and kept.frame.identity


def test_slice_labels_of_a_sagittal_scan_are_refused(tmp_path: Path) -> None:
    from WeakSegLib.data.errors import InputError
    from WeakSegLib.data.slices import input_slice_labels

    folder = tmp_path / "c1"
    folder.mkdir()
    flair = sitk.DICOMOrient(_image(synthetic_arrays()["flair"]), "PIR")
    sitk.WriteImage(flair, str(folder / "c1_flair.nii.gz"))
    case = read_case(discover_cohort(folder).cases[0])
    with pytest.raises(InputError, match="acquired sagittally") as err:
        input_slice_labels(case, np.zeros(flair.GetSize()[2], np.uint8))
    assert "c1_flair.nii.gz" in str(err.value)
    with pytest.raises(InputError, match="slice labels for"):
        input_slice_labels(case, np.zeros(3, np.uint8))

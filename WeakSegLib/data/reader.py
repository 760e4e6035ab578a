"""Read a case with SimpleITK, check it is something WeakSeg can segment, and bring it to the
model's frame (``frame.InputFrame``: canonical axial orientation, the trained in-plane spacing).

Every failure is an ``InputError`` naming the file: unreadable, not 3D, NaN voxels, or a
modality that does not overlap the FLAIR in space. A modality on another grid (another series)
is resampled onto the FLAIR grid with a warning. A DICOM series folder reads like a file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..config import MODALITIES, DataConfig
from .cohort import CaseFiles
from .dicom import is_dicom_folder, read_dicom_series
from .errors import InputError
from .frame import InputFrame, overlap_fraction, resample_onto
from .geometry import Geometry

__all__ = ["CaseVolumes", "Geometry", "InputFrame", "read_case", "read_image", "read_shape",
           "write_label_map"]
_log = logging.getLogger("weakseg")


@dataclass
class CaseVolumes:
    """The arrays of one case, (z, y, x) float32, channels in canonical order, on the model's
    grid ``geometry``; ``frame`` maps them back to the input file's grid (None: they are on it).
    ``warnings``: what reading changed (another modality resampled onto the FLAIR grid)."""

    name: str
    images: dict[str, np.ndarray]
    geometry: Geometry
    mask: np.ndarray | None = None
    files: CaseFiles | None = None
    frame: InputFrame | None = None
    warnings: list[str] = field(default_factory=list)
    # set by data.brain_mask.attach_brain_mask: the brain (bool, z y x) and where it came from
    brain_mask: np.ndarray | None = None
    brain_source: str = "nonzero"

    @property
    def input_geometry(self) -> Geometry:
        """The grid of the input FLAIR file: where every output is written."""
        return self.frame.input if self.frame is not None else self.geometry

    def to_input(self, array: np.ndarray, kind: str = "label") -> np.ndarray:
        """A model-grid array on the input grid (see ``InputFrame.to_input``)."""
        return array if self.frame is None else self.frame.to_input(array, kind)

    @property
    def channels(self) -> list[str]:
        return [m for m in MODALITIES if m in self.images]

    def stack(self, channels: list[str] | None = None) -> np.ndarray:
        """Channels first: (C, z, y, x)."""
        channels = channels or self.channels
        missing = [c for c in channels if c not in self.images]
        if missing:
            raise InputError(self.files.folder if self.files else None,
                             f"case {self.name} lacks modalities {missing} that the model needs "
                             f"(it has {self.channels})")
        return np.stack([self.images[c] for c in channels])

    @property
    def brain(self) -> np.ndarray:
        """The attached brain mask; else voxels non-zero in any modality (BraTS images are
        skull-stripped with zero outside)."""
        if self.brain_mask is not None:
            return self.brain_mask
        return np.any(np.stack([im != 0 for im in self.images.values()]), axis=0)


def read_image(path: Path) -> sitk.Image:
    """Read one 3D scalar image (a file or a DICOM series folder), or fail with a message that
    names the file and the problem."""
    path = Path(path)
    if is_dicom_folder(path):
        image = read_dicom_series(path)
    elif not path.is_file():
        raise InputError(path, "file does not exist")
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1] if str(err).strip() else ""
            raise InputError(path, "cannot read it as an image (NIfTI/NRRD/MHA or a DICOM "
                             f"series folder expected). {first}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                         "WeakSeg needs a scalar (grey-level) volume")
    if image.GetDimension() != 3:
        raise InputError(path, f"is a {image.GetDimension()}D image of size {image.GetSize()}; "
                         "WeakSeg needs a 3D volume")
    if min(image.GetSize()) < 2:
        raise InputError(path, f"has size {image.GetSize()}: a single slice, not a volume")
    return image


def _count_nifti_non_finite(path: Path) -> int:
    """SimpleITK's NIfTI reader turns NaN voxels into 0 without a word; nibabel keeps them."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return 0
    import nibabel

    nifti = nibabel.load(str(path))
    if not np.issubdtype(nifti.get_data_dtype(), np.floating):
        return 0
    return int((~np.isfinite(np.asanyarray(nifti.dataobj))).sum())


def _finite_array(image: sitk.Image, path: Path) -> np.ndarray:
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    bad = ~np.isfinite(array)
    n_bad = int(bad.sum()) or _count_nifti_non_finite(path)
    if n_bad:
        raise InputError(path, f"contains {n_bad} NaN or infinite voxels; "
                         "fix or re-export the image")
    return array


def read_case(case: CaseFiles, require_mask: bool = False, data: DataConfig | None = None
              ) -> CaseVolumes:
    """Read every modality (and the mask) of a case onto the FLAIR's grid, then into the model's
    frame: canonical orientation always; in-plane resampling to ``data.inplane_spacing`` when
    ``data`` is given (None: the input's spacing is kept, so the way back is exact)."""
    settings = data or DataConfig()
    images: dict[str, np.ndarray] = {}
    reference: Geometry | None = None
    reference_path: Path | None = None
    paths = [(m, case.images[m]) for m in MODALITIES if m in case.images]
    if case.mask is not None:
        paths.append(("seg", case.mask))
    elif require_mask:
        raise InputError(case.folder, f"case {case.name} has no mask (*_seg / -seg / seg.*)")
    mask = None
    warnings: list[str] = []
    for key, path in paths:
        image = read_image(path)
        geometry = Geometry.of(image)
        array = _finite_array(image, path)
        if reference is None:
            reference, reference_path = geometry, path
        elif diffs := reference.differences(geometry):
            covered = overlap_fraction(geometry, reference)
            if covered < settings.min_overlap:
                raise InputError(path, f"does not overlap {reference_path.name} in space "
                                 f"(it covers {covered:.0%} of its extent): not the same "
                                 "patient's study, or its position was lost on export")
            image = resample_onto(image, reference, "mask" if key == "seg" else "image")
            array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
            warnings.append(f"{path}: not on the grid of {reference_path.name} "
                            f"({'; '.join(diffs)}); resampled onto it")
            _log.warning(warnings[-1])
        if key == "seg":
            mask = (array > 0).astype(np.uint8)
        else:
            images[key] = array
    assert reference is not None
    frame = InputFrame.of(reference, None if data is None else data.inplane_spacing,
                          settings.spacing_tolerance)
    images = {k: frame.to_model(v).astype(np.float32, copy=False) for k, v in images.items()}
    if mask is not None:
        mask = frame.to_model(mask, "mask")
    return CaseVolumes(case.name, images, frame.model, mask, case, frame, warnings)


def read_shape(path: Path) -> tuple[int, ...]:
    """(z, y, x) of an image from its header alone (the voxels are not read)."""
    if is_dicom_folder(Path(path)):
        return tuple(reversed(read_image(path).GetSize()))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(path, "cannot read it as an image (NIfTI/NRRD/MHA expected)") from None
    return tuple(reversed(reader.GetSize()))


def write_label_map(path: Path, labels: np.ndarray, geometry: Geometry,
                    overwrite: bool = False) -> Path:
    """Write a uint8 label map on ``geometry``; refuses to overwrite unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; choose another output folder or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(geometry.image_from_array(labels.astype(np.uint8)), str(path),
                    useCompression=True)
    return path

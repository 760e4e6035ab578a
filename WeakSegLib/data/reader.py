"""Read a case with SimpleITK and check it is something WeakSeg can segment.

Every failure is an ``InputError`` naming the file: unreadable, not 3D, NaN voxels, or
modalities whose grids disagree (size, spacing, origin, direction).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..config import MODALITIES
from .cohort import CaseFiles
from .errors import InputError

_GEOMETRY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of an image, enough to write a result back on exactly that grid."""

    size: tuple[int, int, int]          # SimpleITK order (x, y, z)
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x) as ``sitk.GetArrayFromImage`` returns it."""
        return tuple(reversed(self.size))

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(reversed(self.spacing))

    def differences(self, other: "Geometry") -> list[str]:
        out = []
        if self.size != other.size:
            out.append(f"size {self.size} vs {other.size}")
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            scale = max(1.0, float(np.abs(a).max(initial=0)))
            if not np.allclose(a, b, atol=_GEOMETRY_TOLERANCE * scale):
                out.append(f"{name} {tuple(np.round(a, 4))} vs {tuple(np.round(b, 4))}")
        return out

    def image_from_array(self, array: np.ndarray) -> sitk.Image:
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array of shape {array.shape} does not fit the grid {self.shape}")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


@dataclass
class CaseVolumes:
    """The arrays of one case, (z, y, x) float32, channels in canonical order."""

    name: str
    images: dict[str, np.ndarray]
    geometry: Geometry
    mask: np.ndarray | None = None
    files: CaseFiles | None = None
    # set by data.brain_mask.attach_brain_mask: the brain (bool, z y x) and where it came from
    brain_mask: np.ndarray | None = None
    brain_source: str = "nonzero"

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
    """Read one 3D scalar image, or fail with a message that names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file does not exist")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        raise InputError(path, f"cannot read it as an image (NIfTI/NRRD/MHA expected). {first}") from None
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


def read_case(case: CaseFiles, require_mask: bool = False) -> CaseVolumes:
    """Read every modality (and the mask) of a case, checking they share one voxel grid."""
    images: dict[str, np.ndarray] = {}
    reference: Geometry | None = None
    reference_path: Path | None = None
    paths = [(m, case.images[m]) for m in MODALITIES if m in case.images]
    if case.mask is not None:
        paths.append(("seg", case.mask))
    elif require_mask:
        raise InputError(case.folder, f"case {case.name} has no mask (*_seg / -seg / seg.*)")
    mask = None
    for key, path in paths:
        image = read_image(path)
        geometry = Geometry.of(image)
        if reference is None:
            reference, reference_path = geometry, path
        elif diffs := reference.differences(geometry):
            raise InputError(path, f"does not share the voxel grid of {reference_path.name}: "
                             + "; ".join(diffs) + ". Resample all modalities onto one grid first")
        array = _finite_array(image, path)
        if key == "seg":
            mask = (array > 0).astype(np.uint8)
        else:
            images[key] = array
    assert reference is not None
    return CaseVolumes(case.name, images, reference, mask, case)


def read_shape(path: Path) -> tuple[int, ...]:
    """(z, y, x) of an image from its header alone (the voxels are not read)."""
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

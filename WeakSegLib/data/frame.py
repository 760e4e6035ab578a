"""The model's frame and the exact way back to the input's own grid.

A clinical scan may be acquired sagittally, at 0.45 mm in-plane, or with its T1 from another
series. The networks were trained on BraTS-like volumes: axial slices along the array's first
(numpy) axis, at the bundle's in-plane spacing. ``InputFrame`` brings an image to that frame —
a lossless axis permutation/flip to the canonical orientation (SimpleITK ``DICOMOrient``), then
an in-plane resampling to the trained spacing with the slice thickness kept — and takes any
result (label map, probability, mask, per-slice vector) back to the input grid: exactly when
only the orientation changed, by resampling otherwise.

Also here: other modalities resampled onto the FLAIR grid (physical space) and the test that
two grids overlap at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..config import CANONICAL_ORIENTATION
from .geometry import Geometry

_AXIS_NAMES = ("i", "j", "k")                 # ITK/NIfTI index axes: i fastest (x)
_PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}   # slice axis along L–R / A–P / I–S


def orientation_code(geometry: Geometry) -> str:
    """Three-letter SimpleITK orientation of a grid (e.g. "LPS" for BraTS files)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(geometry.direction)


def _signed_permutation(source: Geometry, target_direction: tuple[float, ...]
                        ) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """For each target index axis: the source index axis it runs along and whether reversed."""
    d_src = np.asarray(source.direction, float).reshape(3, 3)
    d_tgt = np.asarray(target_direction, float).reshape(3, 3)
    p = d_src.T @ d_tgt               # column a' of d_tgt = sign · column a of d_src
    axes, flips = [], []
    for a_new in range(3):
        a_old = int(np.argmax(np.abs(p[:, a_new])))
        axes.append(a_old)
        flips.append(bool(p[a_old, a_new] < 0))
    if sorted(axes) != [0, 1, 2]:
        raise ValueError("reorientation is not an axis permutation")
    return tuple(axes), tuple(flips)


def physical_box(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical bounding box of a grid, voxel extents included (LPS, mm)."""
    direction = np.asarray(geometry.direction, float).reshape(3, 3)
    spacing = np.asarray(geometry.spacing, float)
    corners = []
    for i in (-0.5, geometry.size[0] - 0.5):
        for j in (-0.5, geometry.size[1] - 0.5):
            for k in (-0.5, geometry.size[2] - 0.5):
                corners.append(np.asarray(geometry.origin, float)
                               + direction @ (spacing * (i, j, k)))
    corners = np.asarray(corners)
    return corners.min(axis=0), corners.max(axis=0)


def overlap_fraction(image: Geometry, reference: Geometry) -> float:
    """Fraction of ``reference``'s physical box that ``image``'s box covers (0: disjoint)."""
    (amin, amax), (bmin, bmax) = physical_box(image), physical_box(reference)
    inter = np.clip(np.minimum(amax, bmax) - np.maximum(amin, bmin), 0, None)
    volume = float(np.prod(bmax - bmin))
    return float(np.prod(inter)) / volume if volume > 0 else 0.0


def resample_onto(image: sitk.Image, reference: Geometry, kind: str = "image") -> sitk.Image:
    """``image`` on ``reference``'s grid in physical space: linear for images, nearest
    neighbour for masks; zero outside the image."""
    target = sitk.Image(list(reference.size), sitk.sitkUInt8)
    target.SetSpacing(reference.spacing)
    target.SetOrigin(reference.origin)
    target.SetDirection(reference.direction)
    interpolator = sitk.sitkNearestNeighbor if kind == "mask" else sitk.sitkLinear
    pixel = image.GetPixelID() if kind == "mask" else sitk.sitkFloat32
    return sitk.Resample(image, target, sitk.Transform(), interpolator, 0.0, pixel)


@dataclass(frozen=True)
class InputFrame:
    """Input grid ↔ model grid of one case.

    ``input``: the FLAIR file's own grid (every output is written on it). ``oriented``: the
    same voxels permuted/flipped to the canonical orientation. ``model``: ``oriented`` with its
    in-plane spacing resampled (equal to ``oriented`` when no resampling was needed). Arrays are
    numpy (z, y, x); the model's z is inferior–superior whatever the acquisition.
    """

    input: Geometry
    oriented: Geometry
    model: Geometry
    axes: tuple[int, int, int]          # per oriented ITK axis: the input ITK axis
    flips: tuple[bool, bool, bool]      # per oriented ITK axis: reversed w.r.t. the input

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(cls, geometry: Geometry, inplane_spacing: float | None = None,
           tolerance: float = 0.02, orientation: str = CANONICAL_ORIENTATION) -> "InputFrame":
        """The frame of an input grid; ``inplane_spacing`` None keeps the spacing (orientation
        only). A spacing within ``tolerance`` (relative) of the target is not resampled."""
        probe = sitk.Image([2, 2, 2], sitk.sitkUInt8)
        probe.SetDirection(geometry.direction)
        oriented_direction = sitk.DICOMOrient(probe, orientation).GetDirection()
        axes, flips = _signed_permutation(geometry, oriented_direction)
        size = tuple(geometry.size[a] for a in axes)
        spacing = tuple(geometry.spacing[a] for a in axes)
        corner = [geometry.size[a] - 1 if f else 0 for a, f in zip(axes, flips)]
        index = [0, 0, 0]
        for a, c in zip(axes, corner):
            index[a] = c
        origin = tuple(float(v) for v in np.asarray(geometry.origin, float) + np.asarray(
            geometry.direction, float).reshape(3, 3) @ (np.asarray(geometry.spacing) * index))
        oriented = Geometry(size, spacing, origin, tuple(oriented_direction))
        model = oriented
        if inplane_spacing is not None and any(
                abs(s - inplane_spacing) > tolerance * inplane_spacing for s in spacing[:2]):
            model = _inplane_resampled(oriented, inplane_spacing)
        return cls(geometry, oriented, model, axes, flips)

    # ------------------------------------------------------------------ facts
    @property
    def reoriented(self) -> bool:
        return self.axes != (0, 1, 2) or any(self.flips)

    @property
    def resampled(self) -> bool:
        return self.model != self.oriented

    @property
    def identity(self) -> bool:
        return not self.reoriented and not self.resampled

    @property
    def slice_axis(self) -> str:
        """The input's index axis (i, j or k) along which the model's axial slices are counted."""
        return _AXIS_NAMES[self.axes[2]]

    @property
    def acquisition(self) -> str:
        """The input's slice plane: "axial", "sagittal" or "coronal" (nearest anatomical axis
        of its k axis)."""
        return _PLANES[self.axes.index(2)]

    def input_slices(self) -> np.ndarray:
        """For each model axial slice z: its index along the input's ``slice_axis``."""
        n = self.model.size[2]
        z = np.arange(n)
        return (n - 1 - z) if self.flips[2] else z

    def describe(self) -> dict:
        """What provenance records of the way back."""
        return {"input_orientation": orientation_code(self.input),
                "acquisition": self.acquisition, "slice_axis": self.slice_axis,
                "slice_axis_reversed": self.flips[2],
                "input_spacing": [round(s, 4) for s in self.input.spacing],
                "model_spacing": [round(s, 4) for s in self.model.spacing],
                "reoriented": self.reoriented, "resampled": self.resampled}

    # ------------------------------------------------------------------ arrays
    def _transpose(self) -> tuple[int, int, int]:
        """numpy axes of the input array in the oriented array's (z, y, x) order."""
        return tuple(2 - self.axes[a] for a in (2, 1, 0))

    def orient(self, array: np.ndarray) -> np.ndarray:
        """Input-grid array → oriented array (lossless)."""
        out = np.transpose(array, self._transpose())
        flip = [2 - a for a in range(3) if self.flips[a]]
        return np.ascontiguousarray(np.flip(out, axis=flip) if flip else out)

    def unorient(self, array: np.ndarray) -> np.ndarray:
        """Oriented array → input-grid array (lossless, the inverse of ``orient``)."""
        flip = [2 - a for a in range(3) if self.flips[a]]
        out = np.flip(array, axis=flip) if flip else array
        return np.ascontiguousarray(np.transpose(out, np.argsort(self._transpose())))

    def to_model(self, array: np.ndarray, kind: str = "image") -> np.ndarray:
        """Input-grid array → model grid. ``kind``: "image" (smoothed, linear) or "mask"
        (nearest neighbour)."""
        oriented = self.orient(array)
        if not self.resampled:
            return oriented
        image = self.oriented.image_from_array(oriented if kind == "mask"
                                               else oriented.astype(np.float32))
        if kind != "mask":
            image = _anti_alias(image, self.model.spacing)
        return sitk.GetArrayFromImage(resample_onto(image, self.model, kind))

    def to_input(self, array: np.ndarray, kind: str = "label", threshold: float = 0.5
                 ) -> np.ndarray:
        """Model-grid array → input grid, exactly when only the orientation changed.
        ``kind``: "label" (linear then > ``threshold``, uint8), "probability" (linear,
        float32) or "mask" (nearest neighbour)."""
        if tuple(array.shape) != self.model.shape:
            raise ValueError(f"array of shape {array.shape} is not on the model grid "
                             f"{self.model.shape}")
        if self.resampled:
            source = array if kind == "mask" else array.astype(np.float32)
            image = resample_onto(self.model.image_from_array(source), self.oriented,
                                  "mask" if kind == "mask" else "image")
            array = sitk.GetArrayFromImage(image)
        if kind == "label":
            array = (array > threshold).astype(np.uint8) if self.resampled \
                else array.astype(np.uint8)
        elif kind == "probability":
            array = array.astype(np.float32)
        return self.unorient(array)

    def slices_to_model(self, values: np.ndarray) -> np.ndarray:
        """A per-input-slice vector (e.g. slice labels, 0-based on the input's k axis) on the
        model's axial slices; only possible when the input was acquired axially."""
        values = np.asarray(values)
        if self.axes[2] != 2:
            raise ValueError(f"the input was acquired {self.acquisition}ly: its slices are not "
                             "the model's axial slices, so per-slice labels cannot be mapped")
        return values[::-1].copy() if self.flips[2] else values.copy()


def _inplane_resampled(oriented: Geometry, spacing: float) -> Geometry:
    """``oriented`` with x and y at ``spacing``, covering the same physical extent."""
    direction = np.asarray(oriented.direction, float).reshape(3, 3)
    old = np.asarray(oriented.spacing, float)
    new = np.array([spacing, spacing, old[2]])
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(oriented.size, old, new)]
    size[2] = oriented.size[2]
    shift = (new - old) / 2          # first voxel centre: half a new voxel inside the edge
    shift[2] = 0.0
    origin = np.asarray(oriented.origin, float) + direction @ shift
    return Geometry(tuple(size), tuple(float(s) for s in new), tuple(float(o) for o in origin),
                    oriented.direction)


def _anti_alias(image: sitk.Image, target_spacing: tuple[float, ...]) -> sitk.Image:
    """Gaussian smoothing along the axes being downsampled (sigma as skimage's resize)."""
    sigmas = [max(0.0, (t / s - 1) / 2) * s for s, t in zip(image.GetSpacing(), target_spacing)]
    if not any(sigmas):
        return image
    return sitk.DiscreteGaussian(image, [s * s for s in sigmas], 32, 0.01, True)

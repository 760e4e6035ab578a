"""Triplanar hole filling (thesis §4.2.2.1)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_fill_holes

# In-plane 4-connectivity for the background of axial (z), coronal (y) and sagittal (x)
# slices of a (z, y, x) volume: a structure flat along the slicing axis never links
# neighbouring slices, so one call fills every slice of that orientation independently.
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def _plane_structure(axis: int) -> np.ndarray:
    return np.expand_dims(_CROSS, axis)


def fill_holes_2d(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill, in every slice normal to ``axis``, background components not touching the slice border."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D mask, got shape {mask.shape}")
    return binary_fill_holes(mask, structure=_plane_structure(axis))


def fill_holes_triplanar(mask: np.ndarray, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Fill 2D holes in axial, then coronal, then sagittal slices, each pass on the previous result.

    Why 2D: a cavity can leak to the outside through a thin 3D channel and then no 3D fill
    would close it, while in most slices it is still an enclosed hole. A background region
    that reaches a slice's border (through background, in that slice) stays open, so a
    notch or groove open to the outside in every orientation is kept.
    """
    out = np.asarray(mask, bool).copy()
    box = _padded_box(out)
    if box is None:                          # empty: nothing to fill
        return out
    crop = out[box]
    for axis in axes:
        crop = fill_holes_2d(crop, axis)
    out[box] = crop
    return out


def _padded_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The mask's bounding box grown by one voxel (clipped to the volume), None when empty.
    Filling inside it gives exactly the whole volume's result: the one-voxel ring is
    background joined to everything outside the box, so a hole is a hole in both; a tumour
    occupies a few % of a 240² × 155 volume, so the fill runs on that much (issue 17)."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if not present.size:
            return None
        box.append(slice(max(present[0] - 1, 0), min(present[-1] + 2, mask.shape[axis])))
    return tuple(box)

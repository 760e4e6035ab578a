"""Connected-component operations on binary label volumes."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage.measure import label


def keep_largest_component(mask: np.ndarray, connectivity: int | None = None) -> np.ndarray:
    """The largest connected component (full connectivity by default); empty stays empty."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    labelled = label(mask, connectivity=connectivity or mask.ndim)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(sizes.argmax())


def voxel_volume_mm3(spacing: Sequence[float]) -> float:
    """Volume of one voxel: the product of the (z, y, x) spacings in mm."""
    spacing = tuple(float(s) for s in spacing)
    if any(s <= 0 for s in spacing):
        raise ValueError(f"spacing must be positive, got {spacing}")
    return float(np.prod(spacing))


def remove_small_components(
    mask: np.ndarray,
    spacing: Sequence[float],
    min_volume_mm3: float,
    connectivity: int | None = None,
) -> np.ndarray:
    """Drop connected components smaller than ``min_volume_mm3``.

    The volume is the voxel count times the spacing product, so the same component
    can survive on a coarse (anisotropic) grid and vanish on a fine one — thresholds
    are anatomical (thesis §4.2.2.2: eyes below 4 cm³ are false positives), not counts.
    """
    mask = np.asarray(mask, bool)
    if len(spacing) != mask.ndim:
        raise ValueError(f"spacing has {len(spacing)} values for a {mask.ndim}-D mask")
    if not mask.any():
        return mask.copy()
    labelled = label(mask, connectivity=connectivity or mask.ndim)
    volumes = np.bincount(labelled.ravel()) * voxel_volume_mm3(spacing)
    keep = volumes >= float(min_volume_mm3)
    keep[0] = False
    return keep[labelled]

"""Left/right separation of bilateral structures and containment rules (thesis §4.2.2)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import center_of_mass
from skimage.measure import label

X_AXIS = 2  # numpy arrays from SimpleITK are (z, y, x)


def brain_centre_x(brain_mask: np.ndarray) -> float:
    """Centre of the brain's bounding box along x: the head need not be centred in the image."""
    xs = np.flatnonzero(np.asarray(brain_mask, bool).any(axis=(0, 1)))
    if xs.size == 0:
        raise ValueError("brain mask is empty: cannot place the mid-line")
    return (float(xs[0]) + float(xs[-1])) / 2.0


def split_left_right(
    mask: np.ndarray,
    brain_mask: np.ndarray,
    left_at_high_x: bool = True,
    connectivity: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split a bilateral structure into (left, right) masks by component barycentre.

    Each connected component goes to the side of the brain bounding-box centre its
    barycentre's x lies on (a tie goes to the high-x side). Orientation: in an image read
    with SimpleITK (physical space LPS) and an identity direction matrix, x index grows
    towards patient *Left*, so ``left_at_high_x=True`` (default). For an identity-direction
    RAS image (e.g. nibabel convention) x grows towards patient Right: pass False.
    """
    mask = np.asarray(mask, bool)
    left = np.zeros_like(mask)
    right = np.zeros_like(mask)
    if not mask.any():
        return left, right
    centre = brain_centre_x(brain_mask)
    labelled = label(mask, connectivity=connectivity or mask.ndim)
    n = int(labelled.max())
    centres = center_of_mass(mask, labelled, range(1, n + 1))
    for index, com in enumerate(centres, start=1):
        high = com[X_AXIS] >= centre
        side = left if high == left_at_high_x else right
        side[labelled == index] = True
    return left, right


def keep_inside(
    structure: np.ndarray,
    container: np.ndarray,
    mode: str = "overlap",
    connectivity: int | None = None,
) -> np.ndarray:
    """Keep the parts of ``structure`` that belong inside ``container`` (e.g. lenses in eyes).

    ``mode="overlap"``: whole components of ``structure`` touching ``container`` are kept.
    ``mode="clip"``: voxel-wise intersection, the thesis' "0 outside the eyes" rule.
    """
    structure = np.asarray(structure, bool)
    container = np.asarray(container, bool)
    if structure.shape != container.shape:
        raise ValueError(f"shape mismatch: {structure.shape} vs {container.shape}")
    if mode == "clip":
        return structure & container
    if mode != "overlap":
        raise ValueError(f"mode must be 'overlap' or 'clip', got {mode!r}")
    if not structure.any():
        return structure.copy()
    labelled = label(structure, connectivity=connectivity or structure.ndim)
    hit = np.zeros(int(labelled.max()) + 1, bool)
    hit[np.unique(labelled[container])] = True
    hit[0] = False
    return hit[labelled]

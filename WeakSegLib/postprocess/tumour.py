"""3D consistency of stacked 2D slice predictions of a tumour."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import find_objects
from skimage.measure import label

from .holes import fill_holes_triplanar


def consistent_tumour_mask(
    mask: np.ndarray,
    slice_scores: Sequence[float] | np.ndarray | None = None,
    min_slices: int = 2,
    score_threshold: float = 0.5,
    fill_holes: bool = True,
    connectivity: int | None = None,
) -> np.ndarray:
    """Make a slice-by-slice (z, y, x) tumour prediction consistent in 3D.

    A 2D network judges each axial slice alone, so it leaves specks on single slices and
    fires on slices the slice classifier calls healthy. Components spanning fewer than
    ``min_slices`` axial slices are dropped; with ``slice_scores`` (one per z) a component
    is dropped unless at least one of its slices scores ``>= score_threshold``; finally
    2D holes are filled in the three orientations.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) mask, got shape {mask.shape}")
    tumour_slices = None
    if slice_scores is not None:
        scores = np.asarray(slice_scores, float).ravel()
        if scores.size != mask.shape[0]:
            raise ValueError(f"{scores.size} slice scores for {mask.shape[0]} axial slices")
        tumour_slices = scores >= score_threshold
    out = np.zeros_like(mask)
    if mask.any():
        labelled = label(mask, connectivity=connectivity or mask.ndim)
        for index, box in enumerate(find_objects(labelled), start=1):
            if box is None:
                continue
            component = labelled[box] == index
            zs = np.flatnonzero(component.any(axis=(1, 2))) + box[0].start
            if zs.size < min_slices:
                continue
            if tumour_slices is not None and not tumour_slices[zs].any():
                continue
            out[box] |= component
    return fill_holes_triplanar(out) if fill_holes else out

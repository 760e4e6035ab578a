"""Connected-component operations on binary label volumes."""
from __future__ import annotations

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

"""Helpers shared by tests: writing small volumes and a synthetic head."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)
                 ) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def synthetic_arrays(shape=(20, 32, 28), seed=0) -> dict[str, np.ndarray]:
    """A tiny 'head': an ellipsoid brain with a bright blob, plus its mask."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2
    brain = (((z - centre[0]) / (shape[0] * 0.4)) ** 2 + ((y - centre[1]) / (shape[1] * 0.4)) ** 2
             + ((x - centre[2]) / (shape[2] * 0.4)) ** 2) < 1
    tumour = ((z - 10) ** 2 + (y - 14) ** 2 + (x - 12) ** 2) < 16
    flair = np.where(brain, 300 + 20 * rng.standard_normal(shape), 0).astype(np.float32)
    flair[tumour] += 400
    t1 = np.where(brain, 500 + 20 * rng.standard_normal(shape), 0).astype(np.float32)
    return {"flair": flair, "t1": t1, "seg": tumour.astype(np.uint8)}

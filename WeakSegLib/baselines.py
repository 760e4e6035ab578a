"""Non-learned reference methods, evaluated beside WeakSeg on the same cases."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .config import BaselineConfig
from .data.reader import CaseVolumes
from .postprocess.components import keep_largest_component


def flair_threshold(case: CaseVolumes, cfg: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """FLAIR > mean + k·SD inside the brain, largest 3D component: the bar WeakSeg must clear."""
    flair = case.images["flair"]
    brain = case.brain
    values = flair[brain]
    if values.size == 0:
        return np.zeros(flair.shape, np.uint8)
    hyperintense = (flair > values.mean() + cfg.flair_sd * values.std()) & brain
    return keep_largest_component(hyperintense).astype(np.uint8)


#: Baselines that need nothing but the images.
IMAGE_BASELINES: dict[str, Callable[[CaseVolumes, BaselineConfig], np.ndarray]] = {
    "flair_threshold": flair_threshold,
}

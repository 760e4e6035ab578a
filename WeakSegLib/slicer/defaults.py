"""The panel's defaults, read from :mod:`WeakSegLib.config` (DESIGN.md: every default in one place).

Nothing in ``WeakSegLib/slicer`` repeats a value config.py holds: the segmentation method, the
review threshold, the difference-score threshold older results are flagged by, and the
post-processing operations all come from the inference section of the profile ``weakseg train``
uses unless told otherwise.
"""
from __future__ import annotations

from ..config import InferenceConfig, get_profile

#: The profile whose inference section the panel follows: the one ``weakseg train`` (and so a
#: bundle trained from the panel) uses by default (``cli.py``: ``--profile`` default).
PROFILE = "fast"


def inference() -> InferenceConfig:
    """The inference section of :data:`PROFILE`, fresh from config.py."""
    return get_profile(PROFILE).inference


_INFERENCE = inference()
#: The method the panel segments with (config ``inference.default_method``).
METHOD: str = _INFERENCE.default_method
#: A slice is flagged when its review priority is at or above this
#: (config ``inference.review_threshold``).
REVIEW_THRESHOLD: float = float(_INFERENCE.review_threshold)
#: Results written before the review priority existed are flagged by difference score below this
#: (config ``inference.difference_threshold``, seed 000's filter).
DIFFERENCE_THRESHOLD: float = float(_INFERENCE.difference_threshold)
#: Post-processing the panel applies to a result (config ``inference.postprocess``).
POSTPROCESS_OPS: str = _INFERENCE.postprocess

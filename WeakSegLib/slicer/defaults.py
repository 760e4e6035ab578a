"""The panel's defaults, read from :mod:`WeakSegLib.config` (DESIGN.md: every default in one place).

Nothing in ``WeakSegLib/slicer`` repeats a value config.py holds: the segmentation method, the
review threshold, the difference-score threshold older results are flagged by, and the
post-processing operations all come from the inference section of the profile ``weakseg train``
uses unless told otherwise. The model the panel starts with is the bundle shipped with the
extension (``--model default`` on the command line), found by :mod:`WeakSegLib.paths` without
importing torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import InferenceConfig, get_profile
from ..paths import shipped_default_model

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


# ------------------------------------------------------------------ the shipped model

def default_model() -> Path | None:
    """The model a fresh parameter node starts with: the bundle shipped with the extension
    (``$WEAKSEG_DEFAULT_MODEL``, else ``Resources/Models/default``) when it is there, else
    None (the user chooses one). Read anew each time: no torch, only a file test."""
    return shipped_default_model()


def is_default_model(path: str | Path | None) -> bool:
    """Whether ``path`` is the shipped default bundle."""
    shipped = shipped_default_model()
    if not path or shipped is None:
        return False
    try:
        return Path(path).resolve() == shipped.resolve()
    except OSError:
        return False


def model_card(path: str | Path | None) -> dict[str, Any]:
    """The bundle's ``model_card.json`` (written with the shipped model), or {}."""
    if not path:
        return {}
    try:
        card = json.loads((Path(path) / "model_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def default_model_summary(path: str | Path | None) -> str:
    """A short "shipped: <data>" for the panel, from the model card's ``name`` or the start of
    its ``data`` line ("BraTS 2018 training cases of ..." → "BraTS 2018 training cases")."""
    card = model_card(path)
    text = str(card.get("name") or card.get("data") or "").strip()
    for cut in (" of ", " (", ";", " — ", ","):
        text = text.split(cut)[0]
    return f"shipped: {text}" if text else "shipped with WeakSeg"


def relocate_default_model(path: Path | None) -> Path | None:
    """A scene saved with the shipped model stores its absolute path, which an extension update
    or another computer moves: a missing ``.../Resources/Models/default`` is read as today's
    shipped bundle. Any other path is returned unchanged."""
    if path is None or Path(path).parts[-3:] != ("Resources", "Models", "default"):
        return path
    shipped = shipped_default_model()
    if shipped is None or Path(path).is_dir():
        return path
    return shipped

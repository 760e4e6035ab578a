"""Where things the package ships lie on disk: torch-free, so Slicer's GUI process can ask.

``--model default`` on the command line and the panel's preselected model both name the bundle
shipped with the extension; this module finds it without loading any weights.
"""
from __future__ import annotations

import os
from pathlib import Path

#: ``--model default``: the bundle shipped with the extension
DEFAULT_MODEL = "default"
#: environment variable that overrides where the default bundle lies
DEFAULT_MODEL_ENV = "WEAKSEG_DEFAULT_MODEL"


def default_model_dir() -> Path:
    """Where the shipped default bundle lies: ``$WEAKSEG_DEFAULT_MODEL``, else
    ``Resources/Models/default`` of the Slicer module — beside WeakSegLib when installed in
    Slicer (qt-scripted-modules/Resources/...), under ``WeakSeg/`` in the repository. The path
    is returned even when nothing is there (see :func:`shipped_default_model`)."""
    if os.environ.get(DEFAULT_MODEL_ENV):
        return Path(os.environ[DEFAULT_MODEL_ENV])
    root = Path(__file__).resolve().parents[1]
    for candidate in (root / "WeakSeg" / "Resources" / "Models" / DEFAULT_MODEL,
                      root / "Resources" / "Models" / DEFAULT_MODEL):
        if (candidate / "manifest.json").is_file():
            return candidate
    return root / "WeakSeg" / "Resources" / "Models" / DEFAULT_MODEL


def shipped_default_model() -> Path | None:
    """The default bundle's folder when one is there (it has a manifest.json), else None."""
    folder = default_model_dir()
    return folder if (folder / "manifest.json").is_file() else None


#: the real four-channel BraTS cases the project's tests and benchmarks read, beside the
#: repository (``../shared/data/``); the demo evaluates the shipped model on them when present
SHARED_REAL_CASES = Path("..") / "shared" / "data" / "brats2018-multimodal"


def shared_real_cases() -> Path | None:
    """``../shared/data/brats2018-multimodal`` beside the repository when it is there."""
    folder = Path(__file__).resolve().parents[1] / SHARED_REAL_CASES
    return folder.resolve() if folder.is_dir() else None

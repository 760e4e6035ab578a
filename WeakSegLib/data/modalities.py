"""Recognise which modality an image file holds from its name.

One rule covers BraTS 2018–2021 (``Brats18_X_flair``), BraTS 2023 (``BraTS-GLI-…-t2f``) and
plain names (``flair``, ``t1gd``): the last one or two name tokens are looked up in an alias
table. A user-supplied alias table extends it for in-house naming.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from ..config import MASK_KEY, MODALITIES

IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: name token → modality key ("seg" is the mask).
DEFAULT_ALIASES: dict[str, str] = {
    "flair": "flair", "t2f": "flair", "t2flair": "flair",
    "t1": "t1", "t1n": "t1", "t1w": "t1", "t1native": "t1",
    "t1ce": "t1ce", "t1c": "t1ce", "t1gd": "t1ce", "t1post": "t1ce", "t1contrast": "t1ce",
    "t2": "t2", "t2w": "t2",
    "seg": MASK_KEY, "mask": MASK_KEY, "label": MASK_KEY, "labels": MASK_KEY,
}
KNOWN_KEYS = frozenset(MODALITIES) | {MASK_KEY}
_SEPARATORS = re.compile(r"[_\-. ]+")


def is_image_file(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(IMAGE_SUFFIXES)


def image_stem(path: Path) -> str:
    """File name without its image suffix (``.nii.gz`` counts as one suffix)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def validate_aliases(aliases: Mapping[str, str]) -> dict[str, str]:
    """Lower-case an alias table and check every target is a modality WeakSeg knows."""
    checked = {}
    for token, key in aliases.items():
        key = key.lower()
        if key not in KNOWN_KEYS:
            raise ValueError(f"alias {token!r} → {key!r}: unknown modality; use one of "
                             f"{sorted(KNOWN_KEYS)}")
        checked[token.lower()] = key
    return checked


def recognise_modality(path: Path, aliases: Mapping[str, str] | None = None) -> str | None:
    """Modality key of an image file, or None when its name says nothing we know."""
    table = dict(DEFAULT_ALIASES)
    if aliases:
        table.update(validate_aliases(aliases))
    stem = image_stem(path).lower()
    if stem in table:                       # a user alias may be a whole file name
        return table[stem]
    tokens = [t for t in _SEPARATORS.split(stem) if t]
    if not tokens:
        return None
    if len(tokens) >= 2 and tokens[-2] + tokens[-1] in table:   # t1_gd, t2_flair
        return table[tokens[-2] + tokens[-1]]
    return table.get(tokens[-1])

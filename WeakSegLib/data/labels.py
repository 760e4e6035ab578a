"""Slice-level labels (tumour / no tumour per axial slice of the original grid).

Three sources: a mask (binarise, erode in-plane so a few boundary voxels do not make a tumour
slice, anything left → 1), ``labels.csv`` (``case,slice,label``), or slice ranges
(``case,first_slice,last_slice``, inclusive, 0-based).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

from .errors import InputError


def labels_from_mask(mask: np.ndarray, erode: int = 2) -> np.ndarray:
    """Per axial slice of a (z, y, x) mask: 1 if anything survives an in-plane disk erosion."""
    binary = np.asarray(mask) > 0
    if erode > 0:
        structure = disk(erode).astype(bool)[None]
        binary = ndimage.binary_erosion(binary, structure=structure)
    return binary.any(axis=(1, 2)).astype(np.uint8)


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file does not exist")
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if any(c not in header for c in columns):
                raise InputError(path, f"needs the header '{','.join(columns)}', found "
                                 f"'{','.join(header) or 'nothing'}'")
            return [(number, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                    for number, row in enumerate(reader, start=2)]
    except UnicodeDecodeError:
        raise InputError(path, "is not a text CSV file") from None


def _int(path: Path, line: int, row: dict[str, str], column: str) -> int:
    try:
        return int(row[column])
    except ValueError:
        raise InputError(path, f"line {line}: {column} '{row[column]}' is not an integer") from None


def labels_from_csv(path: Path, n_slices: dict[str, int]) -> dict[str, np.ndarray]:
    """``case,slice,label`` rows → per-case label arrays; slices not listed are 0."""
    out = {case: np.zeros(n, np.uint8) for case, n in n_slices.items()}
    for line, row in _rows(path, ("case", "slice", "label")):
        case = row["case"]
        index, label = _int(path, line, row, "slice"), _int(path, line, row, "label")
        _check_slice(path, line, case, index, n_slices)
        if label not in (0, 1):
            raise InputError(path, f"line {line}: label must be 0 or 1, got {label}")
        out[case][index] = label
    return out


def labels_from_ranges(path: Path, n_slices: dict[str, int]) -> dict[str, np.ndarray]:
    """``case,first_slice,last_slice`` rows (inclusive) → per-case label arrays."""
    out = {case: np.zeros(n, np.uint8) for case, n in n_slices.items()}
    for line, row in _rows(path, ("case", "first_slice", "last_slice")):
        case = row["case"]
        first, last = (_int(path, line, row, c) for c in ("first_slice", "last_slice"))
        _check_slice(path, line, case, first, n_slices)
        _check_slice(path, line, case, last, n_slices)
        if last < first:
            raise InputError(path, f"line {line}: last_slice {last} is before first_slice {first}")
        out[case][first:last + 1] = 1
    return out


def _check_slice(path: Path, line: int, case: str, index: int, n_slices: dict[str, int]) -> None:
    if case not in n_slices:
        raise InputError(path, f"line {line}: case '{case}' is not in the cohort "
                         f"({', '.join(sorted(n_slices))})")
    if not 0 <= index < n_slices[case]:
        raise InputError(path, f"line {line}: slice {index} is outside 0…{n_slices[case] - 1} "
                         f"of case '{case}'")

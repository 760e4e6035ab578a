"""Per-case artefact files (``seeds/<case>.npz``, ``variants/<case>.npz``): one row per slice
with its ``slice_index``, so a later stage finds its rows by case and slice, not by position."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.slices import SliceSet


def read_case_arrays(folder: Path, data: SliceSet, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays from ``folder/<case>.npz`` (one row per slice, with ``slice_index``) put in the
    row order of ``data``, matched by case and slice index; a missing case or slice is an error."""
    folder, out = Path(folder), {}
    for number, case in enumerate(data.cases):
        rows = np.flatnonzero(data.case_index == number)
        if not len(rows):
            continue
        path = folder / f"{case}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; rerun the stage that writes {folder.name}/")
        with np.load(path, allow_pickle=False) as npz:
            where = {int(s): i for i, s in enumerate(npz["slice_index"])}
            missing = [int(s) for s in data.slice_index[rows] if int(s) not in where]
            if missing:
                raise ValueError(f"{path}: no rows for slices {missing[:5]} of case {case}; "
                                 "it was written for other slices — rerun that stage")
            pick = np.array([where[int(s)] for s in data.slice_index[rows]], int)
            for key in keys:
                values = npz[key][pick]
                if key not in out:
                    out[key] = np.zeros((len(data), *values.shape[1:]), values.dtype)
                out[key][rows] = values
    return out


def write_case_arrays(folder: Path, data: SliceSet, arrays: dict[str, np.ndarray]) -> list[Path]:
    """``folder/<case>.npz`` with ``slice_index`` and each array's rows of that case."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, case in enumerate(data.cases):
        rows = np.flatnonzero(data.case_index == number)
        if len(rows):
            path = folder / f"{case}.npz"
            np.savez_compressed(path, slice_index=data.slice_index[rows],
                                **{k: v[rows] for k, v in arrays.items()})
            paths.append(path)
    return paths

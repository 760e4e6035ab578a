"""The run folder's layout: every artefact's file name and its reader, in one place.

A stage writes into ``<run>/<stage>/`` and per-case arrays into ``seeds/``, ``variants/`` and
``refinement/`` (one row per slice with its ``slice_index``, so a later stage finds its rows by
case and slice, not by position). Stages, inference and the exporter read artefacts through here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.slices import SliceSet

MODEL = "model.pt"
METRICS = "metrics.json"
PROBABILITIES = "probabilities.npz"
CLASSIFIER_SCORES = "classifier/scores.npz"
SLICE_CACHE = "data/slices.npz"
MIXED_SLICE_CACHE = "data/mixed_slices.npz"     # a mixed-supervision run's slices (with masks)
SEEDS, VARIANTS, REFINEMENT = "seeds", "variants", "refinement"


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


def load_seeds(run_dir: Path, data: SliceSet) -> dict[str, np.ndarray]:
    """positive, negative (bool) and saliency (float32) of stage 2, in ``data``'s row order."""
    seeds = read_case_arrays(Path(run_dir) / SEEDS, data, ("positive", "negative", "saliency"))
    return {"positive": seeds["positive"].astype(bool), "negative": seeds["negative"].astype(bool),
            "saliency": seeds["saliency"].astype(np.float32)}


def load_variants(run_dir: Path, data: SliceSet) -> np.ndarray:
    """Healthy FLAIR variants ``(N, S, S)`` float32 in ``data``'s row order (v = x if healthy)."""
    folder = Path(run_dir) / VARIANTS
    return read_case_arrays(folder, data, ("variant",))["variant"].astype(np.float32)


def load_train_scores(run_dir: Path, data: SliceSet) -> np.ndarray:
    """The classifier's probabilities on the training slices (stage 1's ``scores.npz``)."""
    path = Path(run_dir) / CLASSIFIER_SCORES
    with np.load(path, allow_pickle=False) as npz:
        scores = np.asarray(npz["train"], np.float32)
    if scores.shape != (len(data),):
        raise ValueError(f"{path}: {scores.shape[0]} training scores for {len(data)} training "
                         "slices; the classifier was run on other data — rerun it")
    return scores


def load_probabilities(run_dir: Path, name: str = "segmenter") -> dict[str, np.ndarray]:
    """S of a segmenter stage for the train and val slices, float32."""
    with np.load(Path(run_dir) / name / PROBABILITIES, allow_pickle=False) as npz:
        return {split: npz[split].astype(np.float32) for split in ("train", "val")}


def load_refined_seeds(run_dir: Path, data: SliceSet) -> dict[str, np.ndarray]:
    """positive, negative and reliable (bool) of stage 6 in ``data``'s row order."""
    arrays = read_case_arrays(Path(run_dir) / REFINEMENT, data,
                              ("positive", "negative", "reliable"))
    return {k: v.astype(bool) for k, v in arrays.items()}

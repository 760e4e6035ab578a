"""Evaluate label maps on disk against the masks of a cohort; write ``metrics.json``.

Predictions live at ``PRED_DIR/<case>/<case>_<method>.nii.gz`` on each case's own grid.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.brain_mask import BRAIN_MASK_NAME
from ..data.reader import read_case, read_image
from ..events import EventWriter
from .metrics import segmentation_metrics, summarise
from ..progress import track

REPORTED = ("slice_dice", "tumour_slice_dice", "volume_dice", "hd95_mm")


def find_predictions(pred_dir: Path, cases: list[str]) -> dict[str, dict[str, Path]]:
    """method → case → label-map path, from the ``<case>/<case>_<method>.nii.gz`` layout."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "prediction folder does not exist")
    found: dict[str, dict[str, Path]] = {}
    for case in cases:
        pattern = re.compile(re.escape(case) + r"_(?P<method>[A-Za-z0-9_]+)\.nii(\.gz)?$")
        folder = pred_dir / case
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if (match := pattern.match(path.name)) and match["method"] != BRAIN_MASK_NAME:
                found.setdefault(match["method"], {})[case] = path
    if not found:
        raise InputError(pred_dir, "no predictions found: expected <case>/<case>_<method>.nii.gz "
                         f"for cases such as {cases[0] if cases else '?'}")
    return found


def read_prediction(path: Path, expected_shape: tuple[int, ...], reference_name: str) -> np.ndarray:
    image = read_image(path)
    array = sitk.GetArrayFromImage(image)
    if array.shape != tuple(expected_shape):
        raise InputError(path, f"has shape {array.shape} but case {reference_name} has "
                         f"{tuple(expected_shape)}: predictions must be on the input's grid")
    return array > 0


def evaluate_predictions(pred_dir: Path, cohort: Cohort, events: EventWriter | None = None,
                         show_progress: bool = True) -> dict[str, Any]:
    """Every method found in ``pred_dir`` on every case of ``cohort`` that has a mask."""
    cohort = cohort.with_masks()
    if not len(cohort):
        raise InputError(None, "no case of the data folder has a mask to evaluate against")
    predictions = find_predictions(pred_dir, cohort.names)
    per_method: dict[str, dict[str, dict[str, float]]] = {m: {} for m in predictions}
    for files in track(cohort.cases, "evaluate", events=events, stage="evaluate",
                       show=show_progress):
        case = read_case(files, require_mask=True)
        brain = case.brain
        for method, paths in predictions.items():
            if files.name in paths:
                pred = case.frame.to_model(read_prediction(
                    paths[files.name], case.input_geometry.shape, files.name), "mask")
                per_method[method][files.name] = segmentation_metrics(
                    pred, case.mask, case.geometry.spacing_zyx, brain)
    report: dict[str, Any] = {"methods": {}}
    for method, per_case in per_method.items():
        missing = [c for c in cohort.names if c not in per_case]
        report["methods"][method] = {**summarise(per_case), "per_case": per_case,
                                     "missing_cases": missing}
    return report


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(report, indent=2, allow_nan=True))
    return path

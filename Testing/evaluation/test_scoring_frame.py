"""``evaluate --pred`` scores label maps on the input's own grid, whatever its orientation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from helpers import synthetic_arrays
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.evaluation.scoring import evaluate_predictions


def test_predictions_on_a_reoriented_grid_are_scored_there(tmp_path: Path) -> None:
    arrays = synthetic_arrays()
    folder = tmp_path / "data" / "c1"
    folder.mkdir(parents=True)
    for key, array in arrays.items():
        sitk.WriteImage(sitk.DICOMOrient(sitk.GetImageFromArray(array), "PIR"),
                        str(folder / f"c1_{key}.nii.gz"))
    prediction = tmp_path / "pred" / "c1" / "c1_mine.nii.gz"
    prediction.parent.mkdir(parents=True)
    truth = sitk.ReadImage(str(folder / "c1_seg.nii.gz"))
    half = sitk.GetArrayFromImage(truth).copy()
    half[:, :, : half.shape[2] // 2] = 0                   # loses part of the tumour
    image = sitk.GetImageFromArray(half)
    image.CopyInformation(truth)
    sitk.WriteImage(image, str(prediction))
    report = evaluate_predictions(tmp_path / "pred", discover_cohort(tmp_path / "data"),
                                  show_progress=False)
    dice = report["methods"]["mine"]["per_case"]["c1"]["volume_dice"]
    expected = 2 * half.sum() / (half.sum() + sitk.GetArrayFromImage(truth).sum())
    assert np.isclose(dice, expected) and 0 < dice < 1

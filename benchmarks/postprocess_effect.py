"""Issue 6's measurement: the anatomical-consistency operations applied to WeakSeg's tumour
masks on the real sample — volume Dice, tumour-slice Dice and HD95 per case, with and without.

Reads the predictions that ``real_cross_validation.py`` left (each case's held-out fold), so
every number is on a case the model did not train on:

    python benchmarks/postprocess_effect.py --work /tmp/cv [--method combined]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-sample"
RESULTS = REPO / "benchmarks" / "results"
OPS = {"none": None, "largest": "largest", "tumour:3": "tumour:3",
       "tumour:3,largest": "tumour:3,largest", "min_volume:500,fill_holes": "min_volume:500,fill_holes"}
REPORTED = ("volume_dice", "tumour_slice_dice", "hd95_mm")


def slice_scores(path: Path) -> np.ndarray:
    with path.open() as handle:
        return np.array([float(r["classifier_score"]) for r in csv.DictReader(handle)], np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--method", default="combined")
    parser.add_argument("--result", type=Path, default=RESULTS / "postprocess_effect.json")
    args = parser.parse_args()
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.data.reader import read_case
    from WeakSegLib.evaluation.metrics import segmentation_metrics, summarise
    from WeakSegLib.postprocess.ops import apply_ops

    folds = json.loads((args.work / "folds.json").read_text())
    cohort = discover_cohort(DATA)
    per_ops: dict[str, dict[str, dict[str, float]]] = {name: {} for name in OPS}
    for k, fold in sorted(folds.items()):
        pred_dir = args.work / f"fold{k}" / "report" / "predictions"
        for name in fold["held_out"]:
            case = read_case(cohort.select([name]).cases[0], require_mask=True)
            labels = sitk.GetArrayFromImage(sitk.ReadImage(
                str(pred_dir / name / f"{name}_{args.method}.nii.gz"))) > 0
            scores = slice_scores(pred_dir / name / f"{name}_slices.csv")
            for label, ops in OPS.items():
                mask = labels if ops is None else apply_ops(
                    labels, ops, spacing=case.geometry.spacing_zyx, brain=case.brain,
                    slice_scores=scores)
                metrics = segmentation_metrics(mask, case.mask, case.geometry.spacing_zyx,
                                               case.brain)
                per_ops[label][name] = {m: metrics[m] for m in REPORTED}
    result = {"machine": describe_machine(), "method": args.method, "ops": OPS,
              "per_case": per_ops,
              "summary": {label: {m: v for m, v in summarise(cases).items()
                                  if m.split("_sd")[0] in REPORTED or m == "n_cases"}
                          for label, cases in per_ops.items()}}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2))
    print(f"{'ops':<28}" + "".join(f"{m:>22}" for m in REPORTED))
    for label, summary in result["summary"].items():
        print(f"{label:<28}" + "".join(f"{summary[m]:>14.3f} ± {summary[m + '_sd']:<5.3f}"
                                       for m in REPORTED))


if __name__ == "__main__":
    main()

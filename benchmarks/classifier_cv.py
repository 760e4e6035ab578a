"""Issue 12: the slice classifier alone, on cohort_cv.py's folds — held-out AUC per fold for
a classifier setting, without training the rest of the pipeline.

Per fold, the classifier stage trains into ``<work>/fold<k>/classifier_<tag>/`` from the fold
run's cached training slices (``data/slices.npz``: same patients, same preprocessing), with the
fast profile plus ``--set`` overrides; its held-out AUC is computed as ``evaluate`` computes it
(per slice the highest patch score of the segment path, over the brain slices of the fold's
four test patients, labels from their masks).

    python benchmarks/classifier_cv.py --work /work/cv/run1 --tag budget240 \\
        --set classifier.time_budget_s=240 --set classifier.epochs=24 [--folds 0,3]

Writes benchmarks/results/classifier_cv_<tag>.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cohort_cv import DATA  # noqa: E402
from machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def held_out_auc(run: Path, cases, profile) -> dict:
    """The classifier's AUC over the brain slices of ``cases`` (evaluate's definition)."""
    import torch

    from WeakSegLib.data.brain_mask import attach_brain_mask
    from WeakSegLib.data.reader import read_case
    from WeakSegLib.evaluation.metrics import classifier_metrics
    from WeakSegLib.inference.bundle import Bundle
    from WeakSegLib.inference.evaluate import classifier_slices
    from WeakSegLib.inference.volume import segment_case
    from WeakSegLib.manifest import Manifest
    from WeakSegLib.stages.classifier import load_classifier

    device = torch.device("cpu")
    manifest = Manifest.load(run)
    bundle = Bundle(run, profile, list(manifest.data["channels"]), device,
                    load_classifier(run, device), None)
    labels, scores, per_case = [], [], {}
    for files in cases:
        case = read_case(files, data=profile.data)
        attach_brain_mask(case, profile.data, device)
        y, s = classifier_slices(case, segment_case(bundle, case, []).slice_scores,
                                 profile.data.erode)
        labels.append(y)
        scores.append(s)
        per_case[files.name] = classifier_metrics(y, s)
    return {**classifier_metrics(np.concatenate(labels), np.concatenate(scores)),
            "per_case": per_case}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="cohort_cv.py --work folder")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--folds", help="comma-separated fold numbers (default: all)")
    args = parser.parse_args()
    from WeakSegLib.config import apply_overrides, get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.pipeline import train

    folds = json.loads((args.work / "folds.json").read_text())
    chosen = args.folds.split(",") if args.folds else sorted(folds)
    cohort = discover_cohort(DATA)
    profile = apply_overrides(get_profile("fast"), args.set)
    out_path = RESULTS / f"classifier_cv_{args.tag}.json"
    result: dict = {"machine": describe_machine(), "settings": args.set, "folds": {}}
    for k in chosen:
        fold = folds[k]
        base = args.work / f"fold{k}" / "run"
        run = args.work / f"fold{k}" / f"classifier_{args.tag}"
        if not (run / "manifest.json").is_file():
            # the fold's manifest and slice cache, no stage done: only the classifier trains
            (run / "data").mkdir(parents=True)
            shutil.copy2(base / "data" / "slices.npz", run / "data" / "slices.npz")
            manifest = json.loads((base / "manifest.json").read_text())
            manifest["stages"] = {}
            (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
        started = time.monotonic()
        train(cohort.select(fold["train"] + fold["inner_val"]), run, profile, device="cpu",
              resume=True, stages=["classifier"], val_cases=fold["inner_val"],
              show_progress=False)
        seconds = time.monotonic() - started
        metrics = json.loads((run / "classifier" / "metrics.json").read_text())
        held = held_out_auc(run, cohort.select(fold["test"]).cases, profile)
        result["folds"][k] = {"held_out": held, "inner_val": metrics["best"].get("val"),
                              "epochs": len(metrics["history"]),
                              "train_seconds": round(seconds, 1),
                              "cv_held_out_auc": fold.get("classifier_held_out", {}).get("auc")}
        print(f"fold {k}: held-out AUC {held['auc']:.3f} (sens {held['sensitivity']:.2f}, "
              f"spec {held['specificity']:.2f}), inner-val "
              f"{(metrics['best'].get('val') or {}).get('auc', float('nan')):.3f}, "
              f"{len(metrics['history'])} epochs", flush=True)
        aucs = [f["held_out"]["auc"] for f in result["folds"].values()]
        result["summary"] = {"mean_auc": float(np.mean(aucs)), "min_auc": float(np.min(aucs)),
                             "folds_at_or_above_0.90": int(sum(a >= 0.90 for a in aucs))}
        out_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()

"""Retrain only the self-training stage of cohort_cv.py's fold runs with today's code/settings
(on a copy; the original runs stay as they are) and score it on the same held-out patients.

    python benchmarks/selftrain_rerun.py --work /work/cv/run1 --folds 3 --tag guard [--set k=v]

Also says, for every fold, which pseudo-mask sources today's rule keeps. Writes
benchmarks/results/selftrain_rerun_<tag>.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cohort_cv import DATA  # noqa: E402
from machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--folds", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    from WeakSegLib.config import apply_overrides, profile_from_dict
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.data.slices import SliceSet
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.evaluate import evaluate_model
    from WeakSegLib.pipeline import train
    from WeakSegLib.stages.run_folder import load_probabilities

    folds = json.loads((args.work / "folds.json").read_text())
    cohort = discover_cohort(DATA)
    out: dict = {"machine": describe_machine(), "settings": args.set, "folds": {}}
    for k, fold in sorted(folds.items()):
        run = args.work / f"fold{k}" / "run"
        manifest = json.loads((run / "manifest.json").read_text())
        profile = apply_overrides(profile_from_dict(manifest["config"]), args.set)
        cfg = profile.selftrain
        data = SliceSet.load(run / "data" / "slices.npz").for_cases(manifest["split"]["train"])
        tumour = data.labels == 1
        kept = {}
        for name in cfg.sources:
            S = load_probabilities(run, name)["train"]
            fraction = float((S[tumour] > cfg.threshold).reshape(int(tumour.sum()), -1)
                             .any(axis=1).mean())
            kept[name] = {"segmented_fraction": fraction,
                          "kept": fraction >= cfg.min_segmented_fraction}
        entry = {"sources": kept}
        if k in args.folds.split(","):
            copy = args.work / f"fold{k}" / f"run_{args.tag}"
            if not copy.exists():
                # the supervised reference shares the selftrain settings: left out of the copy
                shutil.copytree(run, copy, ignore=shutil.ignore_patterns("self_train",
                                                                         "supervised"))
                data_manifest = json.loads((copy / "manifest.json").read_text())
                for stage in ("self_train", "supervised"):
                    data_manifest["stages"].pop(stage, None)
                (copy / "manifest.json").write_text(json.dumps(data_manifest, indent=2))
            train(cohort.select(fold["train"] + fold["inner_val"]), copy, profile, device="cpu",
                  resume=True, stages=["self_train"], val_cases=fold["inner_val"])
            report = evaluate_model(load_bundle(copy, "cpu"), cohort.select(fold["test"]),
                                    args.work / f"fold{k}" / f"report_{args.tag}",
                                    overwrite=True)
            entry["before"] = {m: fold["methods"][m] for m in ("self_trained", "self_trained_pp")}
            entry["after"] = {m: report["methods"][m]["per_case"]
                              for m in ("self_trained", "self_trained_pp")}
            for m in ("self_trained", "self_trained_pp"):
                b = np.mean([v["volume_dice"] for v in entry["before"][m].values()])
                a = np.mean([v["volume_dice"] for v in entry["after"][m].values()])
                print(f"fold {k} {m}: volume Dice {b:.3f} → {a:.3f}")
        out["folds"][k] = entry
        print(f"fold {k} sources: " + ", ".join(
            f"{n} {v['segmented_fraction']:.2f}{'' if v['kept'] else ' (left out)'}"
            for n, v in kept.items()))
    out["summary"] = _summary(out["folds"], folds)
    if out["summary"]:
        print(json.dumps(out["summary"], indent=1))
    (RESULTS / f"selftrain_rerun_{args.tag}.json").write_text(json.dumps(out, indent=2))


def _summary(entries: dict, folds: dict) -> dict:
    """Over every held-out patient of the rerun folds: mean [95 % CI] before and after, the
    paired change, and after − flair_threshold on the same patients."""
    from cohort_cv import bootstrap_ci

    summary = {}
    for method in ("self_trained", "self_trained_pp"):
        before, after, flair = [], [], []
        for k, entry in entries.items():
            if "after" not in entry:
                continue
            for case, values in entry["after"][method].items():
                after.append(values["volume_dice"])
                before.append(entry["before"][method][case]["volume_dice"])
                flair.append(folds[k]["methods"]["flair_threshold"][case]["volume_dice"])
        if not after:
            continue
        b, a, f = np.array(before), np.array(after), np.array(flair)
        summary[method] = {"n": len(a), "before": [float(b.mean()), *bootstrap_ci(b)],
                           "after": [float(a.mean()), *bootstrap_ci(a)],
                           "delta": [float((a - b).mean()), *bootstrap_ci(a - b)],
                           "after_minus_flair_threshold": [float((a - f).mean()),
                                                           *bootstrap_ci(a - f)]}
    return summary


if __name__ == "__main__":
    main()

"""Retrain only the self-training stage of cohort_cv.py's fold runs with today's code/settings
(on a copy; the original runs stay as they are) and score it on the same held-out patients.

    python benchmarks/selftrain_rerun.py --work /work/cv/run1 --folds 3 --tag guard [--set k=v]

Also says, for every fold, which pseudo-mask sources today's rule keeps. Writes
benchmarks/results/selftrain_rerun_<tag>.json. Two reruns compared per patient afterwards:

    python benchmarks/selftrain_rerun.py --work /work/cv/run1 --folds 0,1,2,3,4 \
        --tag flair_sd1 --against guard
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
    parser.add_argument("--against", metavar="TAG",
                        help="only compare: the rerun --tag against the rerun TAG (a fold "
                             "without run TAG counts with the CV's own run), per patient, "
                             "volume Dice, tumour-slice Dice and HD95; nothing is trained")
    args = parser.parse_args()
    if args.against:
        compare_reruns(args.work, args.folds.split(","), args.tag, args.against)
        return
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


def _report_metrics(work: Path, fold: str, tag: str | None) -> dict:
    """Per method and case the metrics of a fold's evaluate report: the rerun ``tag``'s when
    it exists, else the CV's own (``report/``)."""
    folder = work / f"fold{fold}" / (f"report_{tag}" if tag else "report")
    if tag and not (folder / "metrics.json").is_file():
        folder = work / f"fold{fold}" / "report"
    return json.loads((folder / "metrics.json").read_text())["methods"]


def compare_reruns(work: Path, folds: list[str], tag: str, against: str) -> dict:
    """Paired comparison of two reruns over every held-out patient of ``folds``: means with
    95 % intervals of volume Dice, tumour-slice Dice and HD95, and the paired change; the
    supervised reference and flair_threshold from the CV's own reports beside them. Writes
    benchmarks/results/selftrain_rerun_<tag>_vs_<against>.json."""
    from cohort_cv import bootstrap_ci

    rows: dict[str, dict[str, list[float]]] = {}
    cases: list[str] = []
    for fold in folds:
        sources = {"after": _report_metrics(work, fold, tag),
                   "before": _report_metrics(work, fold, against),
                   "cv": _report_metrics(work, fold, None)}
        for case in sources["after"]["self_trained_pp"]["per_case"]:
            cases.append(case)
            for key, method, source in (("after", "self_trained_pp", "after"),
                                        ("before", "self_trained_pp", "before"),
                                        ("supervised_reference", "supervised_reference", "cv"),
                                        ("flair_threshold", "flair_threshold", "cv")):
                values = sources[source][method]["per_case"][case]
                for metric in ("volume_dice", "tumour_slice_dice", "hd95_mm"):
                    rows.setdefault(key, {}).setdefault(metric, []).append(values[metric])
    out: dict = {"machine": describe_machine(), "tag": tag, "against": against,
                 "folds": folds, "method": "self_trained_pp", "summary": {}}
    for key, metrics in rows.items():
        out["summary"][key] = {m: [float(np.nanmean(v)), *bootstrap_ci(v)]
                               for m, v in metrics.items()}
    for metric in ("volume_dice", "tumour_slice_dice", "hd95_mm"):
        a, b = np.array(rows["after"][metric]), np.array(rows["before"][metric])
        f = np.array(rows["flair_threshold"][metric])
        out["summary"][f"delta_{metric}"] = [float(np.nanmean(a - b)), *bootstrap_ci(a - b)]
        out["summary"][f"after_minus_flair_{metric}"] = [float(np.nanmean(a - f)),
                                                        *bootstrap_ci(a - f)]
    out["per_patient_volume_dice"] = {k: dict(zip(cases, v["volume_dice"]))
                                      for k, v in rows.items()}
    (RESULTS / f"selftrain_rerun_{tag}_vs_{against}.json").write_text(json.dumps(out, indent=2))
    for key, value in out["summary"].items():
        print(key, {m: [round(x, 3) for x in v] for m, v in value.items()}
              if isinstance(value, dict) else [round(x, 3) for x in value])
    return out


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

"""Re-evaluate the runs of benchmarks/cohort_cv.py with other *inference* settings (test-time
flips, gate, post-processing, review scores) on the same held-out patients, without training
again; reports each method's per-patient change with a 95 % bootstrap interval.

    python benchmarks/cv_reevaluate.py --work /work/cv/run1 --tag flips \\
        --set inference.test_time_flips=self_train [--methods self_trained,self_trained_pp]

Writes <work>/reeval_<tag>.json and benchmarks/results/cv_reevaluate_<tag>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cohort_cv import DATA, bootstrap_ci  # noqa: E402
from machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="inference.FIELD=VALUE")
    parser.add_argument("--methods", default="self_trained,self_trained_pp")
    parser.add_argument("--folds", help="comma-separated fold numbers (default: all)")
    parser.add_argument("--run", default="run", help="each fold's run folder to load: 'run' "
                        "(the CV's), or a rerun's (e.g. run_flair_sd1 of selftrain_rerun.py)")
    parser.add_argument("--slices", type=Path, help="also write each patient's per-slice "
                        "statistics here, as cohort_cv.py does (review_priority.py --slices)")
    args = parser.parse_args()
    from WeakSegLib.config import apply_overrides
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.evaluate import evaluate_model

    if any(not s.startswith("inference.") for s in args.set):
        sys.exit("cv_reevaluate: only inference.* settings can change without training again")
    folds = json.loads((args.work / "folds.json").read_text())
    cohort = discover_cohort(DATA)
    methods = [m.strip() for m in args.methods.split(",")]
    before, after = {}, {}
    wanted = set(args.folds.split(",")) if args.folds else set(folds)
    for k, fold in sorted(folds.items()):
        if k not in wanted:
            continue
        bundle = load_bundle(args.work / f"fold{k}" / args.run, "cpu")
        bundle.profile = apply_overrides(bundle.profile, args.set)
        report = evaluate_model(bundle, cohort.select(fold["test"]),
                                args.work / f"fold{k}" / f"reeval_{args.tag}", overwrite=True,
                                on_case=_slice_writer(args.slices) if args.slices else None)
        for m in methods:
            for case, values in report["methods"].get(m, {}).get("per_case", {}).items():
                after.setdefault(m, {})[case] = values["volume_dice"]
                before.setdefault(m, {})[case] = fold["methods"][m][case]["volume_dice"]
    summary = {}
    for m in methods:
        cases = sorted(after.get(m, {}))
        delta = [after[m][c] - before[m][c] for c in cases]
        low, high = bootstrap_ci(delta)
        summary[m] = {"before": float(np.mean([before[m][c] for c in cases])),
                      "after": float(np.mean([after[m][c] for c in cases])),
                      "delta": float(np.mean(delta)), "delta_ci95": [low, high], "n": len(cases),
                      "per_patient_after": after[m]}
        print(f"{m:<20} volume Dice {summary[m]['before']:.3f} → {summary[m]['after']:.3f} "
              f"(Δ {summary[m]['delta']:+.3f} [{low:+.3f}, {high:+.3f}], n = {len(cases)})")
    result = {"machine": describe_machine(), "settings": args.set, "summary": summary}
    for path in (args.work / f"reeval_{args.tag}.json", RESULTS / f"cv_reevaluate_{args.tag}.json"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))


def _slice_writer(folder: Path):
    """evaluate's on_case hook writing cohort_cv.py's per-slice statistics of each patient."""
    from cohort_cv import write_slice_statistics

    folder.mkdir(parents=True, exist_ok=True)
    return lambda case, result: write_slice_statistics(folder, case, result)


if __name__ == "__main__":
    main()

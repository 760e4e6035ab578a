"""The review loop of issue 13, simulated end to end on cohort_cv.py's held-out patients.

Per fold, the four held-out patients are split in two pairs. A reviewer "corrects" the 10
highest-priority slices (``review_priority`` of the segment table) of each patient of one pair:
truth replaces the default method's prediction on those slices. The retrained model is
evaluated on the other pair, which nobody reviewed and no model saw; then the pairs swap.
"Before" is the weak model's default output (self_trained + post-processing) on the same
patients. ``--reviewed training`` asks how many reviewed patients a gain needs: the reviewer
corrects the top slices of every patient the fold's model was trained on (16, from their slice
labels), and the refined model is scored on all four held-out patients.

    python benchmarks/review_loop.py --work /work/cv/run1 --predictions reeval_same_weights_new_code \
        [--run run_flair_sd1 --predictions reeval_flair_sd1_slices] [--folds 0,1] \
        [--variant refine|review|review+accepted|review+pseudo] [--out ...]

``refine`` (what the panel runs for a weak model): ``train --mode mixed --review RECORDS.json
--base FOLD_RUN`` on the reviewed pair — the fold's self-trained segmenter fine-tuned with the
corrected slices, its own output on the reviewed patients' other slices and on its training
slices; scored with the default method, before and after, by the same code path.
The other variants train seed 001's U-Net from scratch (``train --mode mixed --review``) on
the fold's training patients plus the reviewed pair: ``review`` as it stands,
``review+accepted`` adds the reviewed patients' unflagged slices as accepted annotations
(``--accepted-from``), ``review+pseudo`` segments the fold's training patients too with the
weak model, so every unflagged segmented slice of the training cohort joins as an accepted
annotation. Needs the CV work folder (folds.json, the fold runs and their evaluation
predictions).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cohort_cv import DATA, bootstrap_ci  # noqa: E402
from machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
REVIEWED_SLICES = 10


def reviewed_label_map(pred_dir: Path, case, method: str, n: int, out: Path,
                       perfect: bool = True) -> list[int]:
    """Write ``case``'s prediction with truth on its ``n`` highest-priority slices (``perfect``;
    otherwise the prediction unchanged: the control, a reviewer who changes nothing); return
    the slices."""
    with (pred_dir / case.name / f"{case.name}_slices.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    top = sorted(rows, key=lambda r: -float(r["review_priority"]))[:n]
    slices = sorted(int(r["slice"]) for r in top)
    prediction = sitk.ReadImage(str(pred_dir / case.name / f"{case.name}_{method}.nii.gz"))
    labels = sitk.GetArrayFromImage(prediction).astype(np.uint8)
    truth = (sitk.GetArrayFromImage(sitk.ReadImage(str(case.mask))) > 0).astype(np.uint8)
    if perfect:
        labels[slices] = truth[slices]
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(prediction)
    sitk.WriteImage(image, str(out), useCompression=True)
    return slices


def written_dice(pred_dir: Path, case, method: str) -> float:
    """Volume Dice of a written label map against the case's mask (same grid)."""
    from WeakSegLib.evaluation.metrics import volume_dice

    labels = sitk.GetArrayFromImage(sitk.ReadImage(
        str(pred_dir / case.name / f"{case.name}_{method}.nii.gz")))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case.mask)))
    return volume_dice(labels > 0, truth > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="cohort_cv.py --work folder")
    parser.add_argument("--predictions", default="report",
                        help="sub-folder of each fold holding the evaluation's predictions")
    parser.add_argument("--method", default="self_trained_pp", help="the reviewed output")
    parser.add_argument("--run", default="run", help="each fold's run folder: 'run' (the CV's) "
                        "or a rerun's (run_flair_sd1 of selftrain_rerun.py)")
    parser.add_argument("--folds", default=None, help="comma-separated fold numbers (all)")
    parser.add_argument("--variant", default="refine",
                        choices=["refine", "review", "review+accepted", "review+pseudo"])
    parser.add_argument("--reviewer", choices=["perfect", "none"], default="perfect",
                        help="none: the control — the reviewed slices keep the prediction, so "
                        "only the extra training on the model's own output remains")
    parser.add_argument("--reviewed", choices=["pair", "training"], default="pair",
                        help="who is reviewed (refine only): 'pair' — two held-out patients, "
                             "the other two evaluated, then swapped; 'training' — every "
                             "training patient of the fold (the cohort the radiologist gave "
                             "slice labels for), all four held-out patients evaluated")
    parser.add_argument("--set", action="append", default=[], help="profile overrides")
    parser.add_argument("--out", type=Path, default=RESULTS / "review_loop.json")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="work folder (a temporary one by default); the weak model's "
                             "segmentations of each fold are kept there and reused")
    args = parser.parse_args()

    import torch

    from WeakSegLib.config import apply_overrides, get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.evaluate import evaluate_model
    from WeakSegLib.inference.segment import segment_cohort
    from WeakSegLib.pipeline import train_mixed_cohort

    def default_dice(run: Path, names: list[str]) -> dict[str, float]:
        """Volume Dice of the run's default method (with its post-processing) per patient."""
        from WeakSegLib.data.reader import read_case
        from WeakSegLib.evaluation.metrics import volume_dice

        bundle = load_bundle(run, "cpu")
        method = bundle.profile.inference.default_method
        chosen = cohort.select(names)
        results = segment_cohort(bundle, chosen, None, [method], show_progress=False)
        return {r.name: volume_dice(r.labels[method] > 0,
                                    read_case(files, data=bundle.profile.data).mask > 0)
                for r, files in zip(results, chosen.cases)}

    torch.set_num_threads(1)
    folds = json.loads((args.work / "folds.json").read_text())
    chosen = args.folds.split(",") if args.folds else sorted(folds)
    cohort = discover_cohort(DATA)
    profile = apply_overrides(get_profile("fast"), args.set)
    result: dict = {"machine": describe_machine(), "variant": args.variant,
                    "reviewer": args.reviewer, "reviewed": args.reviewed,
                    "reviewed_slices_per_case": REVIEWED_SLICES, "method": args.method,
                    "settings": args.set, "per_case": {}, "runs": []}
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="review_loop_"))
    scratch.mkdir(parents=True, exist_ok=True)
    for k in chosen:
        fold = folds[k]
        pred_dir = args.work / f"fold{k}" / args.predictions / "predictions"
        before_all = json.loads((args.work / f"fold{k}" / args.predictions / "metrics.json")
                                .read_text())["methods"][args.method]["per_case"]
        test = list(fold["test"])
        reviewed_method = args.method
        if args.variant == "refine":
            # what the user sees today: the fold's model segments its test patients with
            # today's code (default method and post-processing, today's review priority);
            # the reviewer corrects that, and "before" is its Dice
            pred_dir = scratch / f"fold{k}_segment_test"
            weak = load_bundle(args.work / f"fold{k}" / args.run, "cpu")
            reviewed_method = weak.profile.inference.default_method
            if not (pred_dir / "weakseg_segment.json").is_file():
                segment_cohort(weak, cohort.select(test), pred_dir, [reviewed_method],
                               show_progress=False)
            before_all = {name: {"volume_dice": written_dice(pred_dir, files, reviewed_method)}
                          for name, files in zip(test, cohort.select(test).cases)}
        accepted = pred_dir if args.variant == "review+accepted" else None
        if args.variant == "review+pseudo":
            accepted = scratch / f"fold{k}_segment"
            weak = load_bundle(args.work / f"fold{k}" / args.run, "cpu")
            if not (accepted / "weakseg_segment.json").is_file():
                segment_cohort(weak, cohort.select(list(fold["train"]) + list(fold["inner_val"])
                                                   + test), accepted,
                               [weak.profile.inference.default_method], show_progress=False)
        review_dir = pred_dir
        pairs = ((test[:2], test[2:]), (test[2:], test[:2]))
        if args.reviewed == "training":
            if args.variant != "refine":
                parser.error("--reviewed training needs --variant refine")
            # the weak model segments the patients it learned from (their slice labels only);
            # the reviewer corrects each one's top slices; all four test patients are scored
            review_dir = scratch / f"fold{k}_segment_train"
            trained_on = list(fold["train"]) + list(fold["inner_val"])
            if not (review_dir / "weakseg_segment.json").is_file():
                segment_cohort(weak, cohort.select(trained_on), review_dir, [reviewed_method],
                               show_progress=True)
            pairs = ((trained_on, test),)
        for reviewed, held in pairs:
            tag = f"fold{k}_review_" + ("training" if args.reviewed == "training"
                                        else "+".join(reviewed))
            work = scratch / f"{tag}_{args.variant}_{len(list(scratch.glob(tag + '*')))}"
            (work / "reviews").mkdir(parents=True)
            records = []
            for case in cohort.select(reviewed):
                map_path = work / "reviews" / f"{case.name}_reviewed.nii.gz"
                for z in reviewed_label_map(review_dir, case, reviewed_method, REVIEWED_SLICES,
                                            map_path, perfect=args.reviewer == "perfect"):
                    records.append({"case": case.name, "slice": z, "status": "corrected",
                                    "reviewer": "simulated", "time": "2026-11-30T00:00:00+00:00",
                                    "mask_path": str(map_path.relative_to(work))})
            records_path = work / "records.json"
            records_path.write_text(json.dumps(records, indent=1))
            start = time.perf_counter()
            if args.variant == "refine":
                base_run = args.work / f"fold{k}" / args.run
                run = train_mixed_cohort(cohort.select(reviewed), work / "run", profile,
                                         review_records=records_path, base=base_run,
                                         show_progress=False, device="cpu")
                seconds = time.perf_counter() - start
                before = {n: before_all[n]["volume_dice"] for n in held}
                after = default_dice(work / "run", held)
            else:
                train_cohort = cohort.select(list(fold["train"]) + list(fold["inner_val"])
                                             + reviewed)
                run = train_mixed_cohort(
                    train_cohort, work / "run", profile, review_records=records_path,
                    accepted_from=accepted, show_progress=False, device="cpu")
                seconds = time.perf_counter() - start
                report = evaluate_model(load_bundle(work / "run", "cpu"), cohort.select(held),
                                        work / "eval", show_progress=False)
                before = {n: before_all[n]["volume_dice"] for n in held}
                after = {n: v["volume_dice"]
                         for n, v in report["methods"]["mixed"]["per_case"].items()}
            for name in held:
                result["per_case"][f"{name}@{tag}"] = {
                    "fold": int(k), "case": name, "before": before[name], "after": after[name]}
            result["runs"].append({"tag": tag, "train_seconds": round(seconds, 1),
                                   "epochs_run": run.metrics.get("epochs_run"),
                                   "composition": run.metrics.get("composition"),
                                   **{key: run.metrics[key] for key in (
                                       "reviewed_tumour_slice_dice_before",
                                       "reviewed_tumour_slice_dice_after")
                                      if key in run.metrics}})
            print(tag, {n: (round(before[n], 3), round(after[n], 3)) for n in held},
                  flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            _summarise(result)
            args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


def _summarise(result: dict) -> None:
    before = np.array([v["before"] for v in result["per_case"].values()])
    after = np.array([v["after"] for v in result["per_case"].values()])
    result["summary"] = {
        "n": int(len(before)),
        "before": {"mean": float(before.mean()), "ci95": bootstrap_ci(before)},
        "after": {"mean": float(after.mean()), "ci95": bootstrap_ci(after)},
        "delta": {"mean": float((after - before).mean()), "ci95": bootstrap_ci(after - before)},
    }


if __name__ == "__main__":
    main()

"""``weakseg evaluate --model``: every method of a run plus the baselines on a cohort with
masks — metrics.json (foundation form + filtering + classifier), predictions and the HTML report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..baselines import flair_threshold
from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.labels import labels_from_mask
from ..data.brain_mask import attach_brain_mask
from ..data.reader import CaseVolumes, read_case, write_label_map
from ..evaluation.scoring import evaluate_predictions, write_report
from ..events import EventWriter
from ..evaluation.metrics import classifier_metrics, per_slice_dice
from ..progress import track
from ..config import InferenceConfig
from ..evaluation.review import CaseSliceCounts, review_curves
from .bundle import Bundle, default_method
from .review import candidate_scores, review_priority
from ..postprocess.ops import apply_ops
from .outputs import case_outputs, write_case
from .segment import resolve_postprocess
from .volume import CaseSegmentation, segment_case

BASELINES = ("seed_only", "l1_baseline", "flair_threshold", "supervised_reference")
STEPS = ("initial", "under", "over", "combined", "combined_score_weight", "combined_pp",
         "self_trained", "self_trained_pp")
#: methods also scored after the profile's default post-processing, as "<method>_pp"
POSTPROCESS_METHODS = ("combined", "self_trained")


def _slice_records(result: CaseSegmentation, truth: np.ndarray, brain_slices: np.ndarray
                   ) -> dict[str, dict[str, np.ndarray]]:
    """Per method: Dice, D and truth presence for every brain slice of the case."""
    tumour = truth.any(axis=(1, 2))[brain_slices]
    out = {}
    for method, labels in result.labels.items():
        if method not in result.difference:     # l1_baseline, combined_pp: no own score
            continue
        out[method] = {"dice": per_slice_dice(labels, truth)[brain_slices],
                       "difference": result.difference[method][brain_slices],
                       "tumour": tumour}
    return out


def filtering_table(records: list[dict[str, np.ndarray]], thresholds: tuple[float, ...]
                    ) -> list[dict[str, float]]:
    """Seed 000 Table 6 from per-slice records pooled over cases: at each threshold t the
    slices whose segmentation scores D < t are removed (sent for review). ``removed_fraction``
    is of the slices with a non-empty segmentation; Dice means are over slices."""
    dice = np.concatenate([r["dice"] for r in records])
    difference = np.concatenate([r["difference"] for r in records])
    tumour = np.concatenate([r["tumour"] for r in records]).astype(bool)
    segmented = ~np.isnan(difference)

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else float("nan")

    table = []
    for t in thresholds:
        removed = segmented & (np.nan_to_num(difference, nan=np.inf) < t)
        kept = ~removed
        table.append({"threshold": float(t),
                      "removed_fraction": float(removed.sum() / segmented.sum())
                      if segmented.any() else 0.0,
                      "kept_tumour_slice_dice": mean(dice[kept & tumour]),
                      "kept_slice_dice": mean(dice[kept]),
                      "removed_tumour_slice_dice": mean(dice[removed & tumour])})
    return table


def _review_scores(result: CaseSegmentation, method: str, cfg: InferenceConfig
                   ) -> dict[str, np.ndarray]:
    """Every candidate review score and the default review priority of ``method``."""
    stats = result.review_stats(method)
    scores = candidate_scores(stats)
    priority = review_priority(stats, cfg.review_scores, cfg.review_flag_fraction, scores)
    return {**scores, "review_priority": priority}


def _examples(result: CaseSegmentation, truth: np.ndarray, method: str) -> list[dict[str, Any]]:
    """The best, median and worst tumour slice of the case for the montage, on the input grid
    with the preprocessed intensities (so image, variant and |x − v| share one scale)."""
    if method not in result.labels:
        return []
    tumour = np.flatnonzero(truth.any(axis=(1, 2)))
    if not len(tumour):
        return []
    prediction = result.labels[method]
    dice = per_slice_dice(prediction, truth)[tumour]
    order = np.argsort(dice, kind="stable")
    flair = result.mapping.to_original(result.flair, kind="probability")
    variant = result.mapping.to_original(result.variant, kind="probability")
    examples = []
    for rank, i in (("worst", order[0]), ("median", order[len(order) // 2]),
                    ("best", order[-1])):
        z = int(tumour[i])
        examples.append({"rank": rank, "case": result.name, "slice": z, "dice": float(dice[i]),
                         "image": flair[z], "truth": truth[z], "prediction": prediction[z] > 0,
                         "variant": variant[z], "difference": np.abs(flair[z] - variant[z])})
    return examples


def _pick_examples(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Global best, median and worst among the per-case candidates."""
    if not candidates:
        return []
    ordered = sorted(candidates, key=lambda e: e["dice"])
    picks = [("worst", ordered[0]), ("median", ordered[len(ordered) // 2]),
             ("best", ordered[-1])]
    return [{**example, "rank": rank} for rank, example in picks]


def classifier_slices(case: CaseVolumes, slice_scores: np.ndarray, erode: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(slice labels from the mask, classifier scores) on the brain slices of a masked case:
    what the classifier's AUC is computed over, here and in benchmarks/classifier_cv.py."""
    brain = case.brain.any(axis=(1, 2))
    return labels_from_mask(case.mask > 0, erode)[brain], np.asarray(slice_scores)[brain]


def evaluate_model(bundle: Bundle, cohort: Cohort, out_dir: Path, overwrite: bool = False,
                   events: EventWriter | None = None, show_progress: bool = True,
                   on_case: Callable[[CaseVolumes, CaseSegmentation], None] | None = None,
                   brain_mask: str | None = None) -> dict[str, Any]:
    """Segment every masked case with every method, write predictions, metrics and report.
    ``on_case(case, result)`` sees each case's volumes and segmentation while they are in
    memory (experiments collect per-slice figures there without segmenting twice).
    ``brain_mask``: auto | on | off (default: the bundle's ``data.brain_mask``); the
    flair_threshold baseline looks inside it too."""
    events = events or EventWriter()
    cohort = cohort.with_masks()
    if not len(cohort):
        raise InputError(None, "no case of the data folder has a mask to evaluate against")
    out_dir = Path(out_dir)
    if (out_dir / "metrics.json").exists() and not overwrite:
        raise InputError(out_dir / "metrics.json", "already exists; choose another --out or "
                         "pass --overwrite")
    pred_dir = out_dir / "predictions"
    methods = bundle.methods
    cfg = bundle.profile
    ops = resolve_postprocess(bundle, None)
    records: dict[str, list[dict[str, np.ndarray]]] = {}
    labels_all, scores_all, candidates, seconds = [], [], [], {}
    shown = default_method(bundle)
    # the table and the review follow what `segment` writes by default (post-processed)
    review_method = f"{shown}_pp" if ops and shown in POSTPROCESS_METHODS else shown
    review_counts: list[CaseSliceCounts] = []
    review_scores: dict[str, list[np.ndarray]] = {}
    for files in track(cohort.cases, "evaluate", events=events, stage="evaluate", unit="case",
                       show=show_progress):
        case = read_case(files, require_mask=True, data=cfg.data)
        attach_brain_mask(case, cfg.data, bundle.device, events, mode=brain_mask)
        result = segment_case(bundle, case, methods)
        seconds[case.name] = result.seconds
        for method in POSTPROCESS_METHODS:      # what `segment` writes by default
            if ops and method in result.labels:
                result.labels[f"{method}_pp"] = apply_ops(
                    result.labels[method], ops, spacing=case.geometry.spacing_zyx,
                    brain=case.brain, slice_scores=result.slice_scores).astype(np.uint8)
        write_case(pred_dir, result, list(result.labels), review_method, cfg.inference,
                   overwrite=True)
        write_label_map(case_outputs(pred_dir, case.name, "flair_threshold")["labelmap"],
                        case.to_input(flair_threshold(case, cfg.baseline)), case.input_geometry,
                        overwrite=True)
        truth = case.mask > 0
        brain_slices = case.brain.any(axis=(1, 2))
        for method, record in _slice_records(result, truth, brain_slices).items():
            records.setdefault(method, []).append(record)
        slice_labels, slice_scores = classifier_slices(case, result.slice_scores, cfg.data.erode)
        labels_all.append(slice_labels)
        scores_all.append(slice_scores)
        candidates.extend(_examples(result, truth, shown))
        review_counts.append(CaseSliceCounts.from_labels(result.labels[review_method], truth,
                                                         brain_slices))
        for name, values in _review_scores(result, review_method, cfg.inference).items():
            review_scores.setdefault(name, []).append(values)
        if on_case is not None:
            on_case(case, result)
    report = evaluate_predictions(pred_dir, cohort, events=events, show_progress=show_progress)
    report["filtering"] = {m: filtering_table(r, cfg.inference.filtering_thresholds)
                           for m, r in records.items() if m != "l1_baseline"}
    report["classifier"] = classifier_metrics(np.concatenate(labels_all),
                                              np.concatenate(scores_all))
    trained_on = set(bundle.split.get("train", []))
    report["cohorts"] = {k: v for k, v in (
        ("training", [c for c in cohort.names if c in trained_on]),
        ("held-out", [c for c in cohort.names if c not in trained_on])) if v}
    report["steps"] = [m for m in STEPS if m in report["methods"]]
    report["baselines"] = [m for m in BASELINES if m in report["methods"]]
    report["timing"] = {"inference_seconds_per_volume": float(np.mean(list(seconds.values()))),
                        "per_case": seconds}
    report["default_method"] = shown
    report["review"] = {"method": review_method,
                        **review_curves(review_counts, review_scores)}
    report["model"] = str(bundle.run_dir)
    report["device"] = str(bundle.device)
    report["gate"] = bundle.gate
    path = write_report(report, out_dir)
    events.artefact("evaluate", path)
    from ..evaluation.html import write_html_report

    held_out = [e for e in candidates if e["case"] not in trained_on]
    html = write_html_report(report, out_dir,
                             {shown: _pick_examples(held_out or candidates)},
                             title=f"WeakSeg evaluation of {bundle.run_dir.name}")
    events.artefact("evaluate", html)
    return report


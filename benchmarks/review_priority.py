"""Issue 13: which mask-free score finds the wrong slices, on the held-out patients of the CV.

Reads the per-slice statistics benchmarks/cohort_cv.py kept for every held-out patient
(``<work>/slices/<case>.npz``: areas and pairwise intersections of every method and the truth,
classifier score, difference scores), computes every candidate score of
``WeakSegLib.inference.review`` and a few means of them, and reports per score the AUROC for
"2D Dice < 0.5" (pooled and per fold) and the review curves (random and oracle beside them).

    python benchmarks/review_priority.py --work /work/cv/run1 [--method self_trained_pp]
        [--slices DIR --result benchmarks/results/review_priority_<tag>.json]

Writes benchmarks/results/review_priority.json and review_priority.png.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cohort_cv import UNCERTAIN_UNITS  # noqa: E402
from machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def case_inputs(npz_path: Path, method: str):
    """(CaseSliceCounts of ``method`` vs truth, SliceStats of ``method``) from one case file."""
    from WeakSegLib.inference.review import REVIEW_OTHERS, SliceStats, dice_2d
    from WeakSegLib.evaluation.review import CaseSliceCounts
    from WeakSegLib.inference.volume import base_method

    with np.load(npz_path, allow_pickle=False) as npz:
        names = [str(n) for n in npz["methods"]]
        inter = npz["intersection"].astype(float)
        d, t = names.index(method), names.index("truth")
        area = inter[d, d]
        base = base_method(method)
        difference = npz[f"difference_{base}"].astype(float)
        difference = np.where(area > 0, difference, np.nan)
        others = [names.index(o) for o in REVIEW_OTHERS if o in names and o not in (method, base)]
        agreement = np.array([dice_2d(inter[d, o], area, inter[o, o]) for o in others])
        changed = np.array([area + inter[o, o] - 2 * inter[d, o] for o in others])
        counts = CaseSliceCounts(inter[d, t], area, inter[t, t], npz["brain_slices"].astype(bool))
        known = "uncertain_units" in npz and str(npz["uncertain_units"]) == UNCERTAIN_UNITS
        uncertain = npz[f"uncertain_{base}"].astype(float) if known else None
        stats = SliceStats(area, agreement, npz["classifier_score"].astype(float), difference,
                           changed, uncertain)
    return counts, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--method", default="self_trained_pp")
    parser.add_argument("--slices", type=Path, help="per-slice statistics folder (default: "
                        "<work>/slices; cv_reevaluate.py --slices writes one for a rerun)")
    parser.add_argument("--result", type=Path, default=RESULTS / "review_priority.json")
    args = parser.parse_args()
    from WeakSegLib.config import get_profile
    from WeakSegLib.inference.review import (CANDIDATES, candidate_scores, likely_wrong,
                                             review_priority, slice_extent, two_tiers)
    from WeakSegLib.evaluation.review import auroc_for_bad, review_curves

    folds = json.loads((args.work / "folds.json").read_text())
    fold_of = {case: int(k) for k, f in folds.items() for case in f["test"]}
    cases = sorted(fold_of)
    counts, per_score = [], {}
    inference = get_profile("fast").inference
    default = inference.review_scores
    default_name = "review_priority"          # the config's: two tiers (inference/review.py)
    combos = [c for r in range(2, len(CANDIDATES) + 1)
              for c in itertools.combinations(CANDIDATES, r)]
    for case in cases:
        c, stats = case_inputs((args.slices or args.work / "slices") / f"{case}.npz",
                               args.method)
        counts.append(c)
        scores = candidate_scores(stats)
        for name in CANDIDATES:
            per_score.setdefault(name, []).append(scores[name])
        for combo in combos:
            per_score.setdefault("+".join(combo), []).append(
                np.mean([scores[n] for n in combo], axis=0))
        wrong = likely_wrong(stats, default, scores)
        extent = slice_extent(stats.area)
        for fraction in (0.05, 0.2):
            per_score.setdefault(f"two tiers, budget {fraction:.0%}", []).append(
                review_priority(stats, default, fraction, scores))
        per_score.setdefault(default_name, []).append(
            review_priority(stats, default, inference.review_flag_fraction, scores))
        # other budgets' orders (issue 13): p·e alone (the previous default), the segmenter's
        # own unsure voxels u alone, p·e and u weighted, and the segmenters' disagreeing voxels
        # dv in place of u (needs every segmenter of the CV)
        u, segmented = scores["uncertain_voxels"], stats.area > 0
        fraction = inference.review_flag_fraction
        for name, stake in (("p·e (previous)", wrong * extent), ("u", u),
                            ("u·(1 + p)/2", u * (1 + wrong) / 2),
                            ("(p + dv)/2 · e",
                             (wrong + scores["disagreement_voxels"]) / 2 * extent)):
            per_score.setdefault(f"two tiers, budget by {name}", []).append(
                two_tiers(wrong, stake, segmented, fraction))
        # the one-tier weightings tried before (issue 13): p = likely wrong, e = extent
        for offset in (0.0, 0.5, 1.0):
            per_score.setdefault(f"one tier: p·(e + {offset})/(1 + {offset})", []).append(
                wrong * (extent + offset) / (1 + offset))
        # the trade-off between finding bad slices (p) and finding wrong voxels (v:
        # disagreement_voxels, the most a correction can change)
        v = scores["disagreement_voxels"]
        for name, values in (("one tier: 1-(1-p)(1-v)", 1 - (1 - wrong) * (1 - v)),
                             ("one tier: max(p, v)", np.maximum(wrong, v)),
                             ("one tier: (p + v) / 2", (wrong + v) / 2)):
            per_score.setdefault(name, []).append(values)
    result = review_curves(counts, per_score)
    priority = np.concatenate(per_score[default_name])
    segmented = np.concatenate([c.predicted > 0 for c in counts])
    result["default_scores"] = list(default)
    result["default_flag_fraction"] = inference.review_flag_fraction
    result["flagged_fraction_at_config_threshold"] = float(
        (priority[segmented] >= inference.review_threshold).mean())
    result["flagged_slices_at_config_threshold"] = int((priority >= inference.review_threshold
                                                         ).sum())
    by_fold = {}
    for name, values in per_score.items():
        by_fold[name] = [auroc_for_bad([c for c, case in zip(counts, cases) if fold_of[case] == k],
                                       [v for v, case in zip(values, cases) if fold_of[case] == k])
                         for k in sorted(set(fold_of.values()))]
    result.update({"machine": describe_machine(), "method": args.method, "work": str(args.work),
                   "auroc_per_fold": by_fold, "cases": cases})
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2))
    ranked = sorted(per_score, key=lambda n: -np.nan_to_num(result["auroc"][n]))
    print(f"default priority {default_name}: at the config's threshold "
          f"{result['flagged_slices_at_config_threshold']} slices are flagged, "
          f"{result['flagged_fraction_at_config_threshold']:.1%} of the segmented ones")
    print(f"method {args.method}: {result['n_judged_slices']} judged slices, "
          f"{result['n_bad_slices']} bad, {len(cases)} patients")
    print(f"{'score':<70} AUROC  folds(min-max)  gain@10%  area")
    oracle_gain = result["gain"]["oracle"][result["percents"].index(10)]
    extra = [n for n in per_score if not n.startswith(tuple(CANDIDATES))]
    for name in dict.fromkeys(ranked[:10] + list(CANDIDATES) + extra + ["random", "oracle"]):
        gain = result["gain"][name][result["percents"].index(10)]
        auc = result["auroc"].get(name, float("nan"))
        folds_auc = by_fold.get(name, [np.nan])
        print(f"{name:<70} {auc:.3f}  {np.nanmin(folds_auc):.3f}-{np.nanmax(folds_auc):.3f}  "
              f"{gain:+.4f} ({gain / oracle_gain if oracle_gain else np.nan:.0%} of oracle)  "
              f"{result['area'][name]:.4f}")
    figure(result, [default_name, "+".join(default), "two tiers, budget by p·e (previous)",
                    "uncertain_voxels", "disagreement_voxels", "difference"],
           args.result.with_suffix(".png"))


def figure(result: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in ["oracle", *dict.fromkeys(names), "random"]:
        style = {"oracle": "k--", "random": "k:"}.get(name, "-o")
        label = name if name in ("oracle", "random") else \
            f"{name} (AUROC {result['auroc'][name]:.2f})"
        ax.plot(result["percents"], result["curves"][name], style, label=label)
    ax.set_xlabel("% of segmented slices corrected by a perfect reviewer, in score order")
    ax.set_ylabel("mean volume Dice (held-out patients)")
    ax.set_title(f"Review curves, {result['method']}, {result['n_cases']} held-out patients")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

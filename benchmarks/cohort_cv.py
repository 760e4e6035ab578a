"""Issue 12's cross-validation: 5 folds of 4 held-out patients on brats2018-multimodal (C = 4).

Each fold trains the whole pipeline (fast profile, slice labels only) on 16 patients — 13 to
train on, 3 inner validation patients for model selection and the gate — plus the fully
supervised reference (the same segmenter trained on the masks with the same budget), then
evaluates every method beside ``flair_threshold`` on its 4 held-out patients. Each patient is
held out exactly once. Resumable fold by fold.

    python benchmarks/cohort_cv.py --work /tmp/cohort_cv [--folds 0,1,2,3,4] [--set k=v ...]

Writes benchmarks/results/cohort_cv.json (per patient, per method; means with 95 % bootstrap
intervals over patients; paired differences; seed 000's Tables 3–6; classifier per fold;
|x − v| pixel AUC; stage times; the machine), cohort_cv.md (the tables) and cohort_cv.png.
Per held-out case it also keeps per-slice statistics (``<work>/slices/<case>.npz``) from which
review scores and review curves are computed without segmenting again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-multimodal"
RESULTS = REPO / "benchmarks" / "results"
METRICS = ("volume_dice", "tumour_slice_dice", "slice_dice", "hd95_mm")
N_FOLDS, N_INNER_VAL, SPLIT_SEED = 5, 3, 2018
#: the ablation (seed 000 Table 4 plus the last stage): each step against the one it builds on,
#: paired over the same held-out patients
STEP_PAIRS = (("initial", "under"), ("initial", "over"), ("under", "combined"),
              ("over", "combined"), ("combined", "self_trained"), ("under", "self_trained"),
              ("self_trained", "self_trained_pp"))
#: what the bootstrap draws: patients, 10,000 resamples, percentile interval
N_BOOTSTRAP = 10_000


def make_folds(names: list[str], n_folds: int = N_FOLDS, n_inner_val: int = N_INNER_VAL
               ) -> list[dict[str, list[str]]]:
    """A seeded permutation of the patients cut into ``n_folds`` folds; per fold
    ``n_inner_val`` of the training patients are the inner validation set (model selection and
    the gate never see the test)."""
    order = [names[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(names))]
    size = len(names) // n_folds
    folds = []
    for k in range(n_folds):
        test = sorted(order[k * size:(k + 1) * size])
        rest = [n for n in order if n not in test]
        inner = sorted(rest[:n_inner_val])
        folds.append({"test": test, "inner_val": inner,
                      "train": sorted(n for n in rest if n not in inner)})
    return folds


def bootstrap_ci(values: list[float]) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean over patients (SciPy)."""
    from scipy.stats import bootstrap

    values = np.asarray([v for v in values if np.isfinite(v)], float)
    if len(values) < 2 or np.all(values == values[0]):
        return (float(values.mean()), float(values.mean())) if len(values) else (np.nan, np.nan)
    result = bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=N_BOOTSTRAP,
                       method="percentile", random_state=0)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


#: what slice_statistics' ``uncertain_<method>`` counts (review_priority.py checks it)
UNCERTAIN_UNITS = "input-grid voxels"


def slice_statistics(case, result, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per axial slice of the input grid: areas and pairwise intersections of every method's
    label map and the truth (what review curves and disagreement scores need), centroids, the
    classifier score and each method's difference score."""
    names = sorted(result.labels) + ["truth"]
    maps = [result.labels[m] > 0 for m in names[:-1]] + [truth]
    flat = np.stack([m.reshape(m.shape[0], -1) for m in maps])          # (M, Z, P)
    inter = np.einsum("azp,bzp->abz", flat.astype(np.float32), flat.astype(np.float32))
    yy, xx = np.mgrid[:truth.shape[1], :truth.shape[2]]
    area = inter[np.arange(len(names)), np.arange(len(names))]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.einsum("mzyx,yx->mz", np.stack(maps).astype(np.float32), yy) / area
        cx = np.einsum("mzyx,yx->mz", np.stack(maps).astype(np.float32), xx) / area
    brain = case.brain.any(axis=(1, 2))
    out = {"methods": np.array(names), "intersection": inter.astype(np.int32),
           "centroid_y": cy.astype(np.float32), "centroid_x": cx.astype(np.float32),
           "classifier_score": result.slice_scores.astype(np.float32),
           "brain_slices": brain}
    for method, values in result.difference.items():
        out[f"difference_{method}"] = values.astype(np.float32)
    for method in result.probabilities:
        out[f"uncertain_{method}"] = result.uncertain_voxels(method).astype(np.float32)
    out["uncertain_units"] = np.array(UNCERTAIN_UNITS)
    return out


def write_slice_statistics(folder: Path, case, result) -> Path:
    """``<folder>/<case>.npz``: the per-slice statistics review_priority.py reads."""
    path = folder / f"{case.name}.npz"
    np.savez_compressed(path, **slice_statistics(case, result, case.mask > 0))
    return path


def difference_map_auc(case, result, rng: np.random.Generator, n: int = 200_000) -> float:
    """Per-pixel AUC of |x − v| for tumour vs the rest of the brain, on the input grid."""
    from sklearn.metrics import roc_auc_score

    difference = result.mapping.to_original(np.abs(result.flair - result.variant),
                                             kind="probability")
    inside = np.flatnonzero(case.brain.ravel())
    pick = rng.choice(inside, size=min(n, len(inside)), replace=False)
    truth = (case.mask.ravel()[pick] > 0)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, difference.ravel()[pick]))


def run_fold(k: int, fold: dict, work: Path, overrides: list[str], data: Path = DATA,
             reference: bool = True) -> dict:
    from WeakSegLib.config import apply_overrides, get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.events import EventWriter
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.evaluate import evaluate_model
    from WeakSegLib.manifest import Manifest
    from WeakSegLib.pipeline import DEFAULT_STAGES, train

    cohort = discover_cohort(data)
    training = cohort.select(fold["train"] + fold["inner_val"])
    run_dir, report_dir = work / f"fold{k}" / "run", work / f"fold{k}" / "report"
    profile = apply_overrides(get_profile("fast"), overrides)
    resume = (run_dir / "manifest.json").is_file()
    started = time.monotonic()
    with EventWriter(work / f"fold{k}" / "train.events.jsonl") as events:
        train(training, run_dir, profile, device="cpu", resume=resume,
              val_cases=fold["inner_val"],
              stages=[*DEFAULT_STAGES, *(["supervised"] if reference else [])],
              events=events)
    train_seconds = time.monotonic() - started
    slices_dir = work / "slices"
    slices_dir.mkdir(parents=True, exist_ok=True)
    pixel_auc: dict[str, float] = {}
    rng = np.random.default_rng(k)

    def on_case(case, result) -> None:
        write_slice_statistics(slices_dir, case, result)
        pixel_auc[case.name] = difference_map_auc(case, result, rng)

    started = time.monotonic()
    report = evaluate_model(load_bundle(run_dir, "cpu"), cohort.select(fold["test"]),
                            report_dir, overwrite=True, on_case=on_case)
    evaluate_seconds = time.monotonic() - started
    manifest = Manifest.load(run_dir)
    read = lambda stage: json.loads((run_dir / stage / "metrics.json").read_text())  # noqa: E731
    seeds = read("seeds")
    classifier = read("classifier")
    return {"fold": k, **fold,
            "methods": {m: r["per_case"] for m, r in report["methods"].items()},
            "classifier_held_out": report["classifier"],
            "classifier_inner_val": classifier["best"].get("val"),
            "gate": report["gate"],
            "filtering": report["filtering"],
            "seeds": {key: v for key, v in seeds.items() if key != "history"},
            "refinement": {key: v for key, v in read("refinement").items() if key != "history"},
            "self_train": {key: v for key, v in read("self_train").items() if key != "history"},
            "difference_pixel_auc": pixel_auc,
            "stage_seconds": {s: e.get("seconds") for s, e in manifest.data["stages"].items()},
            "train_seconds_this_call": round(train_seconds, 1),
            "evaluate_seconds": round(evaluate_seconds, 1),
            "inference_seconds_per_volume": report["timing"]["inference_seconds_per_volume"]}


def summarise(folds: list[dict]) -> dict:
    """Per method and metric: per-patient values, mean, SD, 95 % bootstrap interval; per method
    the paired difference of volume Dice to flair_threshold on the same patients."""
    methods = sorted({m for f in folds for m in f["methods"]})
    out: dict = {}
    for method in methods:
        entry: dict = {}
        for metric in METRICS:
            values = {case: v[metric] for f in folds
                      for case, v in f["methods"].get(method, {}).items()}
            array = np.array(list(values.values()), float)
            low, high = bootstrap_ci(list(array))
            entry[metric] = {"mean": float(np.nanmean(array)), "sd": float(np.nanstd(array)),
                             "ci95": [low, high], "n": int(len(array)), "per_patient": values}
        out[method] = entry
    reference = out.get("flair_threshold", {}).get("volume_dice", {}).get("per_patient", {})
    for method, entry in out.items():
        mine = entry["volume_dice"]["per_patient"]
        paired = [mine[c] - reference[c] for c in mine if c in reference]
        if paired:
            low, high = bootstrap_ci(paired)
            entry["volume_dice_minus_flair_threshold"] = {"mean": float(np.mean(paired)),
                                                          "ci95": [low, high], "n": len(paired)}
    return out


def paired_steps(summary: dict) -> dict:
    """The ablation: per STEP_PAIRS entry the paired change of volume Dice over the patients
    both methods were scored on, with its 95 % bootstrap interval."""
    steps = {}
    for before, after in STEP_PAIRS:
        if before in summary and after in summary:
            a = summary[after]["volume_dice"]["per_patient"]
            b = summary[before]["volume_dice"]["per_patient"]
            paired = [a[c] - b[c] for c in a if c in b]
            low, high = bootstrap_ci(paired)
            steps[f"{before} → {after}"] = {"mean": float(np.mean(paired)), "ci95": [low, high],
                                            "n": len(paired)}
    return steps


def tables(result: dict) -> str:
    """Markdown: the CV table, the steps (Table 4), classifier per fold, seeds (Table 3),
    filtering (Table 6), |x − v| AUC and times."""
    s = result["summary"]
    folds = result["folds"]
    lines = [f"# Cross-validation on {Path(result['data']).name} ({len(folds)} folds × "
             f"{len(folds[0]['test'])} held-out patients)", "",
             f"Machine: {result['machine']['processor']}, {result['machine']['cpu_count']} "
             f"cores, torch {result['machine']['torch']}; overrides {result['overrides']}", "",
             "| method | volume Dice [95 % CI] | tumour-slice Dice [95 % CI] | slice Dice | "
             "HD95 mm [95 % CI] | Δ volume Dice vs flair_threshold [95 % CI] |",
             "|---|---|---|---|---|---|"]

    def cell(entry: dict, digits: int = 3) -> str:
        low, high = entry["ci95"]
        return f"{entry['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    for method, e in sorted(s.items(), key=lambda kv: -kv[1]["volume_dice"]["mean"]):
        delta = e.get("volume_dice_minus_flair_threshold")
        lines.append(f"| {method} | {cell(e['volume_dice'])} | {cell(e['tumour_slice_dice'])} | "
                     f"{e['slice_dice']['mean']:.3f} | {cell(e['hd95_mm'], 1)} | "
                     f"{cell(delta) if delta else '—'} |")
    if result.get("steps_paired"):
        lines += ["", "## Ablation: each step against the one it builds on (paired volume Dice)",
                  "", "| step | Δ volume Dice [95 % CI] |", "|---|---|"]
        lines += [f"| {step} | {cell(delta)} |" for step, delta in result["steps_paired"].items()]
    lines += ["", "## Classifier per fold (slice AUC)", "",
              "| fold | held-out AUC | sensitivity | specificity | inner-val AUC | gate |",
              "|---|---|---|---|---|---|"]
    for f in result["folds"]:
        c, v = f["classifier_held_out"], f.get("classifier_inner_val") or {}
        lines.append(f"| {f['fold']} | {c['auc']:.3f} | {c['sensitivity']:.3f} | "
                     f"{c['specificity']:.3f} | {v.get('auc', float('nan')):.3f} | "
                     f"{f['gate']:.3f} |")
    lines += ["", "## Seeds (Table 3; training slices of each fold)", "",
              "| fold | " + " | ".join(k for k in result["folds"][0]["seeds"]
                                      if isinstance(result["folds"][0]["seeds"][k], (int, float)))
              + " |"]
    numeric = [k for k, v in result["folds"][0]["seeds"].items() if isinstance(v, (int, float))]
    lines.append("|---" * (len(numeric) + 1) + "|")
    for f in result["folds"]:
        lines.append(f"| {f['fold']} | " + " | ".join(
            f"{f['seeds'].get(k, float('nan')):.3f}" for k in numeric) + " |")
    auc = [v for f in result["folds"] for v in f["difference_pixel_auc"].values()]
    low, high = bootstrap_ci(auc)
    lines += ["", f"|x − v| per-pixel AUC, tumour vs brain, held-out patients: "
              f"{np.nanmean(auc):.3f} [{low:.3f}, {high:.3f}] (n = {len(auc)})", "",
              "## Filtering (Table 6, held-out, default method, mean over folds)", ""]
    method = result["default_method"]
    rows = [f["filtering"].get(method) for f in result["folds"] if method in f["filtering"]]
    if rows:
        lines += ["| threshold | removed | kept tumour-slice Dice | removed tumour-slice Dice |",
                  "|---|---|---|---|"]
        for i, row in enumerate(rows[0]):
            mean = {k: float(np.nanmean([r[i][k] for r in rows])) for k in row}
            lines.append(f"| {mean['threshold']:.1f} | {mean['removed_fraction']:.3f} | "
                         f"{mean['kept_tumour_slice_dice']:.3f} | "
                         f"{mean['removed_tumour_slice_dice']:.3f} |")
    lines += ["", "## Seconds per fold", ""]
    for f in result["folds"]:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in f["stage_seconds"].items() if v)
        lines.append(f"- fold {f['fold']}: {stages}; evaluate {f['evaluate_seconds']:.0f}")
    return "\n".join(lines) + "\n"


def figure(result: dict, path: Path) -> None:
    """Per-patient volume Dice of each method (dots) with mean and 95 % interval (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    methods = sorted(s, key=lambda m: s[m]["volume_dice"]["mean"])
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(methods) + 1.5))
    for i, method in enumerate(methods):
        e = s[method]["volume_dice"]
        values = list(e["per_patient"].values())
        ax.scatter(values, np.full(len(values), i) + np.random.default_rng(i).uniform(
            -0.15, 0.15, len(values)), s=12, alpha=0.6)
        ax.errorbar(e["mean"], i, xerr=[[e["mean"] - e["ci95"][0]], [e["ci95"][1] - e["mean"]]],
                    fmt="D", color="black", capsize=4)
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xlabel("volume Dice per held-out patient (mean and 95 % bootstrap CI)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    n_patients = sum(len(f["test"]) for f in result["folds"])
    ax.set_title(f"{Path(result['data']).name}, {len(result['folds'])}-fold CV, "
                 f"{n_patients} patients each held out once")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA, help="cohort folder (brats2018-multimodal)")
    parser.add_argument("--n-folds", type=int, default=N_FOLDS)
    parser.add_argument("--n-inner-val", type=int, default=N_INNER_VAL)
    parser.add_argument("--folds", default=None, help="comma-separated folds to run (all)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--result", type=Path, default=RESULTS / "cohort_cv.json")
    parser.add_argument("--default-method", default="self_trained")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the fully supervised reference (saves its training time)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from WeakSegLib.data.cohort import discover_cohort

    if not args.data.is_dir():
        sys.exit(f"cohort_cv: {args.data} not found (../shared/data beside the repository)")
    folds = make_folds(discover_cohort(args.data).names, args.n_folds, args.n_inner_val)
    args.folds = args.folds or ",".join(str(k) for k in range(args.n_folds))
    done_path = args.work / "folds.json"
    args.work.mkdir(parents=True, exist_ok=True)
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    for k in (int(k) for k in args.folds.split(",")):
        if str(k) not in done:
            done[str(k)] = run_fold(k, folds[k], args.work, args.set, args.data,
                                    not args.no_reference)
            done_path.write_text(json.dumps(done, indent=2, default=float))
    folds_done = [done[k] for k in sorted(done)]
    result = {"machine": describe_machine(), "data": str(args.data), "overrides": args.set,
              "default_method": args.default_method, "folds": folds_done,
              "summary": summarise(folds_done)}
    result["steps_paired"] = paired_steps(result["summary"])
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2, default=float))
    text = tables(result)
    args.result.with_suffix(".md").write_text(text)
    figure(result, args.result.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()

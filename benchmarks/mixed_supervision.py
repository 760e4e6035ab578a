"""Issue 7: seed 001 Table 1 in miniature on brats2018-sample (8 real cases).

Case-level cross-validation: the 8 cases in a fixed random order, 4 folds of 2 test cases; in each
fold the 6 others train, the first k of them (in circular order after the test cases, as seed
001 §4.2 builds its folds) with full masks. Settings, k = 1, 2, 4:

* standard: the U-Net trained on the k fully annotated cases only (their tumour and healthy
  slices, L_seg alone: a = 1, batches of 4 masked tumour + 2 healthy slices);
* mixed: the same U-Net + classification branch, k full cases + the 6 − k others with slice
  labels only (a = 0.7, batches 4 + 4 + 2).

Same profile (fast), same number of optimiser steps (epochs × iterations) for both, capped by a
time budget per run. Test cases are segmented whole (64 px tiles, stride 32) and scored on the
original grid: volume_dice and tumour_slice_dice, mean over the 8 test cases; flair_threshold on
the same cases beside them. One torch thread (the machine is shared).

    .venv/bin/python benchmarks/mixed_supervision.py [--folds 4] [--ks 1,2,4] [--epochs 15]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-sample"
RESULTS = REPO / "benchmarks" / "results"


def prepare(profile, show: bool = True):
    """Per case: training rows (all masks kept; settings choose which count), the preprocessed
    volume for inference, the truth on the original grid and the flair_threshold result."""
    from WeakSegLib.baselines import flair_threshold
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.data.labels import labels_from_mask
    from WeakSegLib.data.preprocess import preprocess_case
    from WeakSegLib.data.reader import read_case
    from WeakSegLib.evaluation.metrics import tumour_slice_dice, volume_dice
    from WeakSegLib.data.mixed_slices import MixedSlices, case_rows

    cohort = discover_cohort(DATA)
    channels = cohort.common_modalities()
    rng = np.random.default_rng(profile.runtime.seed)
    parts, cases = [], {}
    for number, files in enumerate(cohort.cases):
        case = read_case(files, require_mask=True)
        truth = (case.mask > 0).astype(np.uint8)
        prep = preprocess_case(case, profile.data, channels)
        depth = truth.shape[0]
        parts.append(case_rows(prep, profile.data, number, labels_from_mask(truth, profile.data.erode),
                               np.ones(depth, bool), np.ones(depth, bool), prep.mask, rng))
        baseline = flair_threshold(case, profile.baseline)
        z = int(np.argmax(truth.sum(axis=(1, 2))))        # the figure's slice
        cases[files.name] = {"prep": prep, "truth": truth, "z": z,
                             "flair_slice": case.images["flair"][z].copy(),
                             "flair_threshold": {"volume_dice": volume_dice(baseline, truth),
                                                 "tumour_slice_dice": tumour_slice_dice(baseline, truth)}}
        if show:
            print(f"prepared {files.name}: {len(parts[-1]['labels'])} training slices", flush=True)
    return MixedSlices.concatenate(parts, cohort.names, channels), cases


def train_mixed(data, run_dir: Path, profile, device: str = "cpu", show_progress: bool = False,
                settings: dict | None = None):
    """Stage ``mixed`` on prepared slices (the experiment picks which cases keep masks), or the
    finished one in ``run_dir``; returns (model, metrics) as a namespace."""
    from types import SimpleNamespace

    from WeakSegLib.runtime import resolve_device
    from WeakSegLib.stages.base import RunContext
    from WeakSegLib.stages.mixed import MixedStage, load_mixed_model

    metrics = run_dir / "mixed" / "metrics.json"
    if not metrics.is_file():
        ctx = RunContext(run_dir, profile, resolve_device(device), data,
                         data.subset(np.arange(0)), show_progress=show_progress,
                         settings=dict(settings or {}))
        MixedStage().run(ctx)
    return SimpleNamespace(model=load_mixed_model(run_dir),
                           metrics=json.loads(metrics.read_text()))


def predict_case(model, prep, patch: int, stride: int, threshold: float, device, runtime=None):
    """(probabilities on the preprocessed grid, 0/1 labels on the original grid): the network
    tiled over every slice as ``segment`` tiles it (benchmark-local: the cases are prepared)."""
    import torch

    from WeakSegLib.config import RuntimeConfig
    from WeakSegLib.inference.patches import PatchGrid
    from WeakSegLib.models.mixed_unet import tumour_probability
    from WeakSegLib.runtime import autocast, batches, to_device

    runtime = runtime or RuntimeConfig()
    image = prep.image
    grid = PatchGrid.cover((image.shape[0], *image.shape[-2:]), patch, stride)
    tiles = grid.extract(image)
    model.eval()
    probs = []
    with torch.no_grad():
        for chunk in batches(np.arange(len(tiles)), 64):
            with autocast(runtime, device):
                logits = model(to_device(tiles[chunk], device, runtime))
            probs.append(tumour_probability(logits).float().cpu().numpy())
    maps = np.concatenate(probs) if probs else np.zeros((0, patch, patch), np.float32)
    prob = grid.assemble(maps.reshape(len(tiles), patch, patch))
    prob *= np.any(image != 0, axis=1)
    return prob, prep.mapping.to_original(prob, kind="binary", threshold=threshold)


def folds_of(names: list[str], n_folds: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """(test, train in circular order after the test cases) per fold."""
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    size = len(order) // n_folds
    out = []
    for f in range(n_folds):
        test = order[f * size:(f + 1) * size]
        rest = order[(f + 1) * size:] + order[:f * size]
        out.append((test, rest))
    return out


def setting_profile(profile, method: str):
    if method == "standard":
        return replace(profile, mixed=replace(profile.mixed, seg_weight=1.0, unmasked_per_batch=0))
    return profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--ks", default="1,2,4")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--budget", type=float, default=40.0, help="seconds of training per run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/weakseg_mixed_bench"),
                        help="run folders (a rerun resumes finished runs from here)")
    parser.add_argument("--result", type=Path, default=RESULTS / "mixed_supervision.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-folds", type=int, help="run only the first folds (a pilot)")
    parser.add_argument("--figure-only", action="store_true",
                        help="redraw the PNG from --result and the fold-0 models in --work")
    args = parser.parse_args()

    import torch

    if args.figure_only:
        redraw(args)
        return

    torch.set_num_threads(1)
    from WeakSegLib.config import apply_overrides, get_profile
    from WeakSegLib.evaluation.metrics import tumour_slice_dice, volume_dice

    started = time.monotonic()
    profile = apply_overrides(get_profile("fast"), [
        f"mixed.epochs={args.epochs}", f"mixed.time_budget_s={args.budget}",
        f"runtime.seed={args.seed}"])
    data, cases = prepare(profile)
    prepare_s = time.monotonic() - started
    ks = [int(k) for k in args.ks.split(",")]
    folds = folds_of(sorted(cases), args.folds, args.seed)
    device = torch.device("cpu")
    runs, example = [], {}
    for f, (test, train) in enumerate(folds[:args.max_folds]):
        for k in ks:
            full = train[:k]
            for method in ("standard", "mixed"):
                names = full if method == "standard" else train
                subset = data.for_cases(names).with_full_cases(full)
                run_dir = args.work / f"fold{f}_k{k}_{method}"
                tic = time.monotonic()
                run = train_mixed(subset, run_dir, setting_profile(profile, method), device="cpu",
                                  show_progress=False,
                                  settings={"fold": f, "k": k, "method": method, "full": full,
                                            "weak": [n for n in names if n not in full],
                                            "test": test})
                train_s = time.monotonic() - tic
                per_case = {}
                for name in test:
                    prob, label = predict_case(run.model, cases[name]["prep"], profile.data.size,
                                               profile.inference.stride, profile.mixed.threshold,
                                               device, profile.runtime)
                    truth = cases[name]["truth"]
                    per_case[name] = {"volume_dice": volume_dice(label, truth),
                                      "tumour_slice_dice": tumour_slice_dice(label, truth)}
                    if f == 0 and k == ks[0] and name == test[0]:
                        example[method] = label
                m = run.metrics
                runs.append({"fold": f, "k": k, "method": method, "full_cases": full,
                             "weak_cases": [n for n in names if n not in full], "test_cases": test,
                             "composition": m["composition"], "epochs_run": m["epochs_run"],
                             "iterations": m["iterations"], "final_lr": m["final_lr"],
                             "final_loss": m["history"][-1]["loss"] if m["history"] else None,
                             "train_masked_tumour_slice_dice": m["train_masked_tumour_slice_dice"],
                             "train_seconds": round(train_s, 1),
                             "total_seconds": round(time.monotonic() - tic, 1),
                             "per_case": per_case})
                print(f"fold {f} k={k} {method:<8} epochs {m['epochs_run']:>2} "
                      f"{time.monotonic() - tic:5.1f} s  " + "  ".join(
                          f"{n[-12:]} vd {v['volume_dice']:.3f} tsd {v['tumour_slice_dice']:.3f}"
                          for n, v in per_case.items()), flush=True)

    table = {}
    for k in ks:
        for method in ("standard", "mixed"):
            values = {metric: [c[metric] for r in runs if r["k"] == k and r["method"] == method
                               for c in r["per_case"].values()]
                      for metric in ("volume_dice", "tumour_slice_dice")}
            table[f"{method} k={k}"] = {
                "method": method, "k": k, "weak_cases": 6 - k if method == "mixed" else 0,
                **{name: float(np.mean(v)) for name, v in values.items()},
                **{f"{name}_sd": float(np.std(v)) for name, v in values.items()},
                "n_test_cases": len(values["volume_dice"])}
    tested = sorted({n for r in runs for n in r["per_case"]})
    table["flair_threshold"] = {
        "method": "flair_threshold", **{metric: float(np.mean([cases[n]["flair_threshold"][metric]
                                                                for n in tested]))
                                        for metric in ("volume_dice", "tumour_slice_dice")},
        "n_test_cases": len(tested)}
    result = {
        "issue": 7, "what": "seed 001 Table 1 in miniature: standard (k full cases) vs mixed "
                            "(k full + 6-k slice-labelled cases)",
        "command": "python benchmarks/mixed_supervision.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(), "data": str(DATA), "profile": "fast",
        "config": {"mixed": profile.mixed.__dict__, "data": profile.data.__dict__,
                   "inference_stride": profile.inference.stride},
        "folds": [{"test": t, "train_order": tr} for t, tr in folds],
        "table": table,
        "flair_threshold_per_case": {n: cases[n]["flair_threshold"] for n in tested},
        "runs": runs,
        "seconds": {"prepare": round(prepare_s, 1),
                    "total": round(time.monotonic() - started, 1)},
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2, default=str))
    figure(result, cases, folds[0][1][:ks[0]], folds[0][0][0], example,
           args.result.with_suffix(".png"))
    print(f"{'setting':<16}{'volume_dice':>12}{'tumour_slice_dice':>19}")
    for name, row in table.items():
        print(f"{name:<16}{row['volume_dice']:>12.3f}{row['tumour_slice_dice']:>19.3f}")
    print(f"total {result['seconds']['total']:.0f} s → {args.result}")


def redraw(args: argparse.Namespace) -> None:
    """The PNG again from a finished result: only the example case is read and predicted."""
    import torch

    from WeakSegLib.config import get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.data.preprocess import preprocess_case
    from WeakSegLib.data.reader import read_case
    from WeakSegLib.stages.mixed import load_mixed_model

    torch.set_num_threads(1)
    result = json.loads(args.result.read_text())
    profile = get_profile("fast")
    k = min(row["k"] for row in result["table"].values() if "k" in row)
    name = result["folds"][0]["test"][0]
    case = read_case(discover_cohort(DATA).select([name]).cases[0], require_mask=True)
    truth = (case.mask > 0).astype(np.uint8)
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    prep = preprocess_case(case, profile.data, ["flair", "t1"])
    cases = {name: {"truth": truth, "z": z, "flair_slice": case.images["flair"][z]}}
    example = {}
    for method in ("standard", "mixed"):
        model = load_mixed_model(args.work / f"fold0_k{k}_{method}")
        example[method] = predict_case(model, prep, profile.data.size, profile.inference.stride,
                                       profile.mixed.threshold, torch.device("cpu"))[1]
    figure(result, cases, result["folds"][0]["train_order"][:k], name, example,
           args.result.with_suffix(".png"))


def figure(result, cases, full, name, example, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result["table"]
    ks = sorted({row["k"] for row in table.values() if "k" in row})
    fig = plt.figure(figsize=(13, 7.5))
    for i, metric in enumerate(("volume_dice", "tumour_slice_dice")):
        ax = fig.add_subplot(2, 3, i + 1)
        for method, colour in (("standard", "tab:blue"), ("mixed", "tab:red")):
            means = [table[f"{method} k={k}"][metric] for k in ks]
            sds = [table[f"{method} k={k}"][f"{metric}_sd"] for k in ks]
            ax.errorbar(ks, means, yerr=sds, marker="o", capsize=3, color=colour,
                        label=f"{method}" + (" (k full + 6−k slice labels)" if method == "mixed"
                                             else " (k full cases only)"))
        ax.axhline(table["flair_threshold"][metric], color="grey", ls="--",
                   label="flair_threshold")
        ax.set_xticks(ks)
        ax.set_xlabel("fully annotated training cases k")
        ax.set_ylabel(f"{metric} (mean ± SD, {table['flair_threshold']['n_test_cases']} test cases)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=8, loc="lower right")
    ax = fig.add_subplot(2, 3, 3)                   # paired: the same test case, both methods
    markers = {1: "o", 2: "s", 4: "^"}
    for k in ks:
        pairs = {}
        for run in result["runs"]:
            if run["k"] == k:
                for case, values in run["per_case"].items():
                    pairs.setdefault(case, {})[run["method"]] = values["volume_dice"]
        xs = [v["standard"] for v in pairs.values()]
        ys = [v["mixed"] for v in pairs.values()]
        ax.scatter(xs, ys, marker=markers.get(k, "o"), label=f"k={k}", alpha=0.8)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("standard: volume_dice per test case")
    ax.set_ylabel("mixed: volume_dice per test case")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    truth = cases[name]["truth"]
    z, flair = cases[name]["z"], cases[name]["flair_slice"]
    panels = [("truth", truth)] + [(f"{m} k={ks[0]}", example[m]) for m in ("standard", "mixed")
                                   if m in example]
    for j, (title, label) in enumerate(panels):
        ax = fig.add_subplot(2, 3, 4 + j)
        ax.imshow(flair, cmap="gray", origin="lower")
        ax.contour(truth[z], levels=[0.5], colors="lime", linewidths=1)
        if title != "truth":
            ax.contour(label[z], levels=[0.5], colors="red", linewidths=1)
            from WeakSegLib.evaluation.metrics import per_slice_dice
            title += f" (slice Dice {per_slice_dice(label[z:z + 1], truth[z:z + 1])[0]:.2f})"
        ax.set_title(f"{title}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Mixed supervision on brats2018-sample (fast profile, "
                 f"{len(result['folds'])}-fold CV). Bottom: test case {name}, axial slice {z}, "
                 f"FLAIR; green truth, red prediction; fold 0, k={ks[0]} (full: {', '.join(full)})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

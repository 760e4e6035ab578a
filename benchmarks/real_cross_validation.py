"""Issue 4's real-data experiment: the whole pipeline (fast profile) on brats2018-sample in
4 folds of 2 held-out cases; each fold's run is evaluated on its 2 held-out cases and, as seed
000 does for its training cohort, on its 6 training cases. Resumable fold by fold.

    python benchmarks/real_cross_validation.py --work /tmp/cv [--folds 0,1,2,3] [--set k=v ...]

Writes benchmarks/results/real_cross_validation.json (per fold, per method, per case; pooled
held-out means; stage and inference times; the machine) and copies each fold's report figures.
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
from machine import describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-sample"
RESULTS = REPO / "benchmarks" / "results"
METRICS = ("slice_dice", "tumour_slice_dice", "volume_dice", "hd95_mm")


def folds(names: list[str]) -> list[list[str]]:
    return [names[i:i + 2] for i in range(0, len(names), 2)]


def run_fold(k: int, held_out: list[str], work: Path, overrides: list[str]) -> dict:
    from WeakSegLib.config import apply_overrides, get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.events import EventWriter
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.evaluate import evaluate_model
    from WeakSegLib.manifest import Manifest
    from WeakSegLib.pipeline import train

    cohort = discover_cohort(DATA)
    run_dir, report_dir = work / f"fold{k}" / "run", work / f"fold{k}" / "report"
    profile = apply_overrides(get_profile("fast"), overrides)
    resume = (run_dir / "manifest.json").is_file()
    started = time.monotonic()
    train(cohort, run_dir, profile, device="cpu", resume=resume, val_cases=held_out,
          events=EventWriter(work / f"fold{k}" / "train.events.jsonl"))
    train_seconds = time.monotonic() - started
    started = time.monotonic()
    report = evaluate_model(load_bundle(run_dir, "cpu"), cohort, report_dir, overwrite=True)
    evaluate_seconds = time.monotonic() - started
    manifest = Manifest.load(run_dir)
    stage_seconds = {s: e.get("seconds") for s, e in manifest.data["stages"].items()}
    refinement = json.loads((run_dir / "refinement" / "metrics.json").read_text())
    seeds = json.loads((run_dir / "seeds" / "metrics.json").read_text())
    return {"fold": k, "held_out": held_out, "report": report,
            "stage_seconds": stage_seconds,
            "train_seconds_this_call": round(train_seconds, 1),
            "evaluate_seconds": round(evaluate_seconds, 1),
            "refinement": refinement, "seeds": {k: v for k, v in seeds.items() if k != "history"}}


def summarise(folds_done: list[dict]) -> dict:
    """Per method: held-out and training means over cases (each case held out exactly once)."""
    out: dict = {}
    for cohort in ("held-out", "training"):
        per_method: dict[str, dict[str, list[float]]] = {}
        for fold in folds_done:
            report = fold["report"]
            cases = report["cohorts"].get(cohort, [])
            for method, result in report["methods"].items():
                for case in cases:
                    values = result["per_case"].get(case)
                    if values:
                        for m in METRICS:
                            per_method.setdefault(method, {}).setdefault(m, []).append(values[m])
        out[cohort] = {method: {m: {"mean": float(np.nanmean(v)), "sd": float(np.nanstd(v)),
                                    "n": len(v)} for m, v in metrics.items()}
                       for method, metrics in per_method.items()}
    return out


def pooled_filtering(folds_done: list[dict], method: str = "combined") -> list[dict]:
    """Mean over folds of the held-out... filtering rows (each fold's table covers its 8 cases)."""
    tables = [f["report"]["filtering"].get(method) for f in folds_done
              if method in f["report"].get("filtering", {})]
    if not tables:
        return []
    rows = []
    for i, row in enumerate(tables[0]):
        rows.append({key: float(np.nanmean([t[i][key] for t in tables])) for key in row})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--folds", default="0,1,2,3")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--result", type=Path, default=RESULTS / "real_cross_validation.json")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 on a shared machine")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from WeakSegLib.data.cohort import discover_cohort

    names = discover_cohort(DATA).names
    wanted = [int(k) for k in args.folds.split(",")]
    done_path = args.work / "folds.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    for k in wanted:
        if str(k) in done:
            continue
        done[str(k)] = run_fold(k, folds(names)[k], args.work, args.set)
        args.work.mkdir(parents=True, exist_ok=True)
        done_path.write_text(json.dumps(done, indent=2, default=float))
        figures = args.work / f"fold{k}" / "report" / "figures"
        for png in figures.glob("*.png"):
            shutil.copy(png, RESULTS / f"real_cv_fold{k}_{png.name}")
    folds_done = [done[k] for k in sorted(done)]
    result = {"machine": describe_machine(), "torch_threads": torch.get_num_threads(),
              "data": str(DATA), "overrides": args.set,
              "folds": [{k: v for k, v in f.items() if k != "report"}
                        | {"methods": {m: {x: r[x] for x in METRICS}
                                       for m, r in f["report"]["methods"].items()},
                           "per_case": {m: r["per_case"] for m, r in f["report"]["methods"].items()},
                           "cohorts": f["report"]["cohorts"],
                           "classifier": f["report"]["classifier"],
                           "filtering_combined": f["report"]["filtering"].get("combined"),
                           "inference_seconds_per_volume":
                               f["report"]["timing"]["inference_seconds_per_volume"]}
                        for f in folds_done],
              "summary": summarise(folds_done),
              "filtering_combined_mean_over_folds": pooled_filtering(folds_done)}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2, default=float))
    for cohort, methods in result["summary"].items():
        print(f"\n{cohort} (cases over folds)")
        for method, metrics in sorted(methods.items()):
            print(f"  {method:<22}" + "  ".join(
                f"{m} {metrics[m]['mean']:.3f}±{metrics[m]['sd']:.3f}" for m in METRICS))


if __name__ == "__main__":
    main()

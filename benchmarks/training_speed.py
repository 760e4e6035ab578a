"""Issue 17: training seconds per stage before and after the speed work, on the 20-patient
brats2018-multimodal cohort, same code, machine and threads.

    python benchmarks/training_speed.py [--stages classifier,seeds] [--threads 2]
                                        [--work DIR] [--out benchmarks/results/training_speed.json]

"before" trains with the issue-17 training settings switched back (``seeds.rise_bf16=false``:
RISE forwards in float32), "after" with today's defaults; each is one `weakseg train --profile
fast` process on all 20 patients (3 of them as the validation split), run one after the other
so they never share the CPU. Per stage: seconds (manifest) and slices per second (the stage's
metrics). The other stages are time-boxed in the fast profile (``time_budget_s``), so their
seconds are their budgets either way; only their slices per second could differ, and nothing
of issue 17 changed them. Seed quality is compared too (overlap of the seeds with the masks),
since a faster RISE is only worth having if the seeds stay the same.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402
from speed import DATA, RESULTS, run_measured, training_stages, worker_env  # noqa: E402

#: what issue 17 changed in training, and the value before it
BEFORE = ["seeds.rise_bf16=false"]
VAL_CASES = "Brats18_CBICA_AOP_1,Brats18_CBICA_AOZ_1,Brats18_CBICA_ARZ_1"


def train_once(run_dir: Path, stages: str, overrides: list[str], threads: int) -> dict:
    cmd = [sys.executable, "-m", "WeakSegLib.cli", "train", "--data", str(DATA), "--out",
           str(run_dir), "--profile", "fast", "--device", "cpu", "--stages", stages,
           "--val-cases", VAL_CASES, "--quiet"]
    for item in overrides:
        cmd += ["--set", item]
    started = os.getloadavg()[0]
    measured = run_measured(cmd, worker_env(threads), timeout=3600)
    if measured["rc"] != 0:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{measured['tail']}")
    summary = training_stages(str(run_dir))
    seeds = run_dir / "seeds" / "metrics.json"
    if seeds.is_file():
        metrics = json.loads(seeds.read_text())
        summary["seed_overlap"] = {k: v["all_slices"] for k, v in metrics.items()
                                   if isinstance(v, dict) and "all_slices" in v}
    return {"overrides": overrides, "wall_seconds": measured["wall_seconds"],
            "peak_rss_gb": measured["peak_rss_gb"], "loadavg_start": round(started, 2),
            "loadavg_end": round(os.getloadavg()[0], 2), **summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", default="classifier,seeds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, help="keep the two run folders here (temporary)")
    p.add_argument("--out", type=Path, default=RESULTS / "training_speed.json")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="weakseg_training_speed_"))
    result = {"issue": 17, "data": str(DATA), "stages": args.stages, "threads": args.threads,
              "machine": describe_machine(), "before_overrides": BEFORE,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for label, overrides in (("before", BEFORE), ("after", [])):
        print(f"{label}: weakseg train --stages {args.stages} {' '.join(overrides)} ...",
              flush=True)
        result[label] = train_once(work / label, args.stages, overrides, args.threads)
        print(json.dumps({s: v["seconds_mean"] for s, v in result[label]["stages"].items()}),
              flush=True)
    result["seconds_ratio_after_to_before"] = {
        stage: round(result["after"]["stages"][stage]["seconds_mean"]
                     / result["before"]["stages"][stage]["seconds_mean"], 3)
        for stage in result["after"]["stages"] if stage in result["before"]["stages"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["seconds_ratio_after_to_before"]))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

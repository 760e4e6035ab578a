"""Re-run only the segmenter stages (5–7 and seed-only) of each fold of
``real_cross_validation.py`` with other segmenter settings, reusing the fold's classifier,
seeds, DCGAN and converter (they do not depend on those settings), then evaluate as before.

    python benchmarks/real_cv_segmenter_variant.py --work /tmp/cv2 --name balanced \\
        --set segmenter.balance_seeds=true

Writes benchmarks/results/real_cv_<name>.json in the form of real_cross_validation.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_cross_validation as cv  # noqa: E402
from machine import describe_machine  # noqa: E402

LATER = ("segmenter", "refinement", "under", "over", "seed_only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="the cross-validation folder")
    parser.add_argument("--name", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    base = json.loads((args.work / "folds.json").read_text())
    out = args.work.parent / f"{args.work.name}_{args.name}"
    done_path = out / "folds.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    for k, fold in sorted(base.items()):
        if k in done:
            continue
        source, target = args.work / f"fold{k}", out / f"fold{k}"
        if not (target / "run").exists():
            shutil.copytree(source / "run", target / "run",
                            ignore=shutil.ignore_patterns(*LATER))
            manifest_path = target / "run" / "manifest.json"
            manifest = json.loads(manifest_path.read_text())
            for stage in LATER:
                manifest["stages"].pop(stage, None)
            manifest_path.write_text(json.dumps(manifest, indent=2))
        done[k] = cv.run_fold(int(k), fold["held_out"], out, args.set)
        done_path.write_text(json.dumps(done, indent=2, default=float))
    folds_done = [done[k] for k in sorted(done)]
    result = {"machine": describe_machine(), "variant": args.name, "overrides": args.set,
              "reused_from": str(args.work), "summary": cv.summarise(folds_done),
              "stage_seconds": [f["stage_seconds"] for f in folds_done]}
    path = cv.RESULTS / f"real_cv_{args.name}.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    for cohort, methods in result["summary"].items():
        print(f"\n{cohort}")
        for method, metrics in sorted(methods.items()):
            print(f"  {method:<22}" + "  ".join(
                f"{m} {metrics[m]['mean']:.3f}" for m in cv.METRICS))


if __name__ == "__main__":
    main()

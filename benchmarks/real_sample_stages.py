"""Issue 3's real-data check (and a first look at stage 5): train the stages on brats2018-sample (6 train / 2 validation cases),
record stage wall times, classifier AUC/sensitivity/specificity and the seed overlap of RISE and
Grad-CAM++, and name the machine.

    python benchmarks/real_sample_stages.py --out /tmp/real_run [--profile fast] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-sample"
VAL = ["Brats18_CBICA_AAB_1", "Brats18_TCIA08_105_1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="run folder (new, or --resume)")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--result", type=Path,
                        default=REPO / "benchmarks" / "results" / "real_sample_stages.json")
    args = parser.parse_args()

    from WeakSegLib.config import get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.events import EventWriter
    from WeakSegLib.pipeline import train

    started = time.monotonic()
    manifest = train(discover_cohort(DATA), args.out, get_profile(args.profile),
                     device=args.device, resume=args.resume, val_cases=VAL,
                     events=EventWriter(args.out.parent / f"{args.out.name}.events.jsonl"))
    result = {
        "machine": describe_machine(), "profile": args.profile, "device": args.device,
        "data": str(DATA), "split": manifest.data["split"],
        "this_call_seconds": round(time.monotonic() - started, 1),
        "stage_seconds": {s: e.get("seconds") for s, e in manifest.data["stages"].items()},
    }
    result["stage_seconds_total"] = round(sum(v or 0 for v in result["stage_seconds"].values()), 1)
    for stage in ("classifier", "seeds", "dcgan", "converter", "segmenter"):
        path = args.out / stage / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            metrics.pop("history", None)
            result[stage] = metrics
    figures = {"classifier/figures/history.png": "classifier_history.png",
               "seeds/figures/seeds.png": "seeds.png", "dcgan/figures/samples.png": "dcgan_samples.png",
               "converter/figures/variants.png": "converter_variants.png",
               "segmenter/figures/segmentations.png": "segmenter.png"}
    for source, name in figures.items():
        if (args.out / source).is_file():
            target = args.result.parent / f"{args.result.stem}_{name}"
            target.write_bytes((args.out / source).read_bytes())
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

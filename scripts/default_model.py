"""Make the default model shipped with the extension (WeakSeg/Resources/Models/default).

Trained from slice labels only on the public BraTS 2018 cases of ../shared/data/
brats2018-multimodal (FLAIR, T1, T1ce, T2), fast profile, then exported compactly: only the
networks the default method and the review priority need, weights in float16.

    # the model of fold 0 of the cross-validation (13 training + 3 validation patients; its 4
    # held-out patients give an honest figure for the model card):
    python benchmarks/cohort_cv.py --work /work/cv/run1 --folds 0
    python scripts/default_model.py --run /work/cv/run1/fold0/run --fold 0 --cv /work/cv/run1

    # or every patient (17 training + 3 validation; no held-out figure of its own):
    python scripts/default_model.py --train /tmp/default_run

Writes WeakSeg/Resources/Models/default/ (manifest.json, classifier/, converter/, the
segmenters) and its model_card.json (data, channels, split, held-out Dice where known).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-multimodal"
TARGET = REPO / "WeakSeg" / "Resources" / "Models" / "default"
#: the default method, and the two other segmenters the review priority's disagreement reads
METHODS = "self_trained,initial,seed_only"
VALIDATION = ["Brats18_CBICA_AQO_1", "Brats18_CBICA_ASG_1", "Brats18_CBICA_ATD_1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="an existing run folder to export")
    source.add_argument("--train", type=Path, help="train on every patient into this folder")
    parser.add_argument("--fold", type=int, help="the CV fold --run belongs to (model card)")
    parser.add_argument("--cv", type=Path, help="the CV work folder (folds.json) of that fold")
    parser.add_argument("--report", type=Path,
                        help="the evaluate report (metrics.json folder) of --run on the fold's "
                             "held-out patients, when --run is a rerun of the fold "
                             "(benchmarks/selftrain_rerun.py) and folds.json holds the old one")
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--set", action="append", default=[], metavar="inference.FIELD=VALUE",
                        help="an inference setting the shipped bundle records in place of the "
                             "run's (inference settings do not touch the weights), e.g. "
                             "inference.test_time_flips=classifier")
    args = parser.parse_args()
    if any(not s.startswith("inference.") for s in args.set):
        sys.exit("default_model: only inference.* settings can change without training again")
    weakseg = [sys.executable, "-m", "WeakSegLib.cli"]
    run = args.run
    if args.train:
        run = args.train
        subprocess.run([*weakseg, "train", "--data", str(DATA), "--out", str(run), "--profile",
                        "fast", "--device", "cpu", "--val-cases", ",".join(VALIDATION)],
                       check=True)
    subprocess.run([*weakseg, "export-model", "--model", str(run), "--out", str(args.out),
                    "--methods", METHODS, "--overwrite"], check=True)
    manifest = json.loads((run / "manifest.json").read_text())
    if args.set:
        record_inference_settings(args.out / "manifest.json", args.set)
    card = {"data": "BraTS 2018 training cases of ../shared/data/brats2018-multimodal (CBICA; "
                    "skull-stripped, co-registered, 1 mm) — data © the BraTS organisers",
            "supervision": "slice labels only (derived from the masks); masks never trained it",
            "channels": manifest["channels"], "profile": manifest["profile"],
            "train_cases": manifest["split"]["train"],
            "validation_cases": manifest["split"]["val"], "methods": METHODS.split(","),
            "weights": "float16"}
    if args.fold is not None and args.cv:
        fold = json.loads((args.cv / "folds.json").read_text())[str(args.fold)]
        card["held_out_cases"] = fold["test"]
        methods = fold["methods"]
        if args.report:
            methods = {m: values["per_case"] for m, values in json.loads(
                (args.report / "metrics.json").read_text())["methods"].items()}
        card["held_out_volume_dice"] = {
            m: {c: v["volume_dice"] for c, v in methods[m].items()}
            for m in ("self_trained", "self_trained_pp", "flair_threshold") if m in methods}
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2))
    print(json.dumps(card, indent=2))


def record_inference_settings(manifest_path: Path, assignments: list[str]) -> None:
    """Apply ``assignments`` (inference.FIELD=VALUE) to the exported manifest's recorded
    profile, checked by the config's own parser, and note them under ``exported_from``."""
    from WeakSegLib.config import apply_overrides, profile_from_dict

    data = json.loads(manifest_path.read_text())
    profile = apply_overrides(profile_from_dict(data["config"]), assignments)
    data["config"]["inference"] = profile.to_dict()["inference"]
    data["exported_from"]["inference_settings"] = assignments
    manifest_path.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()

"""The ``weakseg`` command line. Each sub-command is a thin shell over the library.

Bad input ends with one line naming the file and the problem (exit status 2), never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .config import apply_overrides, get_profile
from .data.cohort import Cohort, discover_cohort
from .data.errors import InputError
from .events import EventWriter

EXIT_BAD_INPUT = 2


def _pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, target = value.partition("=")
        if not sep or not key or not target:
            raise InputError(None, f"{what} '{value}' must look like KEY=VALUE")
        out[key.strip()] = target.strip()
    return out


def _say(args: argparse.Namespace, text: str) -> None:
    """Human-readable output; moves to stderr when stdout carries the event stream."""
    print(text, file=sys.stderr if args.events == "-" else sys.stdout)


def _cohort(args: argparse.Namespace) -> Cohort:
    return discover_cohort(args.data, aliases=_pairs(args.alias, "--alias"),
                           mapping=_pairs(args.map, "--map"))


def _add_data_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", required=required, type=Path,
                        help="a folder of case folders, or one case folder")
    parser.add_argument("--alias", action="append", metavar="NAME=MODALITY",
                        help="extra file-name token for a modality, e.g. FLAIRREG=flair (repeatable)")
    parser.add_argument("--map", action="append", metavar="MODALITY=FILE",
                        help="explicit file of a modality for a single case, e.g. flair=scan.nrrd")


def _add_brain_mask_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--brain-mask", choices=["auto", "on", "off"], default=None,
                        help="brain mask: 'on' extracts the brain (deepbet) of scans with their "
                        "skull, 'off' takes the non-zero voxels (BraTS), 'auto' (default, config "
                        "data.brain_mask) extracts unless the scan has a zero background")


def cmd_phantom(args: argparse.Namespace, events: EventWriter) -> int:
    from .data.phantom import build_phantom_cohort

    if args.cases < 1:
        raise InputError(None, f"--cases must be at least 1, got {args.cases}")
    folders = build_phantom_cohort(args.out, cases=args.cases, seed=args.seed,
                                   shape_scale=args.scale, show_progress=not args.quiet)
    for folder in folders:
        events.artefact("phantom", folder)
    _say(args, f"wrote {len(folders)} phantom cases to {args.out}")
    return 0


def cmd_baseline(args: argparse.Namespace, events: EventWriter) -> int:
    from .baselines import IMAGE_BASELINES
    from .data.brain_mask import attach_brain_mask
    from .data.reader import read_case, write_label_map
    from .progress import track

    method = IMAGE_BASELINES[args.method]
    cfg = get_profile("paper").baseline
    cohort = _cohort(args)
    outputs = [Path(args.out) / c.name / f"{c.name}_{args.method}.nii.gz" for c in cohort]
    existing = [p for p in outputs if p.exists()]
    if existing and not args.overwrite:
        raise InputError(existing[0], f"already exists ({len(existing)} of {len(outputs)} outputs "
                         "do); choose another --out or pass --overwrite")
    for files, path in zip(track(cohort.cases, args.method, events=events, stage=args.method,
                                 show=not args.quiet), outputs):
        case = read_case(files)
        attach_brain_mask(case, get_profile("paper").data, "auto", events, mode=args.brain_mask)
        write_label_map(path, case.to_input(method(case, cfg)), case.input_geometry,
                        overwrite=True)
        events.artefact(args.method, path)
    _say(args, f"wrote {args.method} label maps for {len(outputs)} cases to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace, events: EventWriter) -> int:
    """Phantom cohort → the whole pipeline (fast profile, demo-sized) → held-out evaluation."""
    from .config import DEMO_OVERRIDES
    from .evaluation.tables import format_table
    from .inference.bundle import load_bundle
    from .inference.evaluate import evaluate_model
    from .pipeline import train

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise InputError(out, "exists and is not empty; choose another --out or pass --overwrite")
    if out.exists() and args.overwrite:
        import shutil

        shutil.rmtree(out)
    if args.cases < 4:
        raise InputError(None, f"--cases must be at least 4 (train, validate, hold out 2), got "
                         f"{args.cases}")
    started = time.monotonic()
    data, run_dir, report_dir = out / "phantom", out / "run", out / "report"
    phantom = build_parser().parse_args(["phantom", "--out", str(data), "--cases",
                                         str(args.cases), "--seed", str(args.seed), "--scale",
                                         str(args.scale)] + (["--quiet"] if args.quiet else []))
    phantom.events = args.events
    cmd_phantom(phantom, events)
    cohort = discover_cohort(data)
    # the held-out pair is never seen in training: model selection and the gate use a
    # validation case among the training ones, as a real run would
    held_out, validation = cohort.names[-2:], cohort.names[-3:-2]
    spacing = [f"data.inplane_spacing={1 / args.scale:g}"]   # trained on the phantom's own grid
    profile = apply_overrides(get_profile("fast"), DEMO_OVERRIDES + spacing + (args.set or []))
    _say(args, f"training on {len(cohort) - 3} phantom cases (+ {validation[0]} for validation), "
               f"holding out {', '.join(held_out)}")
    manifest = train(cohort.select(cohort.names[:-2]), run_dir, profile, device=args.device,
                     val_cases=validation, events=events, show_progress=not args.quiet)
    trained = time.monotonic() - started
    report = evaluate_model(load_bundle(run_dir, args.device), cohort.select(held_out),
                            report_dir, events=events, show_progress=not args.quiet)
    _say(args, "\n" + format_table(report, per_case=False))
    _say_review(args, report)
    stage_times = ", ".join(f"{s} {e.get('seconds', 0):.0f}s"
                            for s, e in manifest.data["stages"].items())
    _say(args, f"\nstages: {stage_times}\ntraining {trained:.0f} s, whole demo "
               f"{time.monotonic() - started:.0f} s; inference "
               f"{report['timing']['inference_seconds_per_volume']:.1f} s per volume")
    _say(args, f"report: {report_dir / 'report.html'}  (phantom cases are for trying WeakSeg, "
               "not for claims about accuracy)")
    _demo_real_cases(args, out, events)
    return 0


def _demo_real_cases(args: argparse.Namespace, out: Path, events: EventWriter) -> None:
    """The shipped default model on the real patients of ``--real`` (default: the project's
    ``../shared/data/brats2018-multimodal`` when present) that it never saw in training or
    validation, beside flair_threshold: what the pipeline does on patients, honestly held out."""
    from .evaluation.tables import format_table
    from .inference.bundle import load_bundle, unseen_cases
    from .inference.evaluate import evaluate_model
    from .paths import shared_real_cases, shipped_default_model

    folder = args.real or shared_real_cases()
    model = shipped_default_model()
    if args.no_real or folder is None or model is None:
        return
    bundle = load_bundle(model, args.device)
    cohort = discover_cohort(folder).with_masks()
    unseen = unseen_cases(bundle, cohort)
    if not unseen:
        _say(args, f"\n{folder}: every case with a mask was seen by the default model in "
                   "training or validation; no real held-out evaluation")
        return
    _say(args, f"\nthe shipped default model (trained on slice labels of "
               f"{len(bundle.split.get('train', []))} real BraTS patients) on the "
               f"{len(unseen)} patients of {folder} it never saw: {', '.join(unseen)}")
    report = evaluate_model(bundle, cohort.select(unseen), out / "real_report", events=events,
                            show_progress=not args.quiet)
    _say(args, "\n" + format_table(report, per_case=False))
    methods, shown = report["methods"], report["review"]["method"]    # segment's output
    _say(args, f"\n{shown}: volume Dice {methods[shown]['volume_dice']:.3f} against "
               f"flair_threshold {methods['flair_threshold']['volume_dice']:.3f} on these "
               f"{len(unseen)} patients (report: {out / 'real_report' / 'report.html'}; the "
               "20-patient cross-validation in the README is the claim)")


def _say_review(args: argparse.Namespace, report: dict) -> None:
    """The default method's seed-000 filtering table and how well its review priority finds
    the bad slices (evaluate --model only)."""
    from .evaluation.html import format_filtering_table

    method = report.get("default_method")
    if method and method in report.get("filtering", {}):
        _say(args, f"\ndifference-score filtering, {method}:\n"
             + format_filtering_table(report, method))
    review = report.get("review")
    if review:
        k = review["percents"].index(10) if 10 in review["percents"] else -1
        _say(args, f"\nreview priority of {method}: AUROC for 'slice Dice < 0.5' "
             + ", ".join(f"{n} {v:.3f}" for n, v in review["auroc"].items())
             + f"; volume Dice after correcting {review['percents'][k]} % of segmented slices: "
             + ", ".join(f"{n} {v[k]:.3f}" for n, v in review["curves"].items()))


def cmd_evaluate(args: argparse.Namespace, events: EventWriter) -> int:
    from .evaluation.scoring import evaluate_predictions, write_report
    from .evaluation.tables import format_table

    if bool(args.pred) == bool(args.model):
        raise InputError(None, "give exactly one of --pred PRED_DIR (score label maps) or "
                         "--model RUN_DIR (segment with every method of a run, then score)")
    target = Path(args.out) / "metrics.json"
    if target.exists() and not args.overwrite:
        raise InputError(target, "already exists; choose another --out or pass --overwrite")
    if args.model:
        from .inference.bundle import load_bundle
        from .inference.evaluate import evaluate_model

        report = evaluate_model(load_bundle(args.model, args.device), _cohort(args), args.out,
                                overwrite=args.overwrite, events=events,
                                show_progress=not args.quiet, brain_mask=args.brain_mask)
        path = Path(args.out) / "metrics.json"
    else:
        report = evaluate_predictions(args.pred, _cohort(args), events=events,
                                      show_progress=not args.quiet)
        path = write_report(report, args.out)
    for method, result in report["methods"].items():
        for name in ("slice_dice", "tumour_slice_dice", "volume_dice", "hd95_mm"):
            events.metric("evaluate", f"{method}/{name}", result[name])
    events.artefact("evaluate", path)
    _say(args, format_table(report, per_case=not args.summary))
    _say_review(args, report)
    if "classifier" in report:
        c = report["classifier"]
        _say(args, f"\nclassifier on {c['n_slices']} slices: AUC {c['auc']:.3f}, sensitivity "
             f"{c['sensitivity']:.3f}, specificity {c['specificity']:.3f}")
    _say(args, f"\nmetrics written to {path}"
         + (f", report {Path(args.out) / 'report.html'}" if args.model else ""))
    return 0


def cmd_segment(args: argparse.Namespace, events: EventWriter) -> int:
    from .inference.bundle import default_method, load_bundle
    from .inference.segment import segment_cohort

    bundle = load_bundle(args.model, args.device)    # a mixed run offers one method: "mixed"
    requested = args.method or default_method(bundle)
    methods = bundle.methods if requested == "all" else [
        m.strip() for m in requested.split(",") if m.strip()]
    cohort = discover_cohort(args.input, aliases=_pairs(args.alias, "--alias"),
                             mapping=_pairs(args.map, "--map"))
    results = segment_cohort(bundle, cohort, args.out, methods, overwrite=args.overwrite,
                             postprocess=args.postprocess, events=events,
                             show_progress=not args.quiet, brain_mask=args.brain_mask)
    seconds = sum(r.seconds for r in results)
    _say(args, f"segmented {len(results)} case(s) with {', '.join(methods)} in {seconds:.1f} s "
               f"({seconds / max(len(results), 1):.1f} s per volume) → {args.out}")
    return 0


def cmd_export_model(args: argparse.Namespace, events: EventWriter) -> int:
    from .export.bundle import export_bundle

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    summary = export_bundle(args.model, args.out, methods, half=not args.float32,
                            overwrite=args.overwrite)
    for path in summary["files"]:
        events.artefact("export", Path(path))
    _say(args, f"exported {', '.join(summary['stages'])} ({summary['megabytes']:.1f} MB) → "
               f"{args.out}")
    return 0


def _slice_labels(args: argparse.Namespace, cohort: Cohort) -> dict | None:
    if not (args.labels or args.ranges):
        return None
    from .data.labels import labels_from_csv, labels_from_ranges
    from .data.reader import read_shape

    def depth(path: Path) -> int:          # header only: the voxels are read later, once
        shape = read_shape(path)
        return shape[0] if len(shape) > 2 else 1

    n_slices = {c.name: depth(c.images["flair"]) for c in cohort}
    if args.labels:
        return labels_from_csv(args.labels, n_slices)
    return labels_from_ranges(args.ranges, n_slices)


def cmd_train(args: argparse.Namespace, events: EventWriter) -> int:
    from .pipeline import STAGES, train

    cohort = _cohort(args)
    stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
    brain = [f"data.brain_mask={args.brain_mask}"] if args.brain_mask else []
    try:
        profile = apply_overrides(get_profile(args.profile), (args.set or []) + brain)
    except ValueError as err:
        raise InputError(None, str(err)) from None
    if args.mode == "mixed":            # seed 001: full masks + slice labels (issue 7)
        from .pipeline import train_mixed_cohort

        if args.stages or args.val_cases or args.channels:
            raise InputError(None, "--stages, --val-cases and --channels belong to --mode weak")
        run = train_mixed_cohort(
            cohort, args.out, profile, full_cases=[c.strip() for c in
                                                   (args.full_cases or "").split(",") if c.strip()],
            review_records=args.review, labels=_slice_labels(args, cohort), device=args.device,
            accepted_from=args.accepted_from, base=args.base,
            events=events, resume=args.resume, show_progress=not args.quiet)
        kind = f"refined from {args.base}" if args.base else "mixed supervision"
        _say(args, f"{kind}: {run.metrics['composition']}, "
                   f"{run.metrics['epochs_run']} epochs\nmodel: {run.model_path}")
        return 0
    if args.full_cases or args.review or args.accepted_from or args.base:
        raise InputError(None, "--full-cases, --review, --accepted-from and --base need "
                         "--mode mixed")
    manifest = train(cohort, args.out, profile, device=args.device,
                     stages=stages, resume=args.resume, events=events,
                     val_cases=args.val_cases.split(",") if args.val_cases else None,
                     labels=_slice_labels(args, cohort), show_progress=not args.quiet,
                     channels=args.channels.split(",") if args.channels else None)
    lines = [f"{name:<12}{entry.get('status', '-'):<9}{entry.get('seconds', 0):>9.1f} s"
             for name, entry in manifest.data["stages"].items()]
    _say(args, "stage       status      time\n" + "\n".join(lines))
    _say(args, f"run folder: {args.out} (stages available: {', '.join(STAGES)})")
    return 0


def cmd_postprocess(args: argparse.Namespace, events: EventWriter) -> int:
    """Anatomical-consistency operations on one label map, on its own grid."""
    import SimpleITK as sitk

    from .data.reader import Geometry, read_image, write_label_map
    from .postprocess.ops import apply_ops, parse_ops

    try:
        parse_ops(args.ops)
    except ValueError as err:
        raise InputError(None, f"--ops: {err}") from None
    image = read_image(args.input)
    geometry = Geometry.of(image)
    context: dict = {"spacing": geometry.spacing_zyx}
    if args.reference:
        reference = read_image(args.reference)
        if diffs := Geometry.of(reference).differences(geometry):
            raise InputError(args.reference, "is not on the label map's grid: " + "; ".join(diffs))
        intensity = sitk.GetArrayFromImage(reference).astype("float32")
        context.update(intensity=intensity, brain=intensity != 0)
    try:
        result = apply_ops(sitk.GetArrayFromImage(image) > 0, args.ops, **context)
    except ValueError as err:
        raise InputError(args.input, str(err)) from None
    write_label_map(args.out, result, geometry, overwrite=args.overwrite)
    events.artefact("postprocess", args.out)
    _say(args, f"wrote {args.out} ({int(result.sum())} voxels after {args.ops})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weakseg",
        description="Weakly supervised brain-tumour segmentation from slice-level labels.")
    parser.add_argument("--version", action="version", version=f"weakseg {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--events", metavar="FILE|-",
                        help="write JSON-lines events to FILE, or to stdout with '-'")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("phantom", parents=[common], help="build a simulated BraTS-style cohort",
                       description="Simulated gliomas on the MNI152 template, in BraTS 2018 "
                       "layout (FLAIR, T1, T1ce, T2, seg). For tests and demos, not for claims.")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0,
                   help="grid scale: 1 gives 1 mm voxels like BraTS, 0.5 gives 2 mm (faster)")
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser("baseline", parents=[common], help="segment with a non-learned baseline")
    p.add_argument("--method", choices=["flair_threshold"], default="flair_threshold")
    _add_data_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="prediction folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace existing label maps")
    _add_brain_mask_argument(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("evaluate", parents=[common], help="score label maps or a trained run against masks",
                       description="With --pred: reads PRED_DIR/<case>/<case>_<method>.nii.gz. "
                       "With --model: segments every case with every method of the run plus "
                       "the baselines. Writes REPORT_DIR/metrics.json and a table on stdout.")
    p.add_argument("--pred", type=Path, help="folder of predicted label maps")
    p.add_argument("--model", type=Path, help="run folder: segment with its every method and "
                   "the baselines, then score (writes predictions/, report.html)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _add_data_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument("--summary", action="store_true", help="print only the per-method means")
    p.add_argument("--overwrite", action="store_true", help="replace an existing metrics.json")
    _add_brain_mask_argument(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("segment", parents=[common], help="segment cases with a trained run",
                       description="Writes OUT/<case>/<case>_<method>.nii.gz (label map on the "
                       "input grid), <case>_<method>.seg.nrrd (Slicer segmentation, segment "
                       "'Tumor') and <case>_slices.csv (slice, classifier_score, "
                       "difference_score, review_priority, flagged). Needs no mask.")
    p.add_argument("--model", required=True, type=Path,
                   help="run folder of `weakseg train`, or 'default' for the bundle shipped with "
                   "the extension (WeakSeg/Resources/Models/default)")
    p.add_argument("--input", required=True, type=Path, help="a case folder or a cohort folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--method", default=None,
                   help="self_trained (the default, config inference.default_method), combined, "
                   "combined_score_weight, initial, under, over, seed_only, l1_baseline, a "
                   "comma-separated list, or 'all'")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--postprocess", metavar="OPS|none",
                   help="post-processing operations (see `weakseg postprocess`); default: the "
                   "run's profile, min_volume:500,fill_holes; 'none' for the raw segmentation")
    p.add_argument("--alias", action="append", metavar="NAME=MODALITY",
                   help="extra file-name token for a modality (repeatable)")
    p.add_argument("--map", action="append", metavar="MODALITY=FILE",
                   help="explicit file of a modality for a single case")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_brain_mask_argument(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("export-model", parents=[common],
                       help="compact copy of a run for shipping (fp16, only the needed networks)",
                       description="Copies the classifier, the converter and the segmenters "
                       "that --methods need, weights in float16, with the run's manifest; the "
                       "copy opens with `segment --model OUT` like the run itself.")
    p.add_argument("--model", required=True, type=Path, help="run folder of `weakseg train`")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--methods", default="self_trained,initial,seed_only",
                   help="methods the copy must offer (their networks are kept)")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export_model)

    p = sub.add_parser("postprocess", parents=[common],
                       help="anatomical-consistency operations on a label map",
                       description="Operations in order, e.g. --ops largest,fill_holes,"
                       "min_volume:100. Known: largest, fill_holes, min_volume:MM3, open[:LENGTH], "
                       "inside, left, right, tube, tumour[:MIN_SLICES]. left/right/tube need "
                       "--reference (the image: brain mask and intensities).")
    p.add_argument("--input", required=True, type=Path, help="label map (NIfTI/NRRD)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--ops", required=True)
    p.add_argument("--reference", type=Path, help="image on the same grid (e.g. FLAIR)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_postprocess)

    p = sub.add_parser("demo", parents=[common],
                       help="phantom cohort → whole pipeline → held-out evaluation",
                       description="Builds a phantom cohort, trains the whole pipeline with a "
                       "demo-sized fast profile on all but 2 cases (one of them for validation), "
                       "evaluates every method and "
                       "the baselines on those 2, prints the table and writes the HTML report.")
    p.add_argument("--out", type=Path, default=Path("demo"))
    p.add_argument("--cases", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=0.5,
                   help="phantom grid scale (0.5: 2 mm voxels, the demo's default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a config value of the demo profile (repeatable)")
    p.add_argument("--real", type=Path, metavar="DIR",
                   help="real BraTS-layout cases with masks: the shipped default model is "
                        "evaluated on those it never saw (default: ../shared/data/"
                        "brats2018-multimodal beside the repository, when present)")
    p.add_argument("--no-real", action="store_true", help="phantoms only")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", parents=[common], help="train the weakly supervised pipeline",
                       description="Trains the stages on slice labels (from masks, --labels or "
                       "--ranges) into a run folder, the model bundle. Resumable.")
    _add_data_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="run folder (must be new unless --resume)")
    p.add_argument("--profile", choices=["fast", "paper"], default="fast")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--stages", help="comma-separated stages to run (default: all)")
    p.add_argument("--resume", action="store_true", help="continue a run; done stages are kept")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a config value, e.g. classifier.epochs=3 (repeatable)")
    p.add_argument("--val-cases", help="comma-separated validation cases (default: a random 25 %%)")
    p.add_argument("--channels", metavar="MODALITY,...",
                   help="the model's input modalities, e.g. flair (default: those every case "
                   "has); the bundle records them and segment reads the same")
    _add_brain_mask_argument(p)
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", type=Path, help="labels.csv with case,slice,label")
    labels.add_argument("--ranges", type=Path, help="CSV with case,first_slice,last_slice")
    p.add_argument("--mode", choices=["weak", "mixed"], default="weak",
                   help="weak: the pipeline on slice labels; mixed: a U-Net with a "
                   "classification branch on full masks + slice labels (seed 001)")
    p.add_argument("--full-cases", metavar="CASE,...",
                   help="--mode mixed: cases whose masks are full annotations")
    p.add_argument("--review", type=Path, metavar="RECORDS.json",
                   help="--mode mixed: review records; accepted/corrected slices become masks")
    p.add_argument("--accepted-from", type=Path, metavar="SEGMENT_DIR",
                   help="--mode mixed: a `weakseg segment` output; its unflagged slices "
                   "(difference score ≥ 0.2) become masks too (seed 000 §5)")
    p.add_argument("--base", type=Path, metavar="RUN",
                   help="--mode mixed: a weak run whose self-trained segmenter the reviewed "
                   "slices fine-tune (it keeps what it learned); the output is a complete "
                   "weak bundle. Without it, seed 001's U-Net trains from scratch")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    events = EventWriter(args.events)
    func: Callable[[argparse.Namespace, EventWriter], int] = args.func
    started = time.monotonic()
    try:
        events.stage_start(args.command)
        status = func(args, events)
        events.stage_end(args.command, time.monotonic() - started)
        events.run_end("done")
        return status
    except InputError as err:
        events.error(err, stage=args.command)
        events.run_end("failed")
        print(f"weakseg {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        events.run_end("cancelled")
        print(f"weakseg {args.command}: cancelled", file=sys.stderr)
        return 130
    finally:
        events.close()


if __name__ == "__main__":
    sys.exit(main())

"""Run the pipeline's stages into a run folder, resumably, speaking Events.

``train()`` is what ``weakseg train`` and the Slicer job runner call; ``train_mixed_cohort`` is
``train --mode mixed`` (a run of the one stage ``mixed`` on slices with some masks). A run
folder is the model bundle: manifest, per-stage artefacts, cached slices, events — the same for
both modes, with the same resume checks (mode, data fingerprint, profile, settings).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from .config import MODALITIES, REQUIRED_MODALITY, Profile, get_profile
from .data.cohort import Cohort
from .data.errors import InputError
from .data.mixed_slices import MixedSlices
from .data.slices import SliceLabels, SliceSet, build_slice_set, cohort_fingerprint
from .events import EventWriter, TeeEventWriter
from .manifest import Manifest
from .progress import track
from .stages.base import RunContext, Stage
from .stages.classifier import ClassifierStage
from .stages.converter import ConverterStage
from .stages.dcgan import DcganStage
from .stages.mixed import STAGE as MIXED, MixedInputs, MixedStage, load_mixed_model
from .stages.run_folder import METRICS, MIXED_SLICE_CACHE, SLICE_CACHE
from .runtime import barrier, configure_backend, init_distributed, resolve_device, seed_everything
from .stages.refined_segmenters import OverSegmenterStage, SeedOnlyStage, UnderSegmenterStage
from .stages.refinement import RefinementStage
from .stages.review_refine import STAGE as REFINED, refine_with_review
from .stages.seeds import SeedsStage
from .stages.segmenter import SegmenterStage, load_segmenter
from .stages.self_training import SelfTrainStage, SupervisedReferenceStage

#: Stages in pipeline order.
STAGES: dict[str, type[Stage]] = {stage.name: stage for stage in (
    ClassifierStage, SeedsStage, DcganStage, ConverterStage, SegmenterStage, RefinementStage,
    UnderSegmenterStage, OverSegmenterStage, SeedOnlyStage, SelfTrainStage,
    SupervisedReferenceStage, MixedStage)}
#: What a run trains unless told otherwise: every stage of the weak mode but the fully
#: supervised reference, which needs masks and is the evaluation's ceiling, not a WeakSeg method.
DEFAULT_STAGES: tuple[str, ...] = tuple(s for s, stage in STAGES.items()
                                        if stage.mode == "weak" and s != "supervised")
#: mode → the stages a run of that mode trains by default
MODE_STAGES: dict[str, tuple[str, ...]] = {"weak": DEFAULT_STAGES, "mixed": (MIXED,)}


def split_cases(names: list[str], val_cases: Sequence[str] | None, seed: int,
                val_fraction: float = 0.25) -> tuple[list[str], list[str]]:
    """Patient-level split: explicit validation cases, or a seeded random quarter."""
    if val_cases:
        unknown = [c for c in val_cases if c not in names]
        if unknown:
            raise InputError(None, f"--val-cases not in the cohort: {', '.join(unknown)}")
        val = [n for n in names if n in val_cases]
    elif len(names) < 2:
        val = []
    else:
        n_val = max(1, round(val_fraction * len(names)))
        order = np.random.default_rng(seed).permutation(len(names))
        val = sorted(names[i] for i in order[:n_val])
    return [n for n in names if n not in val], val


def select_channels(cohort: Cohort, wanted: Sequence[str] | None) -> list[str]:
    """The model's channels: ``wanted`` (checked: known, FLAIR among them, every case has
    them), in canonical order; by default those every case has."""
    common = cohort.common_modalities()
    if not wanted:
        return common
    wanted = [w.strip().lower() for w in wanted if w.strip()]
    unknown = [w for w in wanted if w not in MODALITIES]
    if unknown:
        raise InputError(None, f"--channels: unknown modalities {unknown}; choose among "
                         f"{', '.join(MODALITIES)}")
    if REQUIRED_MODALITY not in wanted:
        raise InputError(None, f"--channels must include {REQUIRED_MODALITY}")
    lacking = [c.name for c in cohort if any(w not in c.images for w in wanted)]
    if lacking:
        raise InputError(cohort.cases[0].folder.parent if cohort.cases[0].folder else None,
                         f"--channels {','.join(wanted)}: cases {', '.join(lacking[:5])} lack "
                         f"some of them (every case has {', '.join(common)})")
    return [m for m in MODALITIES if m in wanted]


def check_training_classes(train_set: SliceSet, cohort: Cohort) -> None:
    """A training set needs tumour and healthy slices; say so before any stage runs (the
    class-balanced sampler cannot draw from an empty class)."""
    counts = np.bincount(np.asarray(train_set.labels, int), minlength=2)
    if counts.min() > 0:
        return
    where = cohort.cases[0].folder.parent if cohort.cases and cohort.cases[0].folder else None
    what = "no slices at all" if counts.sum() == 0 else (
        f"no {'tumour' if counts[1] == 0 else 'healthy'} slice ({counts[0]} healthy, "
        f"{counts[1]} tumour)")
    raise InputError(where, f"the training cases leave {what} after preprocessing (brain "
                     "mask, trimming data.trim_fraction, data.max_zero_fraction); the classifier "
                     "needs both. Add cases or lower data.trim_fraction / raise "
                     "data.max_zero_fraction")


def _slices(run_dir: Path, cohort: Cohort, profile: Profile, channels: list[str],
            labels: SliceLabels | None, show: bool, events: EventWriter,
            mixed: MixedInputs | None = None, device: object = "cpu") -> SliceSet:
    """The run's training slices, built once and cached in the run folder (``MixedSlices``
    for a mixed run)."""
    cache = run_dir / (SLICE_CACHE if mixed is None else MIXED_SLICE_CACHE)
    if cache.is_file():
        return SliceSet.load(cache) if mixed is None else MixedSlices.load(cache)

    def progress(cases):
        return track(cases, "preprocess", events=events, stage="preprocess", show=show)

    if mixed is None:
        slices = build_slice_set(cohort, profile.data, channels, labels, profile.runtime.seed,
                                 progress=progress, device=device, events=events)
    else:
        slices = mixed.build(cohort, profile, channels, labels, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    slices.save(cache)
    return slices


def train(cohort: Cohort, run_dir: Path, profile: Profile, device: str = "auto",
          stages: Sequence[str] | None = None, resume: bool = False,
          events: EventWriter | None = None, val_cases: Sequence[str] | None = None,
          labels: SliceLabels | None = None, show_progress: bool = True,
          mixed: MixedInputs | None = None, channels: Sequence[str] | None = None) -> Manifest:
    """Train the requested stages (default: those of the run's mode, ``MODE_STAGES``) into
    ``run_dir``. ``mixed`` (checked inputs of mixed supervision) makes it a mixed run.
    ``channels``: the model's input modalities (default: those every case has)."""
    events = events or EventWriter()
    run_dir = Path(run_dir)
    mode = "weak" if mixed is None else "mixed"
    wanted = list(stages) if stages else list(MODE_STAGES[mode])
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise InputError(None, f"unknown stages {unknown}; this version has {list(STAGES)}")
    other = [s for s in wanted if STAGES[s].mode != mode]
    if other:
        raise InputError(None, f"stages {other} do not belong to --mode {mode}")
    unlabelled = [] if mixed is not None else [
        c.name for c in cohort if c.mask is None and (labels is None or c.name not in labels)]
    if unlabelled:
        raise InputError(cohort.cases[0].folder.parent if cohort.cases[0].folder else None,
                         f"cases without a mask or slice labels: {', '.join(unlabelled)}; give "
                         "--labels labels.csv or --ranges ranges.csv for them")
    torch_device = resolve_device(device)
    dist = init_distributed(torch_device)
    if mixed is not None and dist.enabled:
        raise InputError(None, "mixed supervision trains in a single process; run it without "
                         "torchrun")
    if not dist.is_main:          # one event stream per run: rank 0 speaks for all
        events = EventWriter()
    configure_backend(profile.runtime, torch_device)
    seed_everything(profile.runtime.seed)
    channels = select_channels(cohort, channels)
    fingerprint = cohort_fingerprint(cohort)
    if dist.is_main:
        manifest = _open_manifest(run_dir, resume, profile, channels, fingerprint, cohort,
                                  val_cases, mode, None if mixed is None else mixed.settings)
    barrier(dist)
    if not dist.is_main:       # other ranks read what rank 0 decided (split, config)
        manifest = Manifest.load(run_dir)
    else:                      # the run keeps its own events.jsonl, whoever started it
        events = TeeEventWriter(run_dir / "events.jsonl", events)
    try:
        return _train_stages(run_dir, cohort, profile, wanted, resume, events, labels,
                             show_progress, torch_device, dist, manifest, mixed)
    except BaseException:
        events.run_end("failed")
        raise
    finally:
        if dist.is_main:
            events.close()


def _train_stages(run_dir: Path, cohort: Cohort, profile: Profile, wanted: list[str],
                  resume: bool, events: EventWriter, labels: SliceLabels | None,
                  show_progress: bool, torch_device, dist, manifest: Manifest,
                  mixed: MixedInputs | None = None) -> Manifest:
    events.run_start(run_dir, wanted)
    channels = list(manifest.data["channels"])
    slices = _slices(run_dir, cohort, profile, channels, labels, show_progress and dist.is_main,
                     events, mixed, torch_device) if dist.is_main else None
    barrier(dist)
    slices = slices or SliceSet.load(run_dir / SLICE_CACHE)
    if not isinstance(slices, MixedSlices):
        check_training_classes(slices.for_cases(manifest.data["split"]["train"]), cohort)
    if isinstance(slices, MixedSlices):        # trains on every case; no validation split
        if dist.is_main and manifest.data["data"].get("composition") != slices.composition():
            manifest.data["data"]["composition"] = slices.composition()
            manifest.save()
        train_set, val_set = slices, slices.subset(np.arange(0))
    else:
        split = manifest.data["split"]
        train_set, val_set = slices.for_cases(split["train"]), slices.for_cases(split["val"])
    ctx = RunContext(run_dir, profile, torch_device, train_set, val_set, events, dist,
                     show_progress, dict(mixed.settings) if mixed is not None else {})
    for name in wanted:
        if resume and manifest.status(name) == "done":
            events.log(f"{name}: already done, skipped", stage=name)
            continue
        missing = [r for r in STAGES[name].requires if manifest.status(r) != "done"]
        if missing:
            raise InputError(run_dir, f"stage '{name}' needs {missing} done first")
        _run_stage(STAGES[name](), ctx, manifest, events)
    events.run_end("done")
    return manifest


def _open_manifest(run_dir: Path, resume: bool, profile: Profile, channels: list[str],
                   fingerprint: str, cohort: Cohort, val_cases: Sequence[str] | None,
                   mode: str = "weak", settings: dict[str, Any] | None = None) -> Manifest:
    if (run_dir / "manifest.json").is_file():
        manifest = Manifest.load(run_dir)
        recorded_mode = manifest.data.get("mode", "weak")
        if recorded_mode != mode:
            raise InputError(run_dir, f"holds a --mode {recorded_mode} run, not a --mode {mode} "
                             "one; choose another --out")
        if not resume and any(manifest.status(s) for s in manifest.data["stages"]):
            raise InputError(run_dir, "already holds a run; pass --resume to continue it or "
                             "choose another --out")
        recorded = manifest.data["data"].get("fingerprint", fingerprint)   # older mixed runs
        if recorded != fingerprint:                                         # have none
            raise InputError(run_dir, "was trained on different data (fingerprint "
                             f"{manifest.data['data']['fingerprint']} vs {fingerprint})")
        if list(manifest.data.get("channels", channels)) != list(channels):
            raise InputError(run_dir, f"was trained on channels {manifest.data['channels']}, "
                             f"not {channels}; resume with the same --channels")
        if manifest.data["profile"] != profile.name:
            raise InputError(run_dir, f"was trained with profile '{manifest.data['profile']}', "
                             f"not '{profile.name}'")
        _check_resumable_config(manifest, profile, run_dir)
        if settings:
            now = json.loads(json.dumps(settings))
            differ = [k for k, v in now.items() if manifest.data["data"].get(k) != v]
            if differ:
                raise InputError(run_dir, "was trained on other mixed-supervision inputs; "
                                 f"resume with the same ones (differ: {', '.join(differ)})")
        return manifest
    if resume:
        raise InputError(run_dir, "nothing to resume: no manifest.json in this folder")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(run_dir, "exists and is not empty; choose a new --out folder")
    if mode == "mixed":       # every case trains; reviews and full cases say which have masks
        train_cases, val = list(cohort.names), []
    else:
        train_cases, val = split_cases(cohort.names, val_cases, profile.runtime.seed)
    return Manifest.create(run_dir, mode=mode, profile=profile.name, config=asdict(profile),
                           channels=channels,
                           data={"fingerprint": fingerprint, "cases": cohort.names,
                                 **json.loads(json.dumps(settings or {}))},
                           split={"train": train_cases, "val": val})


#: config section → the stages it configures (each stage names its section); data and runtime
#: shape every stage.
SECTION_STAGES: dict[str, list[str]] = {}
for _name, _stage in STAGES.items():
    SECTION_STAGES.setdefault(_stage.config_section, []).append(_name)


def _check_resumable_config(manifest: Manifest, profile: Profile, run_dir: Path) -> None:
    """Settings of finished stages (and of data/runtime) must not change on resume; settings of
    stages still to run may, and the manifest then records the new ones."""
    recorded, now = manifest.data["config"], json.loads(json.dumps(asdict(profile)))
    defaults = json.loads(json.dumps(asdict(get_profile(profile.name))))
    frozen, updated = [], []
    for section, values in now.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            old = recorded.get(section, {})
            if old.get(key) == value:
                continue
            if key not in old and defaults.get(section, {}).get(key) == value:
                updated.append(f"{section}.{key}")     # a setting newer than the run, at the
                continue                               # default the run was made with
            stages = SECTION_STAGES.get(section, [])
            shapes_all = not stages and section in ("data", "runtime")
            if shapes_all or any(manifest.status(s) == "done" for s in stages):
                frozen.append(f"{section}.{key}")
            else:
                updated.append(f"{section}.{key}")
    if frozen:
        raise InputError(run_dir, "was trained with other settings for what is already done; "
                         f"resume with the same ones (differ: {', '.join(frozen)})")
    if updated:
        manifest.data["config"] = now
        manifest.save()


def _run_stage(stage: Stage, ctx: RunContext, manifest: Manifest, events: EventWriter) -> None:
    events.stage_start(stage.name)
    if ctx.dist.is_main:
        manifest.mark(stage.name, "running")
    started = time.monotonic()
    try:
        artefacts = stage.run(ctx)
    except BaseException:
        seconds = time.monotonic() - started
        if ctx.dist.is_main:
            manifest.mark(stage.name, "failed", seconds)
        events.stage_end(stage.name, seconds, "failed")
        raise
    barrier(ctx.dist)
    seconds = time.monotonic() - started
    if ctx.dist.is_main:
        manifest.mark(stage.name, "done", seconds, [p for p in artefacts if p])
        for path in artefacts:
            if path:
                events.artefact(stage.name, path)
    events.stage_end(stage.name, seconds, "done")


@dataclass
class MixedRun:
    """A finished mixed-supervision run (or a run refined from a review): its folder, the
    stage whose network it trained, that network and its metrics."""
    run_dir: Path
    model: Any
    metrics: dict[str, Any]
    stage: str = MIXED

    @property
    def model_path(self) -> Path:
        return self.run_dir / self.stage / "model.pt"


def train_mixed_cohort(cohort: Cohort, run_dir: str | Path, profile: Profile,
                       full_cases: Collection[str] = (), review_records: str | Path | None = None,
                       label_maps: Mapping[str, str | Path] | None = None,
                       labels: SliceLabels | None = None, device: str = "auto",
                       events: EventWriter | None = None, resume: bool = False,
                       show_progress: bool = True, accepted_from: str | Path | None = None,
                       accepted_threshold: float | None = None,
                       base: str | Path | None = None) -> MixedRun:
    """What ``weakseg train --mode mixed`` and the Slicer "Retrain with reviewed slices" call:
    masks of ``full_cases`` and of the accepted/corrected slices in ``review_records``, slice
    labels (``labels``, else from masks) for the rest. ``accepted_from``: a ``weakseg
    segment`` output whose unflagged slices join as accepted annotations (reviews override).
    ``base``: a weak run whose self-trained segmenter is fine-tuned with those slices instead
    of training seed 001's U-Net from scratch (``stages/review_refine.py``); the result is a
    complete weak bundle. The inputs are checked before anything is written."""
    run_dir = Path(run_dir)
    inputs = MixedInputs.prepare(cohort, full_cases, review_records, label_maps, accepted_from,
                                 accepted_threshold)
    if base is not None:
        metrics = refine_with_review(base, cohort, inputs, run_dir, profile, labels, device,
                                     events, resume, show_progress)
        return MixedRun(run_dir, load_segmenter(run_dir, resolve_device("cpu"), REFINED),
                        metrics, REFINED)
    train(cohort, run_dir, profile, device, resume=resume, events=events, labels=labels,
          show_progress=show_progress, mixed=inputs)
    metrics = json.loads((run_dir / MIXED / METRICS).read_text())
    return MixedRun(run_dir, load_mixed_model(run_dir), metrics)

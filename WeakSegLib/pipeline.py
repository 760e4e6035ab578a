"""Run the pipeline's stages into a run folder, resumably, speaking Events.

``train()`` is what ``weakseg train`` and the Slicer job runner call. A run folder is the model
bundle: manifest, per-stage artefacts, cached slices, events.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import Profile, get_profile
from .data.cohort import Cohort
from .data.errors import InputError
from .data.slices import SliceLabels, SliceSet, build_slice_set, cohort_fingerprint
from .events import EventWriter, TeeEventWriter
from .manifest import Manifest
from .progress import track
from .stages.base import RunContext, Stage
from .stages.classifier import ClassifierStage
from .stages.converter import ConverterStage
from .stages.dcgan import DcganStage
from .runtime import barrier, configure_backend, init_distributed, resolve_device, seed_everything
from .stages.refined_segmenters import OverSegmenterStage, SeedOnlyStage, UnderSegmenterStage
from .stages.refinement import RefinementStage
from .stages.seeds import SeedsStage
from .stages.segmenter import SegmenterStage
from .stages.self_training import SelfTrainStage, SupervisedReferenceStage

#: Stages in pipeline order.
STAGES: dict[str, type[Stage]] = {stage.name: stage for stage in (
    ClassifierStage, SeedsStage, DcganStage, ConverterStage, SegmenterStage, RefinementStage,
    UnderSegmenterStage, OverSegmenterStage, SeedOnlyStage, SelfTrainStage,
    SupervisedReferenceStage)}
#: What a run trains unless told otherwise: every stage but the fully supervised reference,
#: which needs masks and is the evaluation's ceiling, not a WeakSeg method.
DEFAULT_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s != "supervised")


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


def _slices(run_dir: Path, cohort: Cohort, profile: Profile, channels: list[str],
            labels: SliceLabels | None, show: bool, events: EventWriter) -> SliceSet:
    cache = run_dir / "data" / "slices.npz"
    if cache.is_file():
        return SliceSet.load(cache)
    slices = build_slice_set(cohort, profile.data, channels, labels, profile.runtime.seed,
                             progress=lambda cases: track(cases, "preprocess", events=events,
                                                          stage="preprocess", show=show))
    cache.parent.mkdir(parents=True, exist_ok=True)
    slices.save(cache)
    return slices


def train(cohort: Cohort, run_dir: Path, profile: Profile, device: str = "auto",
          stages: Sequence[str] | None = None, resume: bool = False,
          events: EventWriter | None = None, val_cases: Sequence[str] | None = None,
          labels: SliceLabels | None = None, show_progress: bool = True) -> Manifest:
    """Train the requested stages (default: DEFAULT_STAGES) into ``run_dir``."""
    events = events or EventWriter()
    run_dir = Path(run_dir)
    wanted = list(stages) if stages else list(DEFAULT_STAGES)
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise InputError(None, f"unknown stages {unknown}; this version has {list(STAGES)}")
    unlabelled = [c.name for c in cohort
                  if c.mask is None and (labels is None or c.name not in labels)]
    if unlabelled:
        raise InputError(cohort.cases[0].folder.parent if cohort.cases[0].folder else None,
                         f"cases without a mask or slice labels: {', '.join(unlabelled)}; give "
                         "--labels labels.csv or --ranges ranges.csv for them")
    torch_device = resolve_device(device)
    dist = init_distributed(torch_device)
    if not dist.is_main:          # one event stream per run: rank 0 speaks for all
        events = EventWriter()
    configure_backend(profile.runtime, torch_device)
    seed_everything(profile.runtime.seed)
    channels = cohort.common_modalities()
    fingerprint = cohort_fingerprint(cohort)
    if dist.is_main:
        manifest = _open_manifest(run_dir, resume, profile, channels, fingerprint, cohort,
                                  val_cases)
    barrier(dist)
    if not dist.is_main:       # other ranks read what rank 0 decided (split, config)
        manifest = Manifest.load(run_dir)
    else:                      # the run keeps its own events.jsonl, whoever started it
        events = TeeEventWriter(run_dir / "events.jsonl", events)
    try:
        return _train_stages(run_dir, cohort, profile, wanted, resume, events, labels,
                             show_progress, torch_device, dist, manifest)
    finally:
        if dist.is_main:
            events.close()


def _train_stages(run_dir: Path, cohort: Cohort, profile: Profile, wanted: list[str],
                  resume: bool, events: EventWriter, labels: SliceLabels | None,
                  show_progress: bool, torch_device, dist, manifest: Manifest) -> Manifest:
    events.run_start(run_dir, wanted)
    channels = list(manifest.data["channels"])
    slices = _slices(run_dir, cohort, profile, channels, labels, show_progress and dist.is_main,
                     events) if dist.is_main else None
    barrier(dist)
    slices = slices or SliceSet.load(run_dir / "data" / "slices.npz")
    split = manifest.data["split"]
    ctx = RunContext(run_dir, profile, torch_device, slices.for_cases(split["train"]),
                     slices.for_cases(split["val"]), events, dist, show_progress)
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
                   fingerprint: str, cohort: Cohort, val_cases: Sequence[str] | None
                   ) -> Manifest:
    if (run_dir / "manifest.json").is_file():
        manifest = Manifest.load(run_dir)
        if not resume and any(manifest.status(s) for s in manifest.data["stages"]):
            raise InputError(run_dir, "already holds a run; pass --resume to continue it or "
                             "choose another --out")
        if manifest.data["data"]["fingerprint"] != fingerprint:
            raise InputError(run_dir, "was trained on different data (fingerprint "
                             f"{manifest.data['data']['fingerprint']} vs {fingerprint})")
        if manifest.data["profile"] != profile.name:
            raise InputError(run_dir, f"was trained with profile '{manifest.data['profile']}', "
                             f"not '{profile.name}'")
        _check_resumable_config(manifest, profile, run_dir)
        return manifest
    if resume:
        raise InputError(run_dir, "nothing to resume: no manifest.json in this folder")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(run_dir, "exists and is not empty; choose a new --out folder")
    train_cases, val = split_cases(cohort.names, val_cases, profile.runtime.seed)
    return Manifest.create(run_dir, profile=profile.name, config=asdict(profile),
                           channels=channels,
                           data={"fingerprint": fingerprint, "cases": cohort.names},
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

"""Learning from a review without forgetting (issue 13): fine-tune a weak run's self-trained
segmenter with the slices a radiologist accepted or corrected.

Seed 001's mixed-supervision U-Net (``train --mode mixed``) starts from nothing: trained on the
reviewed slices plus slice labels, it lost what the self-trained segmenter had learned from the
whole pipeline (held-out volume Dice 0.69 → 0.30 in benchmarks/review_loop.py). Here the
reviewed network itself goes on learning, from

* what it already knows — its own segmentation (S > threshold) of the base run's training
  slices, when the run folder still has them (``data/slices.npz`` and the stage's
  ``probabilities.npz``; an exported bundle has neither), empty where the slice label says
  healthy;
* the reviewed cases — every slice a reviewer accepted or corrected with its mask, counted
  ``selftrain.review_repeat`` times an epoch; their other slices with the base network's own
  segmentation (empty where their slice label says healthy), unless
  ``selftrain.review_own_output`` is off,

for ``selftrain.review_epochs`` epochs at ``selftrain.lr × review_lr_factor``. With
``selftrain.review_validation_fraction`` some reviewed patients stay out of the fine-tuning and
choose the epoch kept (0: the base network, unchanged) by the volume Dice on their reviewed
slices: patient-level validation, as the classifier's. The result is a
complete weak bundle (every network of the base run copied, ``self_train`` replaced), so
``segment``, ``evaluate``, ``export-model`` and the panel open it like any other run; its
manifest records the base run, its manifest hash and the review inputs.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Profile, profile_from_dict
from ..data.errors import InputError
from ..data.cohort import Cohort
from ..data.mixed_slices import MixedSlices
from ..data.slices import SliceLabels, SliceSet
from ..evaluation.metrics import per_slice_dice, volume_dice
from ..events import EventWriter, TeeEventWriter
from ..manifest import Manifest, file_hash
from ..models.unet import UNet
from ..models.weights import load_model, load_model_state, save_model
from ..progress import track
from ..runtime import resolve_device
from .base import RunContext
from .common import BestScore
from .mixed import MixedInputs
from .run_folder import CLASSIFIER_SCORES, METRICS, MODEL, PROBABILITIES, SLICE_CACHE, \
    load_probabilities
from .segmenter import load_segmenter, predict_probabilities
from .self_training import train_mask_segmenter

STAGE = "self_train"
#: what a bundle needs of every stage folder; probabilities, checkpoints and seeds stay behind
_BUNDLE_FILES = (MODEL, METRICS)


def check_base(base_dir: Path) -> Manifest:
    """The base must be a finished weak run with a self-trained segmenter."""
    if not (base_dir / "manifest.json").is_file():
        raise InputError(base_dir, "--base is not a WeakSeg run folder (no manifest.json)")
    manifest = Manifest.load(base_dir)
    if manifest.data.get("mode", "weak") != "weak" or manifest.status(STAGE) != "done":
        raise InputError(base_dir, "--base needs a weak run whose self_train stage is done "
                         "(the network a review corrects)")
    return manifest


def base_profile(base: Manifest, profile: Profile) -> Profile:
    """The base run's own settings (its data rules and networks must not change), with the
    review fine-tuning settings and budget of ``profile`` (``--set selftrain.review_...``)."""
    recorded = profile_from_dict(base.data["config"])
    wanted = profile.selftrain
    return replace(recorded, selftrain=replace(
        recorded.selftrain, review_repeat=wanted.review_repeat,
        review_lr_factor=wanted.review_lr_factor, review_epochs=wanted.review_epochs,
        review_own_output=wanted.review_own_output,
        review_validation_fraction=wanted.review_validation_fraction,
        time_budget_s=wanted.time_budget_s))


def copy_bundle(base_dir: Path, out_dir: Path, base: Manifest) -> None:
    """The networks (and what the gate reads) of the base run into ``out_dir``."""
    for stage in base.data["stages"]:
        for name in _BUNDLE_FILES:
            source = base_dir / stage / name
            if source.is_file():
                (out_dir / stage).mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, out_dir / stage / name)
    for relative in (CLASSIFIER_SCORES, SLICE_CACHE):
        if (base_dir / relative).is_file():
            (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base_dir / relative, out_dir / relative)


def _known_slices(base_dir: Path, base: Manifest, threshold: float,
                  reviewed_cases: list[str]) -> tuple[SliceSet | None, np.ndarray | None]:
    """The base run's training slices and its own self-trained segmentation of them, less the
    ``reviewed_cases`` (a training case a reviewer looked at trains once, as reviewed)."""
    if not (base_dir / SLICE_CACHE).is_file() or not (base_dir / STAGE / PROBABILITIES).is_file():
        return None, None
    slices = SliceSet.load(base_dir / SLICE_CACHE).for_cases(base.data["split"]["train"])
    S = load_probabilities(base_dir, STAGE)["train"]
    if len(S) != len(slices):
        return None, None
    targets = (S > threshold) & (slices.labels == 1)[:, None, None]
    keep = np.flatnonzero(~np.isin(np.asarray(slices.cases)[slices.case_index], reviewed_cases))
    if not len(keep):
        return None, None
    return slices.subset(keep), targets[keep]


def _joined(known: SliceSet | None, reviewed: MixedSlices) -> SliceSet:
    """One slice set: the base run's training slices first, then the reviewed cases'."""
    if known is None:
        return reviewed
    offset = len(known.cases)
    return SliceSet(np.concatenate([known.images, reviewed.images]),
                    np.concatenate([known.labels, reviewed.labels]),
                    np.concatenate([known.case_index, reviewed.case_index + offset]),
                    np.concatenate([known.slice_index, reviewed.slice_index]),
                    [*known.cases, *reviewed.cases], list(known.channels))


def _validation_cases(cases: list[str], fraction: float | None, seed: int) -> list[str]:
    """⌊fraction × n⌋ of the reviewed ``cases``, drawn with the run's seed (none when off)."""
    count = int(np.floor((fraction or 0.0) * len(cases)))
    if count < 1:
        return []
    return sorted(np.random.default_rng(seed).choice(sorted(cases), count,
                                                     replace=False).tolist())


class KeepBest:
    """The fine-tuning's epoch with the highest volume Dice on the validation patients'
    reviewed slices, saved to ``path`` (its score checkpointed, so a resume keeps it)."""

    def __init__(self, path: Path, images: np.ndarray, targets: np.ndarray, threshold: float,
                 ctx: RunContext) -> None:
        self.path, self.images, self.targets = path, images, targets > 0
        self.threshold, self.ctx, self.best = threshold, ctx, BestScore()
        self.base_score = float("nan")

    def __call__(self, epoch: int, network: torch.nn.Module) -> dict[str, float]:
        segmented = predict_probabilities(network, self.images, self.ctx) > self.threshold
        score = volume_dice(segmented, self.targets)
        if epoch == 0:
            self.base_score = score
        if self.best.improves(score) and self.ctx.dist.is_main:
            save_model(self.path, network, {"stage": STAGE, "epoch": epoch,
                                            "validation_dice": score})
        return {"validation_dice": score}

    def state_dict(self) -> dict[str, float]:
        return {**self.best.state_dict(), "base": self.base_score}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best.load_state_dict(state)
        self.base_score = float(state["base"])

    def kept_epoch(self) -> int:
        return int(load_model_state(self.path, UNet.architecture)[1]["epoch"])


def refine_with_review(base_dir: str | Path, cohort: Cohort, inputs: MixedInputs,
                       out_dir: str | Path, profile: Profile,
                       labels: SliceLabels | None = None, device: str = "auto",
                       events: EventWriter | None = None, resume: bool = False,
                       show_progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``base_dir``'s self-trained segmenter with the reviewed slices of ``inputs``
    (checked review inputs of ``cohort``; slice labels from ``labels``, else the masks) into a
    new bundle ``out_dir``; returns its metrics."""
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    events = events or EventWriter()
    base = check_base(base_dir)
    profile = base_profile(base, profile)
    record = {"run": str(base_dir.resolve()), "manifest_sha256": file_hash(base_dir /
                                                                        "manifest.json"),
              **json.loads(json.dumps(inputs.settings))}
    existing = Manifest.load(out_dir) if (out_dir / "manifest.json").is_file() else None
    if existing is not None:
        if not resume:
            raise InputError(out_dir, "already holds a run; pass --resume to continue it or "
                             "choose another --out")
        if existing.data.get("refined_from") != record:
            raise InputError(out_dir, "was refined from another base run or other review "
                             "inputs; resume with the same ones")
        if existing.status(STAGE) == "done":
            events.log(f"{STAGE}: already done, skipped", stage=STAGE)
            return json.loads((out_dir / STAGE / METRICS).read_text())
    elif resume:
        raise InputError(out_dir, "nothing to resume: no manifest.json in this folder")
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(out_dir, "exists and is not empty; choose a new --out folder")
    # the reviewed cases as the base run preprocesses them (its data rules and channels)
    reviewed = inputs.build(cohort, profile, list(base.data["channels"]), labels,
                            progress=lambda cases: track(cases, "preprocess", events=events,
                                                         stage="preprocess",
                                                         show=show_progress))
    if not reviewed.has_mask.any():
        raise InputError(None, "no accepted or corrected slice in the review records")
    manifest = existing
    if manifest is None:
        copy_bundle(base_dir, out_dir, base)
        data = json.loads(json.dumps(base.data))
        data["config"] = json.loads(json.dumps(profile.to_dict()))
        data["refined_from"] = record
        data["stages"][STAGE] = {"status": "running"}
        manifest = Manifest(out_dir, data)
        manifest.save()

    events = TeeEventWriter(out_dir / "events.jsonl", events)
    try:
        events.run_start(out_dir, [STAGE])
        metrics = _fine_tune(base_dir, base, reviewed, out_dir, profile, record,
                             resolve_device(device), events, show_progress)
        manifest.mark(STAGE, "done", metrics["seconds"],
                      [out_dir / STAGE / MODEL, out_dir / STAGE / METRICS])
        events.run_end("done")
    except BaseException:
        manifest.mark(STAGE, "failed")
        events.run_end("failed")
        raise
    finally:
        events.close()
    return metrics


def _fine_tune(base_dir: Path, base: Manifest, reviewed: MixedSlices, out_dir: Path,
               profile: Profile, record: dict[str, Any], device: torch.device,
               events: EventWriter, show_progress: bool) -> dict[str, Any]:
    """The training itself (resumable through the stage's epoch checkpoint)."""
    cfg, threshold = profile.selftrain, profile.inference.threshold
    started = time.monotonic()
    events.stage_start(STAGE)
    start = load_segmenter(base_dir, device, STAGE)
    looked_at = sorted({reviewed.cases[int(i)] for i in reviewed.case_index[reviewed.has_mask]})
    known, known_targets = _known_slices(base_dir, base, threshold, looked_at)
    joined = _joined(known, reviewed)
    ctx = RunContext(out_dir, profile, device, joined, joined.subset(np.arange(0)), events,
                     show_progress=show_progress, settings=record)
    # the reviewed cases' own slices: the reviewer's mask where given, else what the base
    # network segments there, empty on a slice labelled healthy
    own = predict_probabilities(start, reviewed.images, ctx)
    segmented = (own > threshold) & (reviewed.labels == 1)[:, None, None]
    new_targets = np.where(reviewed.has_mask[:, None, None], reviewed.masks > 0, segmented)
    targets = new_targets if known_targets is None else np.concatenate([known_targets,
                                                                        new_targets])
    offset = 0 if known is None else len(known)
    annotated = offset + np.flatnonzero(reviewed.has_mask)
    tumour = targets[annotated].reshape(len(annotated), -1).any(axis=1)

    def fit(S: np.ndarray) -> float:
        """Mean Dice on the reviewed tumour slices: how far the network follows the reviewer."""
        if not tumour.any():
            return float("nan")
        return float(per_slice_dice(S[tumour] > threshold, targets[annotated][tumour]).mean())

    before = fit(own[reviewed.has_mask])
    unreviewed = offset + np.flatnonzero(~reviewed.has_mask)
    trained = np.arange(len(joined)) if cfg.review_own_output else \
        np.setdiff1d(np.arange(len(joined)), unreviewed)
    validation = _validation_cases(looked_at, cfg.review_validation_fraction,
                                   profile.runtime.seed)
    held = offset + np.flatnonzero(np.isin(np.asarray(reviewed.cases)[reviewed.case_index],
                                           validation))
    trained = np.setdiff1d(trained, held)
    repeated = np.setdiff1d(annotated, held)
    rows = np.concatenate([trained, np.repeat(repeated, cfg.review_repeat - 1)])
    keeper = None
    if validation:
        judged = np.intersect1d(held, annotated)      # the validation patients' reviewed slices
        keeper = KeepBest(ctx.stage_dir(STAGE) / "best.pt", joined.images[judged],
                          targets[judged], threshold, ctx)
        if not (ctx.stage_dir(STAGE) / "checkpoint.pt").is_file():
            keeper(0, start)                       # the base network is a candidate too
    model, history = train_mask_segmenter(
        ctx, STAGE, targets, rows, cfg, start=start.train(), lr=cfg.lr * cfg.review_lr_factor,
        epochs=cfg.review_epochs, after_epoch=keeper,
        extra_state=None if keeper is None else {"best": keeper})
    kept = len(history)
    if keeper is not None:
        kept = keeper.kept_epoch()
        if kept < len(history):                 # an earlier epoch (or the base) did better
            model = load_model(ctx.stage_dir(STAGE) / "best.pt", UNet.architecture,
                               device)[0].eval()
    after = fit(predict_probabilities(model, joined.images[annotated], ctx))
    seconds = round(time.monotonic() - started, 2)
    metrics = {"refined_from": record, "epochs_run": len(history), "epochs": cfg.review_epochs,
               "lr": cfg.lr * cfg.review_lr_factor, "review_repeat": cfg.review_repeat,
               "validation_cases": validation, "kept_epoch": kept,
               "validation_dice_base": None if keeper is None else keeper.base_score,
               "composition": {"known_slices": offset, "reviewed_case_slices": len(reviewed),
                               "trained_rows_per_epoch": len(rows),
                               "reviewed_slices": int(reviewed.has_mask.sum()),
                               "reviewed_tumour_slices": int(tumour.sum()),
                               "cases": len(joined.cases)},
               "reviewed_tumour_slice_dice_before": before,
               "reviewed_tumour_slice_dice_after": after,
               "seconds": seconds, "history": history}
    stage_dir = ctx.stage_dir(STAGE)
    for path in (save_model(stage_dir / MODEL, model, {
            "stage": STAGE, "epochs": len(history), "channels": list(joined.channels),
            "refined_from": record["run"]}), ctx.write_json(STAGE, METRICS, metrics)):
        events.artefact(STAGE, path)
    (stage_dir / "checkpoint.pt").unlink(missing_ok=True)
    (stage_dir / "best.pt").unlink(missing_ok=True)
    events.metric(STAGE, "reviewed_tumour_slice_dice_after", after)
    events.stage_end(STAGE, seconds)
    return metrics

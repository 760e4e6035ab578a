"""``train_mixed``: train the mixed-supervision U-Net into a run folder, resumably.

Run folder (the model bundle)::

    RUN_DIR/manifest.json          mode "mixed", profile, config, channels, data composition
    RUN_DIR/mixed/model.pt         weights + metadata (``load_mixed_model``: weights-only)
    RUN_DIR/mixed/metrics.json     composition, batch counts, history, seconds, training Dice
    RUN_DIR/mixed/checkpoint.pt    per-epoch checkpoint (model, optimiser, LR schedule)
    RUN_DIR/data/mixed_slices.npz  the training slices (``train_mixed_cohort``)
    RUN_DIR/events.jsonl           every event of the run (also sent to the caller's writer)

One epoch is ``iterations_per_epoch`` optimiser steps; each step sums the gradients of
``batches_per_iteration`` batches of the seed-001 composition. Single process (no DDP).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import torch

from ..config import Profile
from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.reader import read_shape
from ..data.slices import SliceLabels
from ..events import EventWriter, TeeEventWriter
from ..manifest import Manifest
from ..evaluation.metrics import per_slice_dice
from ..models.mixed_unet import MixedUNet, load_mixed_model, tumour_probability
from ..models.weights import save_model
from ..progress import track
from ..stages.base import RunContext, run_epochs
from ..stages.common import (epoch_generator, mean_records, predict_batched,
                             recalibrate_batchnorm, seed_epoch, unwrap, wrap_model)
from ..runtime import (DistInfo, autocast, configure_backend, resolve_device,
                              seed_everything, to_device)
from .data import MixedSlices, build_mixed_slices
from .losses import mixed_loss
from .optim import NormalisedSGD, PlateauHalving
from .records import (load_review_records, records_from_segmentation, review_annotations,
                      status_counts)
from .sampler import KIND_NAMES, MixedBatchSampler

STAGE = "mixed"
MODE = "mixed"
_SALT = zlib.crc32(STAGE.encode())
_ALLOWED_BEFORE_START = {"data", "events.jsonl"}


@dataclass
class MixedRun:
    run_dir: Path
    model: MixedUNet
    metrics: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.run_dir / STAGE / "model.pt"


def build_mixed_model(profile: Profile, in_channels: int) -> MixedUNet:
    cfg = profile.mixed
    return MixedUNet(size=profile.data.size, in_channels=in_channels, latent=cfg.latent,
                     width_divisor=cfg.width_divisor, pool=cfg.pool,
                     branch_maps=cfg.branch_maps, fc_widths=cfg.fc_widths)


def _check_run_dir(run_dir: Path, resume: bool) -> Manifest | None:
    """The manifest to continue, or None for a fresh run; refuses what would mix two runs."""
    if (run_dir / "manifest.json").is_file():
        manifest = Manifest.load(run_dir)
        if manifest.data.get("mode") != MODE:
            raise InputError(run_dir, "holds a run that is not a mixed-supervision run; choose "
                             "another --out")
        if not resume:
            raise InputError(run_dir, "already holds a run; pass --resume to continue it or "
                             "choose another --out")
        return manifest
    if resume:
        raise InputError(run_dir, "nothing to resume: no manifest.json in this folder")
    if run_dir.exists() and any(p.name not in _ALLOWED_BEFORE_START for p in run_dir.iterdir()):
        raise InputError(run_dir, "exists and is not empty; choose a new --out folder")
    return None


def _sample_batch(data: MixedSlices, sampler: MixedBatchSampler, rng: np.random.Generator,
                  flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    batch = sampler.sample(rng)
    images = data.images[batch.rows]
    targets = data.targets(batch.rows)
    if flip:                                   # left-right flips, image and mask together
        chosen = rng.random(len(batch.rows)) < 0.5
        images[chosen] = images[chosen][..., ::-1]
        targets[chosen] = targets[chosen][..., ::-1]
    return (np.ascontiguousarray(images), np.ascontiguousarray(targets), batch.annotated,
            data.labels[batch.rows])


def train_mixed(data: MixedSlices, run_dir: str | Path, profile: Profile, device: str = "auto",
                events: EventWriter | None = None, resume: bool = False,
                show_progress: bool = True, settings: Mapping[str, Any] | None = None
                ) -> MixedRun:
    """Train on ``data`` (masks where ``has_mask``) into ``run_dir``; ``resume`` continues a
    killed run from its last epoch (or returns a finished one as it is)."""
    run_dir = Path(run_dir)
    manifest = _check_run_dir(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    events = TeeEventWriter(run_dir / "events.jsonl", events)
    try:
        if manifest is not None and manifest.status(STAGE) == "done":
            events.log(f"{STAGE}: already done, nothing to resume", stage=STAGE)
            model, _ = load_mixed_model(run_dir / STAGE / "model.pt")
            import json

            metrics = json.loads((run_dir / STAGE / "metrics.json").read_text())
            return MixedRun(run_dir, model, metrics)
        if manifest is None:
            manifest = Manifest.create(run_dir, mode=MODE, profile=profile.name,
                                       config=asdict(profile), channels=list(data.channels),
                                       data={"cases": list(data.cases),
                                             "composition": data.composition(),
                                             **dict(settings or {})})
        events.run_start(run_dir, [STAGE])
        events.stage_start(STAGE)
        manifest.mark(STAGE, "running")
        started = time.monotonic()
        try:
            metrics, model = _train(data, run_dir, profile, device, events, show_progress,
                                    dict(settings or {}))
        except BaseException:
            seconds = time.monotonic() - started
            manifest.mark(STAGE, "failed", seconds)
            events.stage_end(STAGE, seconds, "failed")
            events.run_end("failed")
            raise
        seconds = time.monotonic() - started
        artefacts = [run_dir / STAGE / "model.pt", run_dir / STAGE / "metrics.json"]
        manifest.mark(STAGE, "done", seconds, artefacts)
        for path in artefacts:
            events.artefact(STAGE, path)
        events.stage_end(STAGE, seconds, "done")
        events.run_end("done")
        return MixedRun(run_dir, model, metrics)
    finally:
        events.close()


def _train(data: MixedSlices, run_dir: Path, profile: Profile, device: str,
           events: EventWriter, show_progress: bool, settings: dict[str, Any]
           ) -> tuple[dict[str, Any], MixedUNet]:
    cfg, runtime, seed = profile.mixed, profile.runtime, profile.runtime.seed
    if not (data.has_mask & data.labels.astype(bool)).any():
        raise InputError(run_dir, "no fully annotated tumour slice: name cases with masks as "
                         "fully annotated (--full-cases) or give review records with "
                         "accepted/corrected tumour slices")
    wanted = (cfg.masked_per_batch, cfg.unmasked_per_batch, cfg.healthy_per_batch)
    counts = MixedBatchSampler.counts_for(data.labels, data.has_mask, *wanted)
    for name, want, got in zip(KIND_NAMES, wanted, counts):
        if want != got:
            events.log(f"{STAGE}: no {name} slices; batches take {got} instead of {want}",
                       level="warning", stage=STAGE)
    sampler = MixedBatchSampler(data.labels, data.has_mask, *counts)
    torch_device = resolve_device(device)
    configure_backend(runtime, torch_device)
    seed_everything(seed)
    ctx = RunContext(run_dir, profile, torch_device, data, data.subset(np.arange(0)), events,
                     DistInfo(), show_progress)
    model = wrap_model(build_mixed_model(profile, len(data.channels)), ctx)
    optimiser = NormalisedSGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    schedule = PlateauHalving(optimiser, cfg.lr, cfg.lr_min, cfg.lr_period, cfg.lr_threshold)

    def one_epoch(epoch: int) -> dict[str, float]:
        rng = epoch_generator(seed, epoch, _SALT)
        seed_epoch(seed, epoch, ctx.dist)
        model.train()
        records = []
        for _ in range(cfg.iterations_per_epoch):
            optimiser.zero_grad(set_to_none=True)
            iteration_loss, parts = 0.0, []
            for _ in range(cfg.batches_per_iteration):
                images, targets, annotated, labels = _sample_batch(data, sampler, rng, cfg.flip)
                x = to_device(images, torch_device, runtime)
                with autocast(runtime, torch_device):
                    output = unwrap(model).forward_full(x)
                loss, record = mixed_loss(
                    output, torch.as_tensor(targets, device=torch_device),
                    torch.as_tensor(annotated, device=torch_device),
                    torch.as_tensor(labels, device=torch_device), cfg.seg_weight,
                    cfg.healthy_weight, cfg.tumour_weight)
                loss.backward()
                iteration_loss += record["loss"]
                parts.append(record)
            norm = optimiser.step()
            schedule.step(iteration_loss)
            records.append({**mean_records(parts), "grad_norm": float(norm)})
        return {**mean_records(records), "lr": schedule.lr}

    started = time.monotonic()
    history = run_epochs(ctx, STAGE, cfg.epochs, cfg.time_budget_s,
                         {"model": model, "optimiser": optimiser, "schedule": schedule},
                         one_epoch, unit="epoch")
    recalibrate_batchnorm(model, data.images, ctx)
    model = unwrap(model)
    masked = np.flatnonzero(data.has_mask & data.labels.astype(bool))
    prob = predict_batched(model, data.images[masked], ctx, tumour_probability)
    dice = per_slice_dice(prob > cfg.threshold, data.targets(masked))
    metrics = {
        "composition": data.composition(),
        "batch": dict(zip(KIND_NAMES, counts)),
        "epochs_run": len(history), "epochs": cfg.epochs,
        "iterations": len(history) * cfg.iterations_per_epoch,
        "final_lr": schedule.lr, "lr_halvings": schedule.halvings,
        "lr_period_final": schedule.period,
        "train_seconds_this_call": round(time.monotonic() - started, 2),
        "train_masked_tumour_slice_dice": float(dice.mean()) if dice.size else float("nan"),
        "settings": settings, "history": history,
    }
    save_model(run_dir / STAGE / "model.pt", model, metadata={
        "stage": STAGE, "channels": list(data.channels), "profile": profile.name,
        "data": asdict(profile.data), "patch": profile.data.size,
        "stride": profile.inference.stride, "threshold": cfg.threshold})
    ctx.write_json(STAGE, "metrics.json", metrics)
    events.metric(STAGE, "train_masked_tumour_slice_dice",
                  metrics["train_masked_tumour_slice_dice"])
    return metrics, model


def _case_shape(path: Path) -> tuple[int, int, int]:
    """(z, y, x) of an image from its header only."""
    return read_shape(path)  # type: ignore[return-value]


def train_mixed_cohort(cohort: Cohort, run_dir: str | Path, profile: Profile,
                       full_cases: Collection[str] = (), review_records: str | Path | None = None,
                       label_maps: Mapping[str, str | Path] | None = None,
                       labels: SliceLabels | None = None, device: str = "auto",
                       events: EventWriter | None = None, resume: bool = False,
                       show_progress: bool = True, accepted_from: str | Path | None = None,
                       accepted_threshold: float | None = None) -> MixedRun:
    """What ``weakseg train --mode mixed`` and the Slicer "Retrain with reviewed slices" call:
    masks of ``full_cases`` and of the accepted/corrected slices in ``review_records``, slice
    labels (``labels``, else from masks) for the rest. ``accepted_from``: a ``weakseg
    segment`` output whose unflagged slices join as accepted annotations (reviews override)."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir, resume)
    full_cases = list(full_cases)
    unknown = [c for c in full_cases if c not in cohort.names]
    if unknown:
        raise InputError(None, f"--full-cases not in the cohort: {', '.join(unknown)} "
                         f"(cases: {', '.join(cohort.names)})")
    reviews, settings = {}, {"full_cases": full_cases}
    records = [] if accepted_from is None else records_from_segmentation(
        accepted_from, cohort.names, threshold=accepted_threshold)
    if accepted_from is not None:
        settings.update(accepted_from=str(accepted_from), accepted_slices=len(records))
    if review_records is not None or records:
        records += load_review_records(review_records) if review_records is not None else []
        shapes = {c.name: _case_shape(c.images["flair"]) for c in cohort}
        reviews = review_annotations(records, shapes, label_maps, source=review_records)
        settings.update(review_records=str(review_records) if review_records else None,
                        review_status=status_counts(records),
                        reviewed_annotated_slices={c: int(r.annotated.sum())
                                                   for c, r in reviews.items()})
    if not full_cases and not any(r.annotated.any() for r in reviews.values()):
        raise InputError(review_records, "mixed supervision needs some full annotations: name "
                         "cases with masks (--full-cases A,B) or give review records with "
                         "accepted/corrected slices (--review RECORDS.json)")
    cache = run_dir / "data" / "mixed_slices.npz"
    if resume and cache.is_file():
        data = MixedSlices.load(cache)
    else:
        show = show_progress
        data = build_mixed_slices(
            cohort, profile.data, cohort.common_modalities(), full_cases, reviews, labels,
            profile.runtime.seed,
            progress=lambda cases: track(cases, "preprocess", events=events,
                                         stage="preprocess", show=show))
        cache.parent.mkdir(parents=True, exist_ok=True)
        data.save(cache)
    return train_mixed(data, run_dir, profile, device, events, resume, show_progress, settings)

"""Stage ``mixed``: the mixed-supervision U-Net of seed 001 (``train --mode mixed``).

A mixed-supervision run is a run of the pipeline with this one stage: the same run folder,
manifest, resume checks and ``events.jsonl`` as a weak run, and inference opens it as a
``Bundle`` with the one method "mixed". What only mixed supervision has (the batch sampler, the
losses, the optimiser, the review records) lives in ``WeakSegLib.mixed``.

Run folder::

    RUN_DIR/manifest.json          mode "mixed", profile, config, channels, data composition
    RUN_DIR/mixed/model.pt         weights + metadata (``load_mixed_model``: weights-only)
    RUN_DIR/mixed/metrics.json     composition, batch counts, history, seconds, training Dice
    RUN_DIR/mixed/checkpoint.pt    per-epoch checkpoint (model, optimiser, LR schedule)
    RUN_DIR/data/mixed_slices.npz  the training slices
    RUN_DIR/events.jsonl           every event of the run

One epoch is ``iterations_per_epoch`` optimiser steps; each step sums the gradients of
``batches_per_iteration`` batches of the seed-001 composition. Single process (no DDP).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import numpy as np
import torch

from ..config import Profile
from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.mixed_slices import MixedSlices, build_mixed_slices
from ..data.reader import read_shape
from ..data.slices import SliceLabels
from ..evaluation.metrics import per_slice_dice
from ..mixed.losses import mixed_loss
from ..mixed.optim import NormalisedSGD, PlateauHalving
from ..mixed.records import (load_review_records, records_from_segmentation,
                             review_annotations, status_counts)
from ..mixed.sampler import KIND_NAMES, MixedBatchSampler
from ..models.mixed_unet import MixedUNet, tumour_probability
from ..models.weights import load_model, save_model
from ..runtime import autocast, seed_everything, to_device
from .base import RunContext, Stage, run_epochs
from .common import (epoch_generator, mean_records, predict_batched, recalibrate_batchnorm,
                     seed_epoch, unwrap, wrap_model)
from .run_folder import METRICS, MODEL

STAGE = "mixed"
_SALT = zlib.crc32(STAGE.encode())


def build_mixed_model(profile: Profile, in_channels: int) -> MixedUNet:
    cfg = profile.mixed
    return MixedUNet(size=profile.data.size, in_channels=in_channels, latent=cfg.latent,
                     width_divisor=cfg.width_divisor, pool=cfg.pool,
                     branch_maps=cfg.branch_maps, fc_widths=cfg.fc_widths)


def load_mixed_model(run_dir: str | Path, device: str | torch.device = "cpu") -> MixedUNet:
    """The trained network of a mixed run (weights-only loading, metadata checked)."""
    model, _ = load_model(Path(run_dir) / STAGE / MODEL, MixedUNet.architecture, device)
    return model.eval()


@dataclass
class MixedInputs:
    """What a mixed run is trained on beside the cohort: the review outcome per case
    (``mixed.records.ReviewedSlices``), the fully annotated cases, and the settings the manifest
    records."""
    full_cases: list[str]
    reviews: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def prepare(cls, cohort: Cohort, full_cases: Collection[str] = (),
                review_records: str | Path | None = None,
                label_maps: Mapping[str, str | Path] | None = None,
                accepted_from: str | Path | None = None,
                accepted_threshold: float | None = None) -> "MixedInputs":
        """Check and read the inputs, before anything is written: masks of ``full_cases`` and
        of the accepted/corrected slices in ``review_records``; ``accepted_from``: a ``weakseg
        segment`` output whose unflagged slices join as accepted annotations (reviews
        override)."""
        full_cases = list(full_cases)
        unknown = [c for c in full_cases if c not in cohort.names]
        if unknown:
            raise InputError(None, f"--full-cases not in the cohort: {', '.join(unknown)} "
                             f"(cases: {', '.join(cohort.names)})")
        reviews: dict[str, Any] = {}
        settings: dict[str, Any] = {"full_cases": full_cases}
        records = [] if accepted_from is None else records_from_segmentation(
            accepted_from, cohort.names, threshold=accepted_threshold)
        if accepted_from is not None:
            settings.update(accepted_from=str(accepted_from), accepted_slices=len(records))
        if review_records is not None or records:
            records += load_review_records(review_records) if review_records is not None else []
            shapes = {c.name: read_shape(c.images["flair"]) for c in cohort}
            reviews = review_annotations(records, shapes, label_maps, source=review_records)
            settings.update(review_records=str(review_records) if review_records else None,
                            review_status=status_counts(records),
                            reviewed_annotated_slices={c: int(r.annotated.sum())
                                                       for c, r in reviews.items()})
        if not full_cases and not any(r.annotated.any() for r in reviews.values()):
            raise InputError(review_records, "mixed supervision needs some full annotations: "
                             "name cases with masks (--full-cases A,B) or give review records "
                             "with accepted/corrected slices (--review RECORDS.json)")
        return cls(full_cases, reviews, settings)

    def build(self, cohort: Cohort, profile: Profile, channels: list[str],
              labels: SliceLabels | None, progress: Callable | None = None) -> MixedSlices:
        return build_mixed_slices(cohort, profile.data, channels, self.full_cases,
                                  self.reviews, labels, profile.runtime.seed, progress=progress)


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


class MixedStage(Stage):
    """Trains on ``ctx.train`` (``MixedSlices``: masks where ``has_mask``)."""
    name = STAGE
    config_section = "mixed"
    mode = "mixed"

    def run(self, ctx: RunContext) -> list[Path]:
        data = ctx.train
        if not isinstance(data, MixedSlices):
            raise TypeError("the mixed stage trains on MixedSlices")
        if ctx.dist.enabled:
            raise InputError(ctx.run_dir, "mixed supervision trains in a single process; "
                             "run it without torchrun")
        cfg, runtime, seed = ctx.profile.mixed, ctx.profile.runtime, ctx.profile.runtime.seed
        if not (data.has_mask & data.labels.astype(bool)).any():
            raise InputError(ctx.run_dir, "no fully annotated tumour slice: name cases with "
                             "masks as fully annotated (--full-cases) or give review records "
                             "with accepted/corrected tumour slices")
        wanted = (cfg.masked_per_batch, cfg.unmasked_per_batch, cfg.healthy_per_batch)
        counts = MixedBatchSampler.counts_for(data.labels, data.has_mask, *wanted)
        for kind, want, got in zip(KIND_NAMES, wanted, counts):
            if want != got:
                ctx.events.log(f"{STAGE}: no {kind} slices; batches take {got} instead of "
                               f"{want}", level="warning", stage=STAGE)
        sampler = MixedBatchSampler(data.labels, data.has_mask, *counts)
        device = ctx.device
        seed_everything(seed)
        model = wrap_model(build_mixed_model(ctx.profile, len(data.channels)), ctx)
        optimiser = NormalisedSGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        schedule = PlateauHalving(optimiser, cfg.lr, cfg.lr_min, cfg.lr_period,
                                  cfg.lr_threshold)

        def one_epoch(epoch: int) -> dict[str, float]:
            rng = epoch_generator(seed, epoch, _SALT)
            seed_epoch(seed, epoch, ctx.dist)
            model.train()
            records = []
            for _ in range(cfg.iterations_per_epoch):
                optimiser.zero_grad(set_to_none=True)
                iteration_loss, parts = 0.0, []
                for _ in range(cfg.batches_per_iteration):
                    images, targets, annotated, labels = _sample_batch(data, sampler, rng,
                                                                       cfg.flip)
                    x = to_device(images, device, runtime)
                    with autocast(runtime, device):
                        output = unwrap(model).forward_full(x)
                    loss, record = mixed_loss(
                        output, torch.as_tensor(targets, device=device),
                        torch.as_tensor(annotated, device=device),
                        torch.as_tensor(labels, device=device), cfg.seg_weight,
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
            "settings": dict(ctx.settings), "history": history,
        }
        profile = ctx.profile
        model_path = save_model(ctx.stage_dir(STAGE) / MODEL, model, metadata={
            "stage": STAGE, "channels": list(data.channels), "profile": profile.name,
            "data": asdict(profile.data), "patch": profile.data.size,
            "stride": profile.inference.stride, "threshold": cfg.threshold})
        metrics_path = ctx.write_json(STAGE, METRICS, metrics)
        ctx.events.metric(STAGE, "train_masked_tumour_slice_dice",
                          metrics["train_masked_tumour_slice_dice"])
        return [model_path, metrics_path]

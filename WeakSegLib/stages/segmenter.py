"""Stage 5: the initial segmenter (seed 000 §2.3, Pipeline row 5).

The converter's U-Net architecture with fresh weights and all C channels in, sigmoid S out, is
trained on every training slice with seed BCE + the part of |x_flair − v| that S does not explain
+ a small size penalty (``losses.segmenter_loss``). Healthy slices have v = x and a negative seed
everywhere, so they teach "empty". ``train_segmenter`` and ``write_segmenter_artefacts`` are the
reusable pieces: the over/under segmenters (row 7) call them with refined seeds and their own
slice subsets, and the seed-only baseline with reconstruction and size weights 0.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..config import SegmenterConfig
from ..data.slices import SliceSet
from ..evaluation.metrics import per_slice_dice
from ..models.unet import UNet
from ..models.weights import load_model, save_model
from .base import RunContext, Stage, run_epochs
from .common import (epoch_generator, even_shard, mean_records, predict_batched,
                     recalibrate_batchnorm, unwrap, wrap_model)
from .run_folder import load_seeds, load_variants
from .augment import random_flips
from .figures import figure_picks, slice_panels
from .losses import segmenter_loss
from ..runtime import autocast, batches, to_device

_FIGURE_ROWS = 6
THRESHOLD = 0.5          # S > 0.5 is the segmentation (Pipeline rows 5–8)


class SegmenterBatch(NamedTuple):
    """One training batch on the device; every tensor but ``images`` is ``[B, 1, H, W]``."""
    images: torch.Tensor      # [B, C, H, W]
    flair: torch.Tensor
    variant: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


@dataclass
class SegmenterData:
    """The training arrays of a segmenter, in ``ctx.train``'s row order."""
    images: np.ndarray        # (N, C, S, S) float32
    flair: np.ndarray         # (N, S, S) float32
    variants: np.ndarray      # (N, S, S) float32
    positive: np.ndarray      # (N, S, S) bool
    negative: np.ndarray      # (N, S, S) bool

    def batch(self, rows: np.ndarray, rng: np.random.Generator | None, ctx: RunContext
              ) -> SegmenterBatch:
        """Rows as a device batch; with ``rng``, random flips shared by image, variant and
        seeds (an intensity jitter is left out: it would change |x − v| where v is not x)."""
        arrays = [self.images[rows], self.flair[rows, None], self.variants[rows, None],
                  self.positive[rows, None], self.negative[rows, None]]
        tensors = [to_device(np.ascontiguousarray(a, dtype=np.float32), ctx.device,
                             ctx.profile.runtime) for a in arrays]
        if rng is not None:
            tensors = random_flips(tensors, rng)
        return SegmenterBatch(*tensors)


def segmenter_data(ctx: RunContext, seeds: dict[str, np.ndarray] | None = None
                   ) -> SegmenterData:
    """Training arrays from the run folder (stage 2 seeds unless ``seeds`` gives positive and
    negative for every training slice). Healthy-labelled slices are forced to positive 0,
    negative 1 and v = x: they contain no tumour by their label, whatever a file says."""
    data = ctx.train
    seeds = seeds if seeds is not None else load_seeds(ctx.run_dir, data)
    positive, negative = (np.asarray(seeds[k], bool).copy() for k in ("positive", "negative"))
    for name, array in (("positive", positive), ("negative", negative)):
        if array.shape != data.flair.shape:
            raise ValueError(f"{name} seeds of shape {array.shape}; the training slices are "
                             f"{data.flair.shape}")
    flair = data.flair.astype(np.float32)
    variants = load_variants(ctx.run_dir, data)
    healthy = data.labels == 0
    positive[healthy], negative[healthy], variants[healthy] = False, True, flair[healthy]
    return SegmenterData(data.images.astype(np.float32, copy=False), flair, variants,
                         positive, negative)


def build_segmenter(ctx: RunContext) -> UNet:
    """Fresh U-Net at the converter's size, latent and widths, taking all C channels. The latent
    is not sampled: without the converter's KL term its variance is unconstrained noise."""
    gan = ctx.profile.gan
    return UNet(size=ctx.train.images.shape[-1], in_channels=len(ctx.train.channels),
                out_channels=1, latent=gan.latent, width_divisor=gan.width_divisor,
                out_activation="sigmoid", sample_latent=False)


def segmenter_step(model: nn.Module, optimiser: torch.optim.Optimizer, batch: SegmenterBatch,
                   cfg: SegmenterConfig, ctx: RunContext) -> dict[str, float]:
    """One update on the row 5 loss; returns the total and its parts."""
    with autocast(ctx.profile.runtime, ctx.device):
        S = model(batch.images)
    # the loss (binary_cross_entropy) is computed outside autocast, in float32
    loss, parts = segmenter_loss(S.float(), batch.flair, batch.variant, batch.positive,
                                 batch.negative, cfg)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}


def _salt(name: str) -> int:
    """epoch_generator salt per stage name: over/under segmenters draw their own orders."""
    return zlib.crc32(name.encode())


def equal_update_schedule(cfg: SegmenterConfig, n_all: int, n_subset: int) -> tuple[int, int]:
    """Epochs and halving period for a segmenter trained on ``n_subset`` of the ``n_all``
    training slices: scaled so it gets as many updates as the initial segmenter, and at least
    ``cfg.min_updates``. The over-segmenter sees ~¼ of the slices; at the same epoch count it
    stopped after ~30 updates with S < 0.5 everywhere (fold 0 of the real sample), and the
    demo's 149-slice phantom cohort gave the initial segmenter ~45 updates and the same."""
    factor = max(1.0, n_all / max(n_subset, 1))
    per_epoch = max(1, n_subset // cfg.batch_size)
    if cfg.min_updates:
        factor = max(factor, cfg.min_updates / (per_epoch * cfg.epochs))
    return math.ceil(cfg.epochs * factor), max(1, math.ceil(cfg.halve_every * factor))


def train_segmenter(ctx: RunContext, name: str, slice_index: np.ndarray,
                    seeds_override: dict[str, np.ndarray] | None = None,
                    cfg: SegmenterConfig | None = None) -> tuple[UNet, list[dict[str, float]]]:
    """Train a fresh segmenter on the training rows ``slice_index``, resumably (checkpoint in
    ``<run>/<name>/``). ``seeds_override``: positive/negative for every training slice (refined
    seeds); ``cfg``: other weights (e.g. the seed-only baseline). Returns the unwrapped model,
    its BatchNorm statistics recomputed on the training rows, and the per-epoch history."""
    cfg = cfg or ctx.profile.segmenter
    seed = ctx.profile.runtime.seed
    slice_index = np.asarray(slice_index, int)
    if not len(slice_index):
        raise ValueError(f"{name}: no training slice to train the segmenter on")
    arrays = segmenter_data(ctx, seeds_override)
    epochs, halve_every = equal_update_schedule(cfg, len(ctx.train), len(slice_index))
    torch.manual_seed(seed)
    model = wrap_model(build_segmenter(ctx), ctx)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=halve_every, gamma=0.5)
    salt = _salt(name)
    ctx.events.metric(name, "n_train_slices", len(slice_index))

    def one_epoch(epoch: int) -> dict[str, float]:
        model.train()
        order = epoch_generator(seed, epoch, salt).permutation(slice_index)
        (order,) = even_shard(ctx.dist, order)
        flips = epoch_generator(seed, epoch, salt + 1 + ctx.dist.rank)
        lr = optimiser.param_groups[0]["lr"]
        records = [segmenter_step(model, optimiser, arrays.batch(rows, flips, ctx), cfg, ctx)
                   for rows in batches(order, cfg.batch_size,
                                       drop_last=len(order) > cfg.batch_size)]
        scheduler.step()
        return {**mean_records(records), "lr": lr}

    history = run_epochs(ctx, name, epochs, cfg.time_budget_s,
                         {"model": model, "optimiser": optimiser, "scheduler": scheduler},
                         one_epoch)
    unet = unwrap(model)
    recalibrate_batchnorm(unet, arrays.images[slice_index], ctx)
    return unet.eval(), history


def predict_probabilities(model: nn.Module, images: np.ndarray, ctx: RunContext,
                          batch_size: int = 64) -> np.ndarray:
    """S ``(N, S, S)`` float32 for ``(N, C, S, S)`` slices, in eval mode."""
    return predict_batched(model, images, ctx, lambda maps: maps[:, 0], batch_size).astype(
        np.float32).reshape(len(images), *images.shape[-2:])


def tumour_slice_scores(data: SliceSet, probabilities: np.ndarray) -> dict[str, float] | None:
    """Mean 2D Dice of S > 0.5 against the mask on slices labelled tumour (None without masks
    or tumour slices): how much of the tumour the weak labels found."""
    tumour = data.labels == 1
    if data.masks is None or not tumour.any():
        return None
    dice = per_slice_dice(probabilities[tumour] > THRESHOLD, data.masks[tumour] > 0)
    return {"n_slices": int(tumour.sum()), "mean_dice": float(dice.mean())}


def load_segmenter(run_dir: Path, device: torch.device, name: str = "segmenter") -> UNet:
    model, _ = load_model(Path(run_dir) / name / "model.pt", UNet.architecture, device)
    return model.eval()


def write_segmenter_artefacts(ctx: RunContext, name: str, model: UNet,
                              history: list[dict[str, float]], variants: np.ndarray,
                              extra: dict | None = None) -> list[Path]:
    """Rank 0: model.pt, probabilities.npz (S of every train and val slice, float16),
    metrics.json (history, tumour-slice Dice per split, ``extra``) and a figure."""
    if not ctx.dist.is_main:
        return []
    stage_dir = ctx.stage_dir(name)
    paths = [save_model(stage_dir / "model.pt", model,
                        {"stage": name, "epochs": len(history), "channels": ctx.train.channels})]
    probabilities = {split: predict_probabilities(model, data.images, ctx)
                     for split, data in (("train", ctx.train), ("val", ctx.val))}
    np.savez_compressed(stage_dir / "probabilities.npz",
                        **{k: v.astype(np.float16) for k, v in probabilities.items()})
    paths.append(stage_dir / "probabilities.npz")
    metrics = {**(extra or {}), "history": history}
    for split, data in (("train", ctx.train), ("val", ctx.val)):
        scores = tumour_slice_scores(data, probabilities[split])
        if scores is not None:
            metrics[f"{split}_tumour_slices"] = scores
            ctx.events.metric(name, f"{split}_tumour_slice_dice", scores["mean_dice"])
    paths.append(ctx.write_json(name, "metrics.json", metrics))
    paths.append(_figure(ctx, name, probabilities["train"], variants,
                         stage_dir / "figures" / "segmentations.png"))
    return paths


def _figure(ctx: RunContext, name: str, probabilities: np.ndarray, variants: np.ndarray,
            path: Path) -> Path:
    """Image with the truth outlined, S, S > 0.5 and v for up to 6 training tumour slices."""
    data = ctx.train
    picks = figure_picks(data.labels, _FIGURE_ROWS)
    rows = []
    for i in picks:
        row = {"image": data.flair[i], "S": probabilities[i],
               "S > 0.5": (probabilities[i] > THRESHOLD).astype(np.float32),
               "healthy variant": variants[i]}
        if data.masks is not None:
            row["truth"] = data.masks[i]
        rows.append(row)
    columns = [("image", "image"), ("S", "map"), ("S > 0.5", "image"),
               ("healthy variant", "image")]
    titles = [f"{data.case_name(i)} z={data.slice_index[i]}" for i in picks]
    return slice_panels(rows, columns, path, f"{name}: FLAIR (truth in green), S, S > 0.5, "
                        "healthy variant", titles)


class SegmenterStage(Stage):
    name = "segmenter"
    config_section = "segmenter"
    requires = ("classifier", "seeds", "converter")

    def run(self, ctx: RunContext) -> list[Path]:
        model, history = train_segmenter(ctx, self.name, np.arange(len(ctx.train)))
        if not ctx.dist.is_main:
            return []
        return write_segmenter_artefacts(ctx, self.name, model, history,
                                         load_variants(ctx.run_dir, ctx.train),
                                         {"n_train_slices": len(ctx.train)})

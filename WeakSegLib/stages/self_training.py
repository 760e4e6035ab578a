"""The last stage (seed 003 step 3) and the fully supervised reference: a segmenter trained on
masks rather than seeds.

*self_train* learns from the pipeline's own pseudo-masks of the training slices: the mean of the
earlier segmenters' S (``selftrain.sources``) above the threshold on slices labelled tumour, and
an empty mask on every slice labelled healthy — the slice labels are the one thing known for
sure, so the final network is taught "empty" exactly where the radiologist said so. Tumour
slices whose pseudo-mask is (nearly) empty are left out rather than taught "empty".

*supervised* trains the same network with the same settings and budget on the true masks. It
is the ceiling the evaluation reports beside WeakSeg, never a WeakSeg method: it needs masks.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..config import SelfTrainConfig
from ..data.errors import InputError
from ..evaluation.metrics import per_slice_dice
from ..explain.seeds import flair_brain_stats
from .augment import augment
from .base import RunContext, Stage, run_epochs
from .common import epoch_generator, even_shard, mean_records, recalibrate_batchnorm, \
    unwrap, wrap_model
from ..runtime import autocast, batches, to_device
from .run_folder import load_probabilities, load_variants
from .segmenter import build_segmenter, write_segmenter_artefacts


def mask_loss(S: torch.Tensor, target: torch.Tensor, dice_weight: float
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """BCE + ``dice_weight`` · soft Dice over the batch (MONAI's DiceLoss, batch=True, so a
    batch of healthy slices does not divide by zero); S and target are ``[B, 1, H, W]``."""
    from monai.losses import DiceLoss

    bce = F.binary_cross_entropy(S.float(), target.float())
    dice = DiceLoss(batch=True)(S.float(), target.float())
    return bce + dice_weight * dice, {"bce": bce, "dice": dice}


def pseudo_masks(ctx: RunContext, cfg: SelfTrainConfig) -> tuple[np.ndarray, np.ndarray, list]:
    """(masks (N, S, S) bool, usable rows, the sources used) for the training slices."""
    used, maps, collapsed, collapsed_maps = [], [], [], []
    tumour = ctx.train.labels == 1
    for name in cfg.sources:
        path = ctx.run_dir / name / "probabilities.npz"
        if not path.is_file():
            continue
        S = load_probabilities(ctx.run_dir, name)["train"]
        # a segmenter that collapsed to "empty" (fold 3 of the CV: initial and seed_only
        # segmented nothing) would veto every pseudo-mask in the mean; it is left out
        segments = (S[tumour] > cfg.threshold).reshape(int(tumour.sum()), -1).any(axis=1)
        if tumour.any() and segments.mean() < cfg.min_segmented_fraction:
            collapsed.append(name)
            collapsed_maps.append(S)
            continue
        used.append(name)
        maps.append(S)
    if collapsed and not maps:
        # every source collapsed (a cohort too small or a classifier too weak for its seeds):
        # the mean of them all is still the pipeline's best guess, and the run goes on
        ctx.events.log(f"self-training: every source ({', '.join(collapsed)}) segments fewer "
                       f"than {cfg.min_segmented_fraction:.0%} of the tumour slices; their mean "
                       "is used, expect a weak model", "warning", "self_train")
        used, maps = list(collapsed), collapsed_maps
    elif collapsed:
        ctx.events.log(f"self-training: {', '.join(collapsed)} segment(s) fewer than "
                       f"{cfg.min_segmented_fraction:.0%} of the tumour slices and are left out "
                       "of the pseudo-masks", "warning", "self_train")
    if not maps:
        raise InputError(ctx.run_dir, f"self-training needs S of one of {list(cfg.sources)}; "
                         "none of those stages has finished with a segmentation")
    masks = np.mean(maps, axis=0) > cfg.threshold
    masks[~tumour] = False
    if cfg.min_flair_sd is not None:
        masks = flair_evidence(masks, ctx.train.flair, cfg.min_flair_sd)
    big_enough = masks.reshape(len(masks), -1).sum(1) >= cfg.min_pseudo_px
    rows = np.flatnonzero(~tumour | big_enough)
    return masks, rows, used


def flair_evidence(masks: np.ndarray, flair: np.ndarray, sd: float) -> np.ndarray:
    """``masks`` (N, H, W) kept where FLAIR is bright (≥ μ + ``sd``·σ of the slice's brain),
    with the holes that leaves inside the kept part filled again (within the original mask):
    a glioma's oedema and tumour are FLAIR-bright, its necrotic core is dark but enclosed."""
    mean, spread = flair_brain_stats(flair)
    bright = masks & (flair >= mean + sd * spread)
    filled = np.stack([ndimage.binary_fill_holes(b) for b in bright]) if len(bright) else bright
    return filled & masks


def train_mask_segmenter(ctx: RunContext, name: str, masks: np.ndarray, rows: np.ndarray,
                         cfg: SelfTrainConfig, start: torch.nn.Module | None = None,
                         lr: float | None = None, epochs: int | None = None,
                         after_epoch: Callable[[int, torch.nn.Module], dict[str, float]]
                         | None = None, extra_state: dict[str, Any] | None = None
                         ) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """A segmenter on ``rows`` of the training slices (a row may repeat: it then counts that
    often) against ``masks``, with flips, a small affine and intensity augmentation, resumably
    (checkpoint in ``<run>/<name>/``). Fresh, or fine-tuned from ``start`` at ``lr``.
    ``after_epoch(epoch, network)`` adds figures to each epoch's record (a validation);
    ``extra_state`` (objects with state_dict/load_state_dict) is checkpointed with the model."""
    if not len(rows):
        raise InputError(ctx.run_dir, f"{name}: no training slice to learn from")
    seed, salt = ctx.profile.runtime.seed, zlib.crc32(name.encode())
    images = ctx.train.images
    torch.manual_seed(seed)
    model = wrap_model(start if start is not None else build_segmenter(ctx), ctx)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr if lr is None else lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=cfg.halve_every, gamma=0.5)
    ctx.events.metric(name, "n_train_slices", len(rows))

    def one_epoch(epoch: int) -> dict[str, float]:
        model.train()
        (order,) = even_shard(ctx.dist, epoch_generator(seed, epoch, salt).permutation(rows))
        rng = epoch_generator(seed, epoch, salt + 1 + ctx.dist.rank)
        lr, records = optimiser.param_groups[0]["lr"], []
        for chunk in batches(order, cfg.batch_size, drop_last=len(order) > cfg.batch_size):
            x = to_device(images[chunk], ctx.device, ctx.profile.runtime)
            y = torch.as_tensor(masks[chunk, None], dtype=torch.float32, device=ctx.device)
            if cfg.augment:
                x, (y,) = augment(x, [y], rng, cfg.affine_degrees, cfg.affine_scale,
                                  cfg.affine_translate, cfg.intensity_jitter, cfg.gamma)
            with autocast(ctx.profile.runtime, ctx.device):
                S = model(x)
            loss, parts = mask_loss(S, y, cfg.dice_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            records.append({"loss": float(loss.detach()),
                            **{k: float(v.detach()) for k, v in parts.items()}})
        scheduler.step()
        extra = after_epoch(epoch + 1, unwrap(model)) if after_epoch is not None else {}
        return {**mean_records(records), "lr": lr, **extra}

    history = run_epochs(ctx, name, cfg.epochs if epochs is None else epochs, cfg.time_budget_s,
                         {"model": model, "optimiser": optimiser, "scheduler": scheduler,
                          **(extra_state or {})}, one_epoch)
    unet = unwrap(model)
    recalibrate_batchnorm(unet, images[np.unique(rows)], ctx)
    return unet.eval(), history


class SelfTrainStage(Stage):
    name = "self_train"
    config_section = "selftrain"
    requires = ("segmenter",)

    def run(self, ctx: RunContext) -> list[Path]:
        cfg = ctx.profile.selftrain
        masks, rows, used = pseudo_masks(ctx, cfg)
        model, history = train_mask_segmenter(ctx, self.name, masks, rows, cfg)
        if not ctx.dist.is_main:
            return []
        tumour = ctx.train.labels == 1
        extra = {"sources": used, "n_train_slices": len(rows),
                 "n_tumour_slices_used": int(np.isin(np.flatnonzero(tumour), rows).sum()),
                 "n_tumour_slices": int(tumour.sum())}
        if ctx.train.masks is not None:     # how good the pseudo-masks were (evaluation only)
            extra["pseudo_mask_tumour_slice_dice"] = float(
                per_slice_dice(masks[tumour], ctx.train.masks[tumour] > 0).mean())
        return write_segmenter_artefacts(ctx, self.name, model, history,
                                         load_variants(ctx.run_dir, ctx.train), extra)


class SupervisedReferenceStage(Stage):
    """Not part of WeakSeg's method: the ceiling, trained on the masks (``--stages supervised``
    on a cohort with masks). Same network, settings and budget as ``self_train``."""

    name = "supervised"
    config_section = "selftrain"
    requires = ("converter",)      # for the shared figure's healthy-variant column

    def run(self, ctx: RunContext) -> list[Path]:
        if ctx.train.masks is None:
            raise InputError(ctx.run_dir, "the supervised reference needs masks for every "
                             "training case")
        masks = ctx.train.masks > 0
        model, history = train_mask_segmenter(ctx, self.name, masks, np.arange(len(masks)),
                                              ctx.profile.selftrain)
        if not ctx.dist.is_main:
            return []
        return write_segmenter_artefacts(ctx, self.name, model, history,
                                         load_variants(ctx.run_dir, ctx.train),
                                         {"n_train_slices": len(masks), "reference": True})

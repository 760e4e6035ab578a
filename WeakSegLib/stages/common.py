"""Small pieces several stages use: batching, balanced sampling, scoring, model wrapping."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .base import RunContext
from ..runtime import DistInfo, autocast, batches, to_device


_RANK_STRIDE = 100_003      # torch seeds of different ranks never collide


def seed_epoch(seed: int, epoch: int, dist: DistInfo) -> None:
    """Torch's draws (latents, reparameterisation) per epoch and rank: a resumed epoch repeats
    exactly, and DDP ranks do not all draw the same latents."""
    torch.manual_seed(seed + epoch + _RANK_STRIDE * dist.rank)


def mean_records(records: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in records])) for key in records[0]} if records \
        else {}


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> np.random.Generator:
    """One generator per (stage, epoch): a resumed epoch draws exactly what it would have."""
    return np.random.default_rng([seed, epoch, salt])


def balanced_indices(labels: np.ndarray, rng: np.random.Generator, n: int | None = None
                     ) -> np.ndarray:
    """Sample with replacement so both classes are drawn equally often (class-balanced)."""
    labels = np.asarray(labels)
    n = len(labels) if n is None else n
    counts = np.bincount(labels, minlength=2).astype(float)
    weights = np.where(counts[labels] > 0, 1.0 / np.maximum(counts[labels], 1), 0.0)
    return rng.choice(len(labels), size=n, replace=True, p=weights / weights.sum())


def shard(indices: np.ndarray, dist: DistInfo) -> np.ndarray:
    """This rank's share of an epoch's sample order (DistributedSampler's striding), trimmed to
    a multiple of the world size: every rank must run the same number of batches, or DDP hangs
    waiting for the one with an extra batch."""
    if not dist.enabled:
        return indices
    usable = len(indices) - len(indices) % dist.world_size
    return indices[:usable][dist.rank::dist.world_size]


def even_shard(dist: DistInfo, *orders: np.ndarray) -> list[np.ndarray]:
    """``shard`` of several parallel sample orders at once."""
    return [shard(order, dist) for order in orders]


def wrap_model(model: nn.Module, ctx: RunContext) -> nn.Module:
    """Move to the device (channels-last where the profile asks) and wrap in DDP when distributed."""
    model = model.to(ctx.device)
    if ctx.profile.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if ctx.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.dist.local_rank] if ctx.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    return model


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: np.ndarray, ctx: RunContext,
                          batch_size: int = 64) -> None:
    """Recompute BatchNorm running statistics with the final weights of the epoch.

    With few batches per epoch the running averages lag far behind fast-moving weights; on the
    real sample the eval-mode classifier then gave one constant score for every slice (train
    AUC 0.48) while the train-mode one had fitted. ``torch.optim.swa_utils.update_bn`` does the
    recomputation (a cumulative average over one pass)."""
    from torch.optim.swa_utils import update_bn

    loader = (to_device(images[chunk], ctx.device, ctx.profile.runtime)
              for chunk in batches(np.arange(len(images)), batch_size))
    update_bn(loader, model)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


@torch.no_grad()
def predict_batched(model: nn.Module, images: np.ndarray, ctx: RunContext,
                    output: Callable[[torch.Tensor], torch.Tensor],
                    batch_size: int = 64) -> np.ndarray:
    """Eval-mode predictions over (N, C, H, W) slices in batches; ``output`` maps the model's
    raw output of a batch to what is kept (probabilities, maps). The train/eval mode is restored."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    out = []
    for chunk in batches(np.arange(len(images)), batch_size):
        x = to_device(images[chunk], ctx.device, ctx.profile.runtime)
        with autocast(ctx.profile.runtime, ctx.device):
            raw = model(x)
        out.append(output(raw.float()).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def predict_scores(model: nn.Module, images: np.ndarray, ctx: RunContext,
                   batch_size: int = 64) -> np.ndarray:
    """Classifier probabilities for (N, C, H, W) slices."""
    return predict_batched(model, images, ctx, lambda logits: torch.sigmoid(logits).reshape(-1),
                           batch_size)


class BestScore:
    """The best validation score so far, checkpointed with the model so a resume keeps it."""

    def __init__(self) -> None:
        self.value = float("-inf")

    def improves(self, score: float) -> bool:
        if score > self.value:
            self.value = score
            return True
        return False

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])

"""Small pieces several stages use: batching, balanced sampling, scoring, model wrapping."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from .base import RunContext
from .runtime import DistInfo, to_device


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
    """This rank's share of an epoch's sample order (DistributedSampler's striding)."""
    return indices[dist.rank::dist.world_size] if dist.enabled else indices


def batches(indices: np.ndarray, batch_size: int, drop_last: bool = False
            ) -> Iterator[np.ndarray]:
    stop = len(indices) - (len(indices) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        chunk = indices[start:start + batch_size]
        if len(chunk):
            yield chunk


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


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


@torch.no_grad()
def predict_scores(model: nn.Module, images: np.ndarray, ctx: RunContext,
                   batch_size: int = 64) -> np.ndarray:
    """Classifier probabilities for (N, C, H, W) slices, in eval mode."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    out = []
    for chunk in batches(np.arange(len(images)), batch_size):
        x = to_device(images[chunk], ctx.device, ctx.profile.runtime)
        out.append(torch.sigmoid(model(x).float()).reshape(-1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


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

"""Seed 001's training batches: k tumour slices with a mask, n tumour slices with only a slice
label and m healthy slices (k = 4, n = 4, m = 2). Healthy slices are fully annotated for free:
their mask is zero (or the mask itself where the case has one)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

MASKED, UNMASKED, HEALTHY = 0, 1, 2
KIND_NAMES = ("masked tumour", "unmasked tumour", "healthy")


class Batch(NamedTuple):
    rows: np.ndarray        # row indices into the slice set: masked, then unmasked, then healthy
    kinds: np.ndarray       # MASKED | UNMASKED | HEALTHY per row

    @property
    def annotated(self) -> np.ndarray:
        """Rows that have a segmentation target (masked tumour and healthy)."""
        return self.kinds != UNMASKED


class MixedBatchSampler:
    """Draws batches of fixed composition from three pools of slice rows.

    ``labels`` (N,) 0/1 slice labels, ``has_mask`` (N,) bool. A pool with a non-zero count must
    not be empty (``ValueError`` names it); ``counts_for`` chooses counts that fit the pools."""

    def __init__(self, labels: np.ndarray, has_mask: np.ndarray, masked: int = 4,
                 unmasked: int = 4, healthy: int = 2) -> None:
        labels = np.asarray(labels).astype(bool)
        has_mask = np.asarray(has_mask).astype(bool)
        if labels.shape != has_mask.shape:
            raise ValueError(f"labels {labels.shape} and has_mask {has_mask.shape} differ")
        self.pools = (np.flatnonzero(labels & has_mask), np.flatnonzero(labels & ~has_mask),
                      np.flatnonzero(~labels))
        self.counts = (int(masked), int(unmasked), int(healthy))
        for name, pool, count in zip(KIND_NAMES, self.pools, self.counts):
            if count < 0:
                raise ValueError(f"negative count {count} of {name} slices")
            if count and not len(pool):
                raise ValueError(f"batches need {count} {name} slices but there are none")
        if not sum(self.counts):
            raise ValueError("a batch needs at least one slice")

    @staticmethod
    def counts_for(labels: np.ndarray, has_mask: np.ndarray, masked: int, unmasked: int,
                   healthy: int) -> tuple[int, int, int]:
        """The wanted counts with those of empty pools set to 0."""
        labels = np.asarray(labels).astype(bool)
        has_mask = np.asarray(has_mask).astype(bool)
        present = ((labels & has_mask).any(), (labels & ~has_mask).any(), (~labels).any())
        return tuple(c if p else 0 for c, p in zip((masked, unmasked, healthy), present))

    @property
    def batch_size(self) -> int:
        return sum(self.counts)

    def sample(self, rng: np.random.Generator) -> Batch:
        rows, kinds = [], []
        for kind, (pool, count) in enumerate(zip(self.pools, self.counts)):
            if count:
                rows.append(rng.choice(pool, size=count, replace=count > len(pool)))
                kinds.append(np.full(count, kind))
        return Batch(np.concatenate(rows), np.concatenate(kinds))

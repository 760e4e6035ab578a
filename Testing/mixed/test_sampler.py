"""Batches of 4 masked tumour + 4 unmasked tumour + 2 healthy slices (seed 001, k=4 n=4 m=2)."""
from __future__ import annotations

import numpy as np
import pytest

from WeakSegLib.mixed.sampler import HEALTHY, MASKED, UNMASKED, MixedBatchSampler

#   rows 0–5 masked tumour, 6–8 unmasked tumour, 9–10 masked healthy, 11–14 unmasked healthy
LABELS = np.array([1] * 6 + [1] * 3 + [0] * 2 + [0] * 4)
HAS_MASK = np.array([True] * 6 + [False] * 3 + [True] * 2 + [False] * 4)


def test_composition_of_every_batch() -> None:
    sampler = MixedBatchSampler(LABELS, HAS_MASK, 4, 4, 2)
    rng = np.random.default_rng(0)
    for _ in range(50):
        batch = sampler.sample(rng)
        assert len(batch.rows) == sampler.batch_size == 10
        assert list(batch.kinds) == [MASKED] * 4 + [UNMASKED] * 4 + [HEALTHY] * 2
        masked, unmasked, healthy = (batch.rows[batch.kinds == k]
                                     for k in (MASKED, UNMASKED, HEALTHY))
        assert set(masked) <= set(range(6)) and len(set(masked)) == 4     # no repeats: 6 ≥ 4
        assert set(unmasked) <= {6, 7, 8}          # 3 < 4: drawn with replacement
        assert set(healthy) <= set(range(9, 15))
        assert (LABELS[batch.rows] == [1] * 8 + [0] * 2).all()
        assert list(batch.annotated) == [True] * 4 + [False] * 4 + [True] * 2


def test_same_generator_same_batches() -> None:
    sampler = MixedBatchSampler(LABELS, HAS_MASK)
    a = sampler.sample(np.random.default_rng(3))
    b = sampler.sample(np.random.default_rng(3))
    assert (a.rows == b.rows).all()


def test_empty_pool_is_refused_or_dropped() -> None:
    no_unmasked = HAS_MASK | (LABELS == 1)
    with pytest.raises(ValueError, match="4 unmasked tumour slices but there are none"):
        MixedBatchSampler(LABELS, no_unmasked, 4, 4, 2)
    counts = MixedBatchSampler.counts_for(LABELS, no_unmasked, 4, 4, 2)
    assert counts == (4, 0, 2)                      # standard supervision: 4 masked + 2 healthy
    batch = MixedBatchSampler(LABELS, no_unmasked, *counts).sample(np.random.default_rng(0))
    assert list(batch.kinds) == [MASKED] * 4 + [HEALTHY] * 2

"""Shared stage helpers: sampling, sharding, augmentation, BatchNorm recalibration."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from WeakSegLib.config import get_profile
from WeakSegLib.data.slices import SliceSet
from WeakSegLib.stages.base import RunContext
from WeakSegLib.stages.common import (balanced_indices, epoch_generator,
                                      recalibrate_batchnorm, shard)
from WeakSegLib.runtime import DistInfo, batches


def _slices(n: int = 8) -> SliceSet:
    return SliceSet(np.zeros((n, 1, 8, 8), np.float32), np.zeros(n, np.uint8), np.zeros(n, int),
                    np.arange(n), ["c"], ["flair"])


def test_balanced_indices_draw_both_classes_equally() -> None:
    labels = np.array([1] * 90 + [0] * 10)
    drawn = labels[balanced_indices(labels, np.random.default_rng(0), n=20000)]
    assert abs(drawn.mean() - 0.5) < 0.02


def test_epoch_generator_is_reproducible() -> None:
    a = epoch_generator(3, 7).random(5)
    assert np.array_equal(a, epoch_generator(3, 7).random(5))
    assert not np.array_equal(a, epoch_generator(3, 8).random(5))


def test_shards_partition_an_epoch() -> None:
    order = np.arange(11)
    parts = [shard(order, DistInfo(rank, 2)) for rank in range(2)]
    assert [len(p) for p in parts] == [5, 5]            # equal batch counts: DDP cannot hang
    assert sorted(np.concatenate(parts).tolist()) == order[:10].tolist()
    assert shard(order, DistInfo()).tolist() == order.tolist()
    assert [len(b) for b in batches(order, 4)] == [4, 4, 3]
    assert [len(b) for b in batches(order, 4, drop_last=True)] == [4, 4]


def test_recalibrated_batchnorm_matches_the_data(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3))
    images = np.random.default_rng(0).normal(5.0, 2.0, (40, 1, 8, 8)).astype(np.float32)
    ctx = RunContext(tmp_path, get_profile("fast"), torch.device("cpu"), _slices(), _slices())
    recalibrate_batchnorm(model, images, ctx, batch_size=10)
    with torch.no_grad():
        features = model[0](torch.as_tensor(images))
    torch.testing.assert_close(model[1].running_mean, features.mean(dim=(0, 2, 3)),
                               rtol=1e-4, atol=1e-4)


def test_epoch_checkpoints_are_written_first_last_and_at_most_every_few_seconds(
        tmp_path: Path, monkeypatch) -> None:
    """runtime.checkpoint_every_s: 50 instant epochs write the first and the last checkpoint
    only; with 0 every epoch is saved (a killed stage resumes after its last save)."""
    from dataclasses import replace

    from WeakSegLib.events import EventWriter
    from WeakSegLib.stages import base
    from WeakSegLib.stages.checkpoint import EpochCheckpoint

    profile = get_profile("fast")
    profile = replace(profile, runtime=replace(profile.runtime, checkpoint_every_s=3600.0))
    data = SliceSet(np.zeros((2, 1, 4, 4), np.float32), np.zeros(2, np.uint8), np.zeros(2, int),
                    np.arange(2), ["A"], ["flair"])
    ctx = RunContext(tmp_path, profile, torch.device("cpu"), data, data, EventWriter(),
                     show_progress=False)
    saves: list[int] = []
    original = EpochCheckpoint.save
    monkeypatch.setattr(EpochCheckpoint, "save",
                        lambda self, epoch, extra: (saves.append(epoch), original(self, epoch,
                                                                                   extra))[1])
    model = torch.nn.Linear(1, 1)
    history = base.run_epochs(ctx, "toy", 50, None, {"model": model}, lambda e: {"loss": 0.0})
    assert len(history) == 50 and saves == [1, 50]
    every = replace(profile, runtime=replace(profile.runtime, checkpoint_every_s=0.0))
    saves.clear()
    ctx2 = RunContext(tmp_path / "b", every, torch.device("cpu"), data, data, EventWriter(),
                      show_progress=False)
    base.run_epochs(ctx2, "toy", 5, None, {"model": model}, lambda e: {"loss": 0.0})
    assert saves == [1, 2, 3, 4, 5]

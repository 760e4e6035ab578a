"""Initial segmenter (Pipeline row 5): the loss terms on hand-computed numbers, a few steps
lower the loss, flips keep seeds on their pixels, and the stage writes every artefact."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

# the DCGAN/converter tests' synthetic slices, context and stage 1–2 artefacts
from stages.test_dcgan_converter import SIZE, _context, _write_stage1_and_2
from WeakSegLib.config import SegmenterConfig
from WeakSegLib.models.unet import UNet
from WeakSegLib.models.weights import load_model
from WeakSegLib.stages.base import RunContext
from WeakSegLib.stages.run_folder import load_probabilities, write_case_arrays
from WeakSegLib.stages.losses import reconstruction_loss, seed_loss, segmenter_loss, size_loss
from WeakSegLib.stages.augment import random_flips
from WeakSegLib.stages.segmenter import (SegmenterStage, build_segmenter, segmenter_data,
                                         segmenter_step)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors on a shared 2-core machine: one thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _t(values: list[list[float]]) -> torch.Tensor:
    """A 1×1×2×2 tensor."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


S = _t([[0.5, 0.8], [0.2, 0.9]])
POSITIVE = _t([[1, 0], [0, 0]])
NEGATIVE = _t([[0, 0], [1, 0]])
X = _t([[1.0, 0.5], [0.0, 0.0]])
V = _t([[0.0, 0.5], [0.0, 1.0]])


# --------------------------------------------------------------------------- losses
def test_seed_loss_is_bce_over_seed_pixels_only() -> None:
    # positive at S = 0.5 → −ln 0.5; negative at S = 0.2 → −ln 0.8; the two unseeded pixels
    # (0.8, 0.9) do not count
    expected = (-math.log(0.5) - math.log(0.8)) / 2
    assert seed_loss(S, POSITIVE, NEGATIVE).item() == pytest.approx(expected, rel=1e-6)
    changed = S.clone()
    changed[0, 0, 0, 1], changed[0, 0, 1, 1] = 0.01, 0.99
    assert seed_loss(changed, POSITIVE, NEGATIVE).item() == pytest.approx(expected, rel=1e-6)


def test_seed_loss_without_seeds_is_zero() -> None:
    zero = torch.zeros_like(S)
    assert seed_loss(S, zero, zero).item() == 0.0


def test_reconstruction_and_size_losses() -> None:
    # |x − v| = [[1, 0], [0, 1]], 1 − S = [[0.5, 0.2], [0.8, 0.1]] → (0.5 + 0.1) / 4
    assert reconstruction_loss(X, V, S).item() == pytest.approx(0.15, rel=1e-6)
    assert size_loss(S).item() == pytest.approx(0.6, rel=1e-6)


def test_total_is_the_weighted_sum_and_weights_can_switch_terms_off() -> None:
    cfg = SegmenterConfig(seed_weight=1.0, reconstruction_weight=0.5, size_weight=0.01)
    total, parts = segmenter_loss(S, X, V, POSITIVE, NEGATIVE, cfg)
    seed = (-math.log(0.5) - math.log(0.8)) / 2
    assert total.item() == pytest.approx(seed + 0.5 * 0.15 + 0.01 * 0.6, rel=1e-6)
    assert {k: round(v.item(), 6) for k, v in parts.items()} == \
        {"seed": round(seed, 6), "reconstruction": 0.15, "size": 0.6}
    seed_only = replace(cfg, reconstruction_weight=0.0, size_weight=0.0)
    assert segmenter_loss(S, X, V, POSITIVE, NEGATIVE, seed_only)[0].item() == \
        pytest.approx(seed, rel=1e-6)


def test_flips_move_image_variant_and_seeds_together() -> None:
    rng = np.random.default_rng(0)
    base = rng.random((16, 5, 5))
    images, v, seeds = base[:, None].repeat(2, axis=1), base + 1, base > 0.5
    flipped = [t.numpy() for t in random_flips(
        [torch.as_tensor(a) for a in (images, v[:, None], seeds[:, None])], rng)]
    assert not np.array_equal(flipped[0][:, 0], base)          # some were flipped
    np.testing.assert_array_equal(flipped[0][:, 1], flipped[0][:, 0])
    np.testing.assert_array_equal(flipped[1][:, 0], flipped[0][:, 0] + 1)
    np.testing.assert_array_equal(flipped[2][:, 0], flipped[0][:, 0] > 0.5)


# --------------------------------------------------------------------------- tiny run folder
def _write_variants(ctx: RunContext) -> None:
    """What the converter leaves: v = x with the tumour replaced by brain grey (0.4)."""
    for data in (ctx.train, ctx.val):
        variants = data.flair.copy()
        if data.masks is not None:
            variants[data.masks > 0] = 0.4
        write_case_arrays(ctx.run_dir / "variants", data, {"variant": variants.astype(np.float16)})


def _segmenter_context(run_dir: Path) -> RunContext:
    ctx = _context(run_dir)
    ctx.profile = replace(ctx.profile, segmenter=replace(
        ctx.profile.segmenter, epochs=2, batch_size=4, halve_every=1, min_updates=0,
        time_budget_s=None))
    _write_stage1_and_2(ctx)
    _write_variants(ctx)
    return ctx


def test_healthy_slices_get_negative_seeds_and_v_equal_to_x(tmp_path: Path) -> None:
    ctx = _segmenter_context(tmp_path)
    arrays = segmenter_data(ctx)
    healthy = ctx.train.labels == 0
    assert arrays.negative[healthy].all() and not arrays.positive[healthy].any()
    np.testing.assert_array_equal(arrays.variants[healthy], ctx.train.flair[healthy])


def test_a_few_steps_lower_the_total_loss_on_a_fixed_batch(tmp_path: Path) -> None:
    ctx = _segmenter_context(tmp_path)
    cfg = replace(ctx.profile.segmenter, lr=1e-3)
    arrays = segmenter_data(ctx)
    rows = np.r_[np.flatnonzero(ctx.train.labels)[:2], np.flatnonzero(ctx.train.labels == 0)[:2]]
    batch = arrays.batch(rows, None, ctx)
    torch.manual_seed(0)
    model = build_segmenter(ctx)
    model.eval()        # fixed BatchNorm statistics, so the before/after losses compare

    def total() -> float:
        with torch.no_grad():
            return segmenter_loss(model(batch.images), batch.flair, batch.variant,
                                  batch.positive, batch.negative, cfg)[0].item()

    before = total()
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(3):
        record = segmenter_step(model, optimiser, batch, cfg, ctx)
    assert total() < before
    assert set(record) == {"loss", "seed", "reconstruction", "size"}


def test_stage_writes_every_artefact(tmp_path: Path) -> None:
    ctx = _segmenter_context(tmp_path)
    artefacts = SegmenterStage().run(ctx)
    stage = tmp_path / "segmenter"
    for name in ("model.pt", "metrics.json", "probabilities.npz", "figures/segmentations.png"):
        assert stage / name in artefacts and (stage / name).is_file(), name
    metrics = json.loads((stage / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    assert {"loss", "seed", "reconstruction", "size", "lr"} <= set(metrics["history"][0])
    assert metrics["history"][1]["lr"] == pytest.approx(metrics["history"][0]["lr"] / 2)
    for split in ("train", "val"):
        assert 0.0 <= metrics[f"{split}_tumour_slices"]["mean_dice"] <= 1.0
    probabilities = load_probabilities(tmp_path)
    assert probabilities["train"].shape == (len(ctx.train), SIZE, SIZE)
    assert probabilities["val"].shape == (len(ctx.val), SIZE, SIZE)
    assert ((probabilities["train"] >= 0) & (probabilities["train"] <= 1)).all()
    unet, meta = load_model(stage / "model.pt", UNet.architecture)
    assert unet.arch_kwargs["in_channels"] == len(ctx.train.channels) == 2
    assert meta["channels"] == ctx.train.channels


def test_balanced_seed_loss_weighs_positive_and_negative_pixels_equally() -> None:
    S = torch.tensor([[[[0.9, 0.2, 0.2, 0.2]]]])
    positive = torch.tensor([[[[1.0, 0, 0, 0]]]])
    negative = torch.tensor([[[[0.0, 1, 1, 1]]]])
    pos, neg = -math.log(0.9), -math.log(0.8)
    assert seed_loss(S, positive, negative, balanced=True).item() == pytest.approx(
        (pos + neg) / 2, rel=1e-6)
    assert seed_loss(S, positive, negative).item() == pytest.approx((pos + 3 * neg) / 4, rel=1e-6)
    only_negative = seed_loss(S, torch.zeros_like(S), negative, balanced=True)
    assert only_negative.item() == pytest.approx(neg, rel=1e-6)
    assert seed_loss(S, torch.zeros_like(S), torch.zeros_like(S), balanced=True).item() == 0.0

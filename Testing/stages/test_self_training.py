"""The self-training stage (seed 003 step 3) and the fully supervised reference."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from conftest import TINY_RUN_OVERRIDES
from WeakSegLib.config import SelfTrainConfig, apply_overrides, get_profile
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.slices import SliceSet
from WeakSegLib.inference.bundle import load_bundle
from WeakSegLib.pipeline import DEFAULT_STAGES, train
from WeakSegLib.stages.base import RunContext
from WeakSegLib.stages.self_training import flair_evidence, mask_loss, pseudo_masks, \
    train_mask_segmenter


def _context(tmp_path: Path, labels: np.ndarray, size: int = 32) -> RunContext:
    n = len(labels)
    images = np.random.default_rng(0).random((n, 1, size, size)).astype(np.float32)
    data = SliceSet(images, labels.astype(np.uint8), np.zeros(n, int), np.arange(n), ["c"],
                    ["flair"])
    profile = apply_overrides(get_profile("fast"), ["runtime.channels_last=false"])
    return RunContext(tmp_path, profile, torch.device("cpu"), data, data.subset(np.arange(0)),
                      show_progress=False)


def test_pseudo_masks_are_empty_on_healthy_slices_and_skip_empty_tumour_slices(
        tmp_path: Path) -> None:
    labels = np.array([1, 1, 0, 0])
    ctx = _context(tmp_path, labels)
    S = np.zeros((4, 32, 32), np.float32)
    S[0, 5:15, 5:15] = 0.9          # tumour slice with a segmentation: kept
    S[2, 5:15, 5:15] = 0.9          # healthy slice the segmenter lit up: forced empty
    (tmp_path / "segmenter").mkdir()
    np.savez(tmp_path / "segmenter" / "probabilities.npz", train=S, val=S[:0])
    (tmp_path / "seed_only").mkdir()          # a collapsed segmenter: empty everywhere
    np.savez(tmp_path / "seed_only" / "probabilities.npz", train=S * 0, val=S[:0])
    masks, rows, used = pseudo_masks(ctx, SelfTrainConfig(sources=("segmenter", "under",
                                                                   "seed_only"),
                                                          min_flair_sd=None))
    assert used == ["segmenter"]               # seed_only left out, under absent
    assert masks[0].sum() == 100 and not masks[2].any()
    assert rows.tolist() == [0, 2, 3]               # slice 1: tumour without pseudo-mask, left out


def test_when_every_source_collapsed_their_mean_is_used_with_a_warning(tmp_path: Path) -> None:
    labels = np.array([1, 1, 0, 0])
    ctx = _context(tmp_path, labels)
    S = np.zeros((4, 32, 32), np.float32)
    S[0, 5:7, 5:7] = 0.9            # one slice of two: still "collapsed" at a 60 % floor
    (tmp_path / "segmenter").mkdir()
    np.savez(tmp_path / "segmenter" / "probabilities.npz", train=S, val=S[:0])
    logged = []
    ctx.events.log = lambda message, *a, **k: logged.append(message)
    masks, rows, used = pseudo_masks(ctx, SelfTrainConfig(sources=("segmenter",),
                                                          min_segmented_fraction=0.6,
                                                          min_pseudo_px=1, min_flair_sd=None))
    assert used == ["segmenter"] and masks[0].sum() == 4
    assert any("every source" in m for m in logged)


def _bright_lesion_slice() -> np.ndarray:
    """A 32 px FLAIR slice: brain at 0.3 (with a little texture), a 10 × 10 FLAIR-bright lesion
    at 0.9 around a dark 2 × 2 core (necrosis) at 0.2."""
    flair = np.zeros((32, 32), np.float32)
    flair[2:30, 2:30] = 0.3 + 0.02 * np.random.default_rng(1).random((28, 28))
    flair[10:20, 10:20] = 0.9
    flair[14:16, 14:16] = 0.2
    return flair


def test_flair_evidence_trims_a_dark_rim_and_keeps_the_enclosed_core() -> None:
    flair = _bright_lesion_slice()[None]
    wide = np.zeros((1, 32, 32), bool)
    wide[0, 8:22, 8:22] = True                      # the lesion plus a 2 px rim of dark brain
    kept = flair_evidence(wide, flair, 1.0)
    lesion = np.zeros_like(wide)
    lesion[0, 10:20, 10:20] = True                  # the core is inside: filled, not cut
    assert np.array_equal(kept, lesion)
    outside = np.zeros_like(wide)
    outside[0, 0:4, 0:4] = True                     # never grows beyond the pseudo-mask
    assert not flair_evidence(outside, flair, 1.0).any()


def test_pseudo_masks_use_the_flair_evidence_by_default(tmp_path: Path) -> None:
    ctx = _context(tmp_path, np.array([1, 0]))
    ctx.train.images[:, 0] = _bright_lesion_slice()
    S = np.zeros((2, 32, 32), np.float32)
    S[0, 8:22, 8:22] = 0.9
    (tmp_path / "segmenter").mkdir()
    np.savez(tmp_path / "segmenter" / "probabilities.npz", train=S, val=S[:0])
    cfg = SelfTrainConfig(sources=("segmenter",))
    assert cfg.min_flair_sd is not None
    masks, rows, _ = pseudo_masks(ctx, cfg)
    assert masks[0].sum() == 100 and rows.tolist() == [0, 1]
    wide, _, _ = pseudo_masks(ctx, SelfTrainConfig(sources=("segmenter",), min_flair_sd=None))
    assert wide[0].sum() == 196


def test_mask_loss_is_lower_for_the_right_mask() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    good, _ = mask_loss(target * 0.9 + 0.05, target, 1.0)
    bad, _ = mask_loss(1 - (target * 0.9 + 0.05), target, 1.0)
    assert float(good) < float(bad)


def test_a_few_epochs_lower_the_mask_loss(tmp_path: Path) -> None:
    labels = np.array([1] * 8 + [0] * 8)
    ctx = _context(tmp_path, labels)
    masks = np.zeros((16, 32, 32), bool)
    masks[:8, 8:20, 8:20] = True
    ctx.train.images[:8, 0][masks[:8]] += 2.0        # the "tumour" is bright, learnable
    cfg = SelfTrainConfig(epochs=6, batch_size=8, lr=1e-3, augment=True)
    _, history = train_mask_segmenter(ctx, "self_train", masks, np.arange(16), cfg)
    assert len(history) == 6
    assert history[-1]["loss"] < history[0]["loss"]


def test_the_default_run_self_trains_and_the_reference_is_optional(
        tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path) -> None:
    assert "self_train" in DEFAULT_STAGES and "supervised" not in DEFAULT_STAGES
    events = [json.loads(line) for line in (tiny_run / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"  # every run
    assert {"self_train"} <= {e.get("stage") for e in events if e["event"] == "stage_end"}
    metrics = json.loads((tiny_run / "self_train" / "metrics.json").read_text())
    assert metrics["sources"] and metrics["n_train_slices"] > 0
    assert 0.0 <= metrics["pseudo_mask_tumour_slice_dice"] <= 1.0
    bundle = load_bundle(tiny_run, "cpu")
    assert "self_trained" in bundle.methods and "supervised_reference" not in bundle.methods
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    train(discover_cohort(tiny_flair_t1_phantom), run,
          apply_overrides(get_profile("fast"), TINY_RUN_OVERRIDES), device="cpu",
          stages=["supervised"], resume=True, show_progress=False)
    assert "supervised_reference" in load_bundle(run, "cpu").methods

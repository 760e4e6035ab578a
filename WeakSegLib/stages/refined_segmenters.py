"""Stage 7 — the over- and under-segmenters (seed 000 §2.4, Pipeline row 7) — and the
seed-only baseline: the row 5 segmenter retrained on other seeds, slices or loss weights.

*under* learns from the reliable tumour slices and every healthy slice, so "empty" weighs on
it and it stays inside the tumour; *over* sees only reliable tumour slices and spreads. Both
use the refined seeds. The seed-only baseline is row 5 with reconstruction and size weights 0
(seed 000 Table 5): what the seeds alone teach.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import SegmenterConfig
from .base import RunContext, Stage
from .run_folder import load_refined_seeds, load_seeds, load_variants
from .segmenter import train_segmenter, write_segmenter_artefacts


class _RefinedSegmenterStage(Stage):
    config_section = "segmenter"
    requires = ("refinement", "converter")
    include_healthy: bool

    def run(self, ctx: RunContext) -> list[Path]:
        refined = load_refined_seeds(ctx.run_dir, ctx.train)
        tumour = ctx.train.labels == 1
        fallback = not refined["reliable"].any()
        if fallback:     # nothing convinced the classifier: keep the run going on stage 2's seeds
            ctx.events.log(f"{self.name}: refinement found no reliable tumour slice; training "
                           "on every tumour slice with the stage-2 seeds instead", "warning",
                           self.name)
            refined = {**load_seeds(ctx.run_dir, ctx.train), "reliable": tumour}
        rows = refined["reliable"] | (~tumour & self.include_healthy)
        seeds = {k: refined[k] for k in ("positive", "negative")}
        model, history = train_segmenter(ctx, self.name, np.flatnonzero(rows), seeds)
        if not ctx.dist.is_main:
            return []
        return write_segmenter_artefacts(
            ctx, self.name, model, history, load_variants(ctx.run_dir, ctx.train),
            {"n_train_slices": int(rows.sum()), "n_reliable_tumour": int(refined["reliable"].sum()),
             "fallback_to_initial_seeds": fallback})


class UnderSegmenterStage(_RefinedSegmenterStage):
    name = "under"
    include_healthy = True


class OverSegmenterStage(_RefinedSegmenterStage):
    name = "over"
    include_healthy = False


def seed_only_config(cfg: SegmenterConfig) -> SegmenterConfig:
    return replace(cfg, reconstruction_weight=0.0, size_weight=0.0)


class SeedOnlyStage(Stage):
    name = "seed_only"
    config_section = "segmenter"
    requires = ("seeds", "converter")

    def run(self, ctx: RunContext) -> list[Path]:
        model, history = train_segmenter(ctx, self.name, np.arange(len(ctx.train)),
                                         cfg=seed_only_config(ctx.profile.segmenter))
        if not ctx.dist.is_main:
            return []
        return write_segmenter_artefacts(ctx, self.name, model, history,
                                         load_variants(ctx.run_dir, ctx.train),
                                         {"n_train_slices": len(ctx.train), "baseline": True})

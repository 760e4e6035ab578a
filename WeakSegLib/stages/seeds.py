"""Stage 2: positive / negative seeds from the classifier's saliency on tumour-labelled slices.

RISE (the default) and Grad-CAM++ are both computed so their seed overlap (seed 000 Table 3) can
be compared; the configured one becomes the seeds later stages train on. Under ``torchrun`` RISE
is sharded over the ranks by mask index and summed, so every rank holds the same maps.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..explain.gradcampp import gradcampp_saliency
from ..explain.registry import configured_rise
from ..explain.seeds import intensity_prior_seeds, seeds_from_saliency
from ..evaluation.metrics import seed_overlap
from ..progress import track
from .base import RunContext, Stage
from .run_folder import write_case_arrays
from .classifier import load_classifier
from .figures import seed_codes, slice_panels
from ..runtime import batches, to_device

SOURCES = ("rise", "gradcampp")
_CHUNK = 16          # slices per saliency call: bounds memory, gives the progress bar steps


def saliency_maps(model: torch.nn.Module, images: np.ndarray, source: str, ctx: RunContext
                  ) -> np.ndarray:
    """Saliency in [0, 1] for (N, C, H, W) slices, float32 (N, H, W)."""
    cfg = ctx.profile.seeds
    out = np.zeros((len(images), *images.shape[-2:]), np.float32)
    chunks = list(batches(np.arange(len(images)), _CHUNK))
    for chunk in track(chunks, f"seeds/{source}", unit="batch",
                       show=ctx.show_progress and ctx.dist.is_main):
        x = to_device(images[chunk], ctx.device, ctx.profile.runtime)
        if source == "rise":
            maps = configured_rise(model, x, cfg, ctx.dist.rank, ctx.dist.world_size)
        elif source == "gradcampp":
            maps = gradcampp_saliency(model, x)
        else:
            raise ValueError(f"unknown seed source {source!r}; use one of {SOURCES}")
        out[chunk] = maps.float().cpu().numpy()
    return out


class SeedsStage(Stage):
    name = "seeds"
    config_section = "seeds"
    requires = ("classifier",)

    def run(self, ctx: RunContext) -> list[Path]:
        cfg = ctx.profile.seeds
        model = load_classifier(ctx.run_dir, ctx.device)
        if ctx.profile.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data = ctx.train
        tumour = data.labels.astype(bool)
        sources = [cfg.method] + [s for s in SOURCES if s != cfg.method]
        results: dict[str, dict[str, np.ndarray]] = {}
        for source in sources:
            saliency = np.zeros((len(data), *data.images.shape[-2:]), np.float32)
            saliency[tumour] = saliency_maps(model, data.images[tumour], source, ctx)
            positive, negative = seeds_from_saliency(saliency, tumour, cfg.positive_threshold,
                                                     cfg.negative_threshold)
            results[source] = {"saliency": saliency, "positive": positive, "negative": negative}
            if cfg.intensity_prior:
                positive, negative = intensity_prior_seeds(
                    saliency, data.flair, tumour, cfg.prior_saliency_threshold,
                    cfg.prior_positive_sd, cfg.prior_negative_sd, base_negative=negative)
                results[f"{source}+prior"] = {"saliency": saliency, "positive": positive,
                                              "negative": negative}
        if not ctx.dist.is_main:
            return []
        return self._write(ctx, results, sources)

    def _write(self, ctx: RunContext, results: dict[str, dict[str, np.ndarray]],
               sources: list[str]) -> list[Path]:
        chosen_name = sources[0] + ("+prior" if ctx.profile.seeds.intensity_prior else "")
        data, chosen = ctx.train, results[chosen_name]
        out_dir = ctx.stage_dir(self.name)
        artefacts = write_case_arrays(out_dir, data, {
            "positive": chosen["positive"], "negative": chosen["negative"],
            "saliency": chosen["saliency"].astype(np.float16)})
        metrics = {"source": chosen_name, "n_slices": len(data),
                   "n_tumour_slices": int(data.labels.sum())}
        if data.masks is not None:
            tumour = data.labels.astype(bool)
            for source, r in results.items():
                metrics[source] = {
                    "all_slices": seed_overlap(r["positive"], r["negative"], data.masks),
                    "tumour_slices": seed_overlap(r["positive"][tumour], r["negative"][tumour],
                                                  data.masks[tumour]),
                    "positive_fraction": float(r["positive"][tumour].mean()),
                    "negative_fraction": float(r["negative"][tumour].mean()),
                }
                for part in ("positive", "negative"):
                    ctx.events.metric(self.name, f"{source}_{part}_overlap",
                                      metrics[source]["all_slices"][part])
        artefacts.append(ctx.write_json(self.name, "metrics.json", metrics))
        artefacts.append(self._figure(ctx, results, out_dir / "figures" / "seeds.png"))
        return artefacts

    @staticmethod
    def _figure(ctx: RunContext, results: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
        """Seed 000 Fig. 2 style: image, then saliency and seeds of each source."""
        data = ctx.train
        tumour = np.flatnonzero(data.labels)
        picks = tumour[np.linspace(0, len(tumour) - 1, min(6, len(tumour))).astype(int)]
        columns = [("image", "image")]
        for source in results:
            columns += [(f"{source} saliency", "map"), (f"{source} seeds", "seeds")]
        rows = []
        for i in picks:
            row = {"image": data.flair[i]}
            if data.masks is not None:
                row["truth"] = data.masks[i]
            for source, r in results.items():
                row[f"{source} saliency"] = r["saliency"][i]
                row[f"{source} seeds"] = seed_codes(r["positive"][i], r["negative"][i])
            rows.append(row)
        titles = [f"{data.case_name(i)} z={data.slice_index[i]}" for i in picks]
        return slice_panels(rows, columns, path, "image (truth in green), saliency, positive (red) "
                            "/ negative (blue) seeds", titles)

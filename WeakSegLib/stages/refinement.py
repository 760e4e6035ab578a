"""Stage 6: refinement of the seeds by the classifier (seed 000 §2.4, Pipeline row 6).

The initial segmenter's S > 0.5 on each training tumour slice splits into connected components.
A component is trusted as tumour when hiding it — the component dilated by disks of radius
1…5 px, each radius a separate try — makes the classifier stop seeing tumour (mean score
< 0.5): the classifier's own evidence then lies inside it. Trusted components become the new
positive seeds; slices with at least one form the *reliable* subset the over/under segmenters
train on. Negative seeds stay those of stage 2 (they were reliable already, seed 000 Table 3).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

from ..config import RefinementConfig
from ..data.slices import SliceSet
from ..evaluation.metrics import seed_overlap
from .base import RunContext, Stage
from .run_folder import load_probabilities, load_seeds, write_case_arrays
from .classifier import load_classifier
from .common import predict_scores
from .figures import figure_picks, seed_codes, slice_panels

_FIGURE_ROWS = 6


def slice_components(probability: np.ndarray, threshold: float, min_px: int = 1,
                     max_count: int | None = None) -> list[np.ndarray]:
    """Boolean masks of the 8-connected components of ``probability > threshold`` with at
    least ``min_px`` pixels, largest first, at most ``max_count`` of them."""
    labelled, count = ndimage.label(probability > threshold, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
    order = [k + 1 for k in np.argsort(-sizes, kind="stable") if sizes[k] >= min_px]
    return [labelled == k for k in order[:max_count]]


def hidden_copies(image: np.ndarray, component: np.ndarray, radii: tuple[int, ...],
                  fill: str = "median") -> np.ndarray:
    """``(len(radii), C, H, W)``: the slice with the component dilated by each disk hidden.

    ``fill='zero'`` is seed 000's x·(1 − dilated); ``'median'`` paints the hidden brain pixels
    with each channel's median over the rest of the brain, so the classifier sees plain tissue
    instead of a black hole (which our classifiers read as abnormal, see RefinementConfig)."""
    copies = np.repeat(image[None], len(radii), axis=0)
    brain = np.any(image != 0, axis=0)
    for i, radius in enumerate(radii):
        hidden = ndimage.binary_dilation(component, structure=disk(radius)) if radius else component
        if fill == "zero":
            copies[i][:, hidden] = 0.0
            continue
        rest = brain & ~hidden
        for c in range(image.shape[0]):
            value = float(np.median(image[c][rest])) if rest.any() else 0.0
            copies[i][c][hidden & brain] = value
    return copies


def refine_seeds(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                 negative: np.ndarray,
                 score: Callable[[np.ndarray], np.ndarray], cfg: RefinementConfig
                 ) -> dict[str, np.ndarray]:
    """New positive seeds, negative seeds and the reliable-slice flags for a set of slices.

    ``score`` maps ``(M, C, H, W)`` images to M classifier probabilities. All hidden copies of
    all components are scored in one call so the classifier runs batched."""
    positive = np.zeros(probabilities.shape, bool)
    candidates: list[tuple[int, np.ndarray]] = []
    stacks = []
    for i in np.flatnonzero(labels == 1):
        for component in slice_components(probabilities[i], cfg.threshold,
                                          cfg.min_component_px, cfg.max_components):
            candidates.append((int(i), component))
            stacks.append(hidden_copies(images[i], component, cfg.dilation_radii, cfg.fill))
    accepted = np.zeros(len(candidates), bool)
    if candidates:
        scores = np.asarray(score(np.concatenate(stacks))).reshape(len(candidates), -1)
        accepted = scores.mean(axis=1) < cfg.max_score
        for (i, component), keep in zip(candidates, accepted):
            if keep:
                positive[i] |= component
    reliable = (labels == 1) & positive.reshape(len(positive), -1).any(axis=1)
    negative = np.asarray(negative, bool) & ~positive
    return {"positive": positive, "negative": negative, "reliable": reliable,
            "n_components": np.int64(len(candidates)), "n_accepted": np.int64(accepted.sum())}



class RefinementStage(Stage):
    name = "refinement"
    config_section = "refinement"
    requires = ("classifier", "seeds", "segmenter")

    def run(self, ctx: RunContext) -> list[Path]:
        if not ctx.dist.is_main:          # cheap and deterministic: rank 0 computes it alone
            return []
        data, cfg = ctx.train, ctx.profile.refinement
        classifier = load_classifier(ctx.run_dir, ctx.device)
        seeds = load_seeds(ctx.run_dir, data)
        probabilities = load_probabilities(ctx.run_dir)["train"]
        refined = refine_seeds(data.images, data.labels, probabilities, seeds["negative"],
                               lambda x: predict_scores(classifier, x, ctx), cfg)
        paths = write_case_arrays(ctx.stage_dir(self.name), data,
                                  {k: refined[k] for k in ("positive", "negative", "reliable")})
        metrics = self._metrics(data, seeds, refined)
        for key in ("n_reliable", "n_components", "n_accepted"):
            ctx.events.metric(self.name, key, metrics[key])
        paths.append(ctx.write_json(self.name, "metrics.json", metrics))
        paths.append(self._figure(data, seeds, refined, probabilities,
                                  ctx.stage_dir(self.name) / "figures" / "refined_seeds.png"))
        return paths

    @staticmethod
    def _metrics(data: SliceSet, seeds: dict[str, np.ndarray], refined: dict[str, np.ndarray]
                 ) -> dict:
        """Refinement yield, and (where masks exist) seed overlap before and after."""
        tumour = data.labels == 1
        metrics = {"n_tumour_slices": int(tumour.sum()),
                   "n_reliable": int(refined["reliable"].sum()),
                   "n_components": int(refined["n_components"]),
                   "n_accepted": int(refined["n_accepted"])}
        if data.masks is not None and tumour.any():
            truth = data.masks[tumour] > 0
            metrics["overlap_initial"] = seed_overlap(seeds["positive"][tumour],
                                                      seeds["negative"][tumour], truth)
            metrics["overlap_refined"] = seed_overlap(refined["positive"][tumour],
                                                      refined["negative"][tumour], truth)
        return metrics

    @staticmethod
    def _figure(data: SliceSet, seeds: dict[str, np.ndarray], refined: dict[str, np.ndarray],
                probabilities: np.ndarray, path: Path) -> Path:
        picks = figure_picks(data.labels, _FIGURE_ROWS)
        rows = []
        for i in picks:
            row = {"image": data.flair[i], "S": probabilities[i],
                   "initial seeds": seed_codes(seeds["positive"][i], seeds["negative"][i]),
                   "refined seeds": seed_codes(refined["positive"][i], refined["negative"][i])}
            if data.masks is not None:
                row["truth"] = data.masks[i]
            rows.append(row)
        columns = [("image", "image"), ("S", "map"), ("initial seeds", "seeds"),
                   ("refined seeds", "seeds")]
        titles = [f"{data.case_name(i)} z={data.slice_index[i]}"
                  f"{' reliable' if refined['reliable'][i] else ''}" for i in picks]
        return slice_panels(rows, columns, path, "refinement: FLAIR (truth green), initial S, "
                            "stage-2 seeds, refined seeds (red +, blue −)", titles)

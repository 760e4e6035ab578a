"""Segment one case with a bundle: every method from one batched pass over its patches.

Per patch: classifier score c, the segmenters' S, the healthy variant v and the combination
weight w = classifier(x·(1 − (S_under > 0.5))). Each method's patch maps are gated by c and
averaged over overlapping patches on the preprocessed grid, then returned to the input grid.
``l1_baseline`` is |FLAIR − v| with a 5×5×5 median and a threshold (seed 000 Table 5).
A bundle without a classifier and converter (a mixed-supervision run) has no score, gate or
variant: its slice score is its highest tumour probability on the slice, and its slices get no
difference score.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from ..data.preprocess import GridMapping, preprocess_case
from ..data.frame import InputFrame
from ..data.reader import CaseVolumes, Geometry
from ..runtime import autocast, batches, to_device
from .bundle import METHOD_STAGES, UNGATED_METHODS, Bundle
from .combine import combine, difference_scores, gate
from .patches import PatchGrid, patch_geometry
from .review import (AGREEMENT_SCORES, REVIEW_OTHERS, SliceStats, review_priority, slice_stats,
                     uncertain_voxels)


def base_method(method: str) -> str:
    """The method a post-processed ``<method>_pp`` came from (``method`` itself otherwise)."""
    return method[:-3] if method.endswith("_pp") else method


@dataclass
class CaseSegmentation:
    """Everything ``segment`` writes and ``evaluate`` scores for one case."""
    name: str
    geometry: Geometry
    mapping: GridMapping
    labels: dict[str, np.ndarray]             # method → uint8 label map on the input grid
    probabilities: dict[str, np.ndarray]      # method → (Z', H', W') on the preprocessed grid
    slice_scores: np.ndarray                  # (Z,) classifier score per input slice
    difference: dict[str, np.ndarray]         # method → (Z,) D per input slice (NaN: empty)
    flair: np.ndarray                         # (Z', H', W') preprocessed FLAIR
    variant: np.ndarray                       # (Z', H', W') healthy variant
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    # label maps of the bundle's other learned methods (not written): review disagreement
    review_labels: dict[str, np.ndarray] = field(default_factory=dict)
    # model grid (``geometry``) → the input file's grid; None: the same grid
    frame: InputFrame | None = None

    def review_stats(self, method: str) -> SliceStats:
        """Mask-free per-slice facts of ``method``'s segmentation for its review priority (a
        post-processed ``<method>_pp`` keeps its method's D where it still segments)."""
        base = base_method(method)
        uncertain = self.uncertain_voxels(base)
        difference = self.difference_of(method)
        return slice_stats({**self.review_labels, **self.labels}, method,
                           [m for m in REVIEW_OTHERS if m != base], self.slice_scores,
                           difference, uncertain)

    def difference_of(self, method: str) -> np.ndarray:
        """Per input slice: seed 000's D of ``method``'s segmentation, NaN where it is empty (a
        post-processed ``<method>_pp`` keeps its method's D where it still segments; a method
        without a score, such as l1_baseline, is NaN throughout)."""
        difference = self.difference.get(method, self.difference.get(base_method(method)))
        if difference is None:
            return np.full(len(self.slice_scores), np.nan, np.float32)
        return np.where(self.labels[method].any(axis=(1, 2)), difference, np.nan)

    def uncertain_voxels(self, method: str) -> np.ndarray | None:
        """Per input slice: Σ min(p, 1 − p) of ``method``'s probabilities, in input-grid
        voxels like the slice areas (None without probabilities)."""
        if method not in self.probabilities:
            return None
        counts = uncertain_voxels(self.probabilities[method]) * self.mapping.pixel_area_ratio
        return self.to_input_slices(counts, 0.0)

    def review_priority(self, method: str, scores: tuple[str, ...],
                        flag_fraction: float | None = None) -> np.ndarray:
        """Per input slice: where to look first at ``method``'s segmentation (no mask used)."""
        return review_priority(self.review_stats(method), scores, flag_fraction)

    def to_input_slices(self, values: np.ndarray, fill: float) -> np.ndarray:
        """A per-preprocessed-slice vector on the input's z axis (``fill`` outside the crop)."""
        out = np.full(self.mapping.original_shape[0], fill, np.float32)
        start = self.mapping.first_slice
        out[start:start + len(values)] = values
        return out


def networks_for(bundle: Bundle, methods: list[str]) -> set[str]:
    """The segmenter stages ``methods`` read, plus "w" when the combination weight is needed
    (``combined``): a case runs only these, not every network of the run (issue 17)."""
    needed = {stage for method in methods for stage in METHOD_STAGES.get(method, ())}
    if "combined" in methods:
        needed.add("w")
    return needed & (set(bundle.segmenters) | {"w"})


@torch.inference_mode()
def _patch_outputs(bundle: Bundle, patches: np.ndarray, flair_channel: int, batch_size: int,
                   progress: Callable[[int], None] | None = None,
                   networks: set[str] | None = None) -> dict[str, np.ndarray]:
    """Per patch: score, variant, the S of each segmenter in ``networks`` (all when None) and
    w when ``networks`` holds "w" (or is None and the bundle has "under"); float32 numpy."""
    runtime, device = bundle.profile.runtime, bundle.device
    threshold = bundle.profile.inference.threshold       # w: a weak bundle's (under) only
    flipped = set(bundle.profile.inference.test_time_flips)
    segmenters = {name: model for name, model in bundle.segmenters.items()
                  if networks is None or name in networks}
    want_w = "under" in segmenters and (networks is None or "w" in networks)
    out: dict[str, list[np.ndarray]] = {}

    def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with autocast(runtime, device):
            return model(x).float()

    quantum = bundle.profile.inference.batch_quantum
    for rows in batches(np.arange(len(patches)), batch_size):
        x = to_device(_padded(patches[rows], quantum), device, runtime)
        parts = {}
        if bundle.classifier is not None:
            parts["score"] = _flip_mean(lambda t: torch.sigmoid(run(bundle.classifier, t)), x,
                                        "classifier" in flipped, spatial=False).reshape(-1)
        if bundle.converter is not None:
            parts["variant"] = run(bundle.converter, x[:, flair_channel:flair_channel + 1])[:, 0]
        for name, model in segmenters.items():
            parts[name] = _flip_mean(lambda t: run(model, t), x, name in flipped)[:, 0]
        if want_w:
            hidden = x * (parts["under"] <= threshold).to(x.dtype)[:, None]
            parts["w"] = torch.sigmoid(run(bundle.classifier, hidden)).reshape(-1)
        for key, value in parts.items():
            out.setdefault(key, []).append(value[:len(rows)].cpu().numpy().astype(np.float32))
        if progress:
            progress(len(rows))
    return {k: np.concatenate(v) for k, v in out.items()}


def _flip_mean(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, flips: bool,
               spatial: bool = True) -> torch.Tensor:
    """``network(x)``, or with ``flips`` its mean over the four in-plane flips of ``x`` (a
    ``spatial`` output is flipped back; a score is not)."""
    if not flips:
        return network(x)
    total = network(x)
    for dims in ((-1,), (-2,), (-1, -2)):
        out = network(x.flip(dims))
        total = total + (out.flip(dims) if spatial else out)
    return total / 4


def _padded(batch: np.ndarray, quantum: int) -> np.ndarray:
    """``batch`` with zero patches appended up to a multiple of ``quantum``: every case's last
    batch then has one of a few shapes, so the CPU backend's per-shape kernel cache stops
    growing with each new case (memory over a long batch); eval-mode networks treat rows
    independently, so the real rows' outputs do not change."""
    extra = -len(batch) % quantum if quantum > 1 else 0
    if not extra:
        return batch
    return np.concatenate([batch, np.zeros((extra, *batch.shape[1:]), batch.dtype)])


def _method_maps(outputs: dict[str, np.ndarray], methods: list[str]) -> dict[str, np.ndarray]:
    """Ungated patch maps of each learned method."""
    maps = {}
    for method in methods:
        if method == "initial":
            maps[method] = outputs["segmenter"]
        elif method in ("under", "over", "seed_only"):
            maps[method] = outputs[method]
        elif method == "self_trained":
            maps[method] = outputs["self_train"]
        elif method == "supervised_reference":
            maps[method] = outputs["supervised"]
        elif method == "mixed":
            maps[method] = outputs["mixed"]
        elif method == "combined":
            maps[method] = combine(outputs["under"], outputs["over"], outputs["w"])
        elif method == "combined_score_weight":
            maps[method] = combine(outputs["under"], outputs["over"], outputs["score"])
    return maps


def segment_case(bundle: Bundle, case: CaseVolumes, methods: list[str],
                 batch_size: int | None = None, progress: Callable[[int], None] | None = None
                 ) -> CaseSegmentation:
    """Segment ``case`` with ``methods`` (already checked against the bundle); ``batch_size``
    patches per forward (None: the profile's ``inference.batch_size``)."""
    started = time.monotonic()
    cfg = bundle.profile
    batch_size = batch_size or cfg.inference.batch_size
    prep = preprocess_case(case, cfg.data, bundle.channels)
    depth, _, height, width = prep.image.shape
    brain = np.any(prep.image != 0, axis=1)
    patch, stride = patch_geometry(cfg.data.size, cfg.inference.stride)
    grid = PatchGrid.cover((depth, height, width), patch, stride,
                           slices=np.flatnonzero(brain.any(axis=(1, 2))))
    flair_channel = bundle.channels.index("flair")
    threshold = bundle.threshold
    # other methods' label maps only when the review priority reads them (disagreement);
    # evaluate asks for every method anyway
    needs_others = any(n in AGREEMENT_SCORES for n in cfg.inference.review_scores)
    extra_methods = [m for m in REVIEW_OTHERS if m in bundle.methods and m not in methods] \
        if needs_others else []
    outputs = _patch_outputs(bundle, grid.extract(prep.image), flair_channel, batch_size,
                             progress, networks_for(bundle, [*methods, *extra_methods]))
    flair = prep.image[:, flair_channel]
    has_variant = "variant" in outputs
    variant = grid.assemble(outputs["variant"]) if len(grid) and has_variant else flair.copy()
    variant = np.where(brain, variant, flair)
    probabilities, labels, difference, review_labels = {}, {}, {}, {}
    for method, maps in _method_maps(outputs, [*methods, *extra_methods]).items():
        if method in extra_methods:
            gated = maps if method in UNGATED_METHODS else gate(maps, outputs["score"],
                                                                bundle.gate)
            review_labels[method] = prep.mapping.to_original(
                np.where(brain, grid.assemble(gated), 0).astype(np.float32), kind="binary",
                threshold=threshold)
            continue
        gated = maps if method in UNGATED_METHODS else gate(maps, outputs["score"], bundle.gate)
        probability = np.where(brain, grid.assemble(gated), 0).astype(np.float32)
        probabilities[method] = probability
        segmented = probability > threshold
        labels[method] = prep.mapping.to_original(probability, kind="binary",
                                                  threshold=threshold)
        difference[method] = difference_scores(flair, variant, segmented) if has_variant \
            else np.full(len(probability), np.nan, np.float32)
    if "l1_baseline" in methods:
        labels["l1_baseline"] = l1_baseline(flair, variant, prep.mapping, case.brain,
                                             cfg.baseline.l1_median, cfg.baseline.l1_threshold)
    result = CaseSegmentation(case.name, case.geometry, prep.mapping, labels, probabilities,
                              np.zeros(0, np.float32), {}, flair, variant)
    if "score" in outputs:
        per_slice = grid.per_slice_max(outputs["score"])
    else:       # no classifier: the method's highest probability on the slice
        first = probabilities[methods[0]] if methods else np.zeros((depth, 1), np.float32)
        per_slice = first.reshape(depth, -1).max(axis=1, initial=0.0)
    result.slice_scores = smooth_along_z(result.to_input_slices(per_slice, 0.0),
                                         cfg.inference.slice_score_sigma_mm,
                                         case.geometry.spacing_zyx[0])
    result.difference = {m: result.to_input_slices(d, np.nan) for m, d in difference.items()}
    result.review_labels = review_labels
    result.frame = case.frame
    result.seconds = time.monotonic() - started
    result.extra = {"n_patches": len(grid), "gate": bundle.gate}
    return result


def smooth_along_z(scores: np.ndarray, sigma_mm: float, spacing_mm: float) -> np.ndarray:
    """Per-slice scores smoothed by a Gaussian of ``sigma_mm`` along z (0: unchanged).
    A tumour spans many slices; a 2D classifier judges each alone, so one slice's score is
    noisy where its neighbours agree. Outside the scored slices counts as 0 (no tumour)."""
    if not sigma_mm or len(scores) == 0:
        return np.asarray(scores, np.float32)
    return ndimage.gaussian_filter1d(np.asarray(scores, np.float64), sigma_mm / spacing_mm,
                                     mode="constant", cval=0.0).astype(np.float32)


def l1_baseline(flair: np.ndarray, variant: np.ndarray, mapping: GridMapping,
                brain: np.ndarray, median: int, threshold: float) -> np.ndarray:
    """|FLAIR − v| on the input grid, median-filtered ``median``³, thresholded, in the brain."""
    difference = mapping.to_original(np.abs(flair - variant), kind="probability")
    filtered = ndimage.median_filter(difference, size=median)
    return ((filtered > threshold) & brain).astype(np.uint8)

"""Training slices for mixed supervision: every slice has a slice label, some have a mask.

A slice's mask is a training target (``has_mask``) when its case is fully annotated or when the
radiologist accepted or corrected it in the review. Preprocessing, trimming and the random
crop/pad are the pipeline's own (``data.preprocess``), with the mask cropped by the same offsets.
Reviewed slices are kept even inside the trimmed band (``trim_fraction``) (someone looked at them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import numpy as np

from ..config import DataConfig
from .cohort import Cohort
from .errors import InputError
from .labels import labels_from_mask
from .preprocess import PreprocessedCase, crop_or_pad, training_slices
from .slices import SliceLabels, SliceSet, input_slice_labels


@dataclass
class MixedSlices(SliceSet):
    """A ``SliceSet`` whose ``masks`` are training targets where ``has_mask``."""

    has_mask: np.ndarray | None = None      # (N,) bool

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.masks is None:
            self.masks = np.zeros((n, *self.images.shape[-2:]), np.uint8)
        if self.has_mask is None:
            self.has_mask = np.zeros(n, bool)
        self.has_mask = np.asarray(self.has_mask, bool)

    def subset(self, index: np.ndarray) -> "MixedSlices":
        index = np.asarray(index)
        return MixedSlices(self.images[index], self.labels[index], self.case_index[index],
                           self.slice_index[index], self.cases, self.channels,
                           self.masks[index], self.has_mask[index])

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """Segmentation targets of ``rows``: the mask where known, zeros elsewhere (what an
        unmasked row gets is never used for a tumour slice, and is right for a healthy one)."""
        return self.masks[rows] * self.has_mask[rows, None, None]

    def with_full_cases(self, names: Collection[str]) -> "MixedSlices":
        """The same slices with masks kept only for the cases ``names`` (experiments: pretend
        the other cases have slice labels only)."""
        unknown = [n for n in names if n not in self.cases]
        if unknown:
            raise ValueError(f"cases not in the slice set: {unknown}")
        wanted = np.isin(self.case_index, [self.cases.index(n) for n in names])
        out = self.subset(np.arange(len(self)))
        out.has_mask = self.has_mask & wanted
        return out

    def composition(self) -> dict[str, int]:
        tumour = self.labels.astype(bool)
        return {"slices": len(self), "masked_tumour": int((tumour & self.has_mask).sum()),
                "unmasked_tumour": int((tumour & ~self.has_mask).sum()),
                "healthy": int((~tumour).sum()), "masked_healthy": int((~tumour & self.has_mask).sum()),
                "cases": len(np.unique(self.case_index)),
                "cases_with_masks": len(np.unique(self.case_index[self.has_mask]))}

    @classmethod
    def load(cls, path: Path) -> "MixedSlices":
        base = SliceSet.load(path)
        with np.load(path, allow_pickle=False) as data:
            has_mask = data["has_mask"]
        return cls(base.images, base.labels, base.case_index, base.slice_index, base.cases,
                   base.channels, base.masks, has_mask)

    @classmethod
    def concatenate(cls, parts: list[dict[str, np.ndarray]], cases: list[str],
                    channels: list[str]) -> "MixedSlices":
        if not parts:
            raise ValueError("no training slices")
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return cls(cat["images"], cat["labels"].astype(np.uint8), cat["case_index"],
                   cat["slice_index"], list(cases), list(channels),
                   cat["masks"].astype(np.uint8), cat["has_mask"].astype(bool))


def case_rows(prep: PreprocessedCase, cfg: DataConfig, number: int, labels: np.ndarray,
              labelled: np.ndarray, annotated: np.ndarray, mask: np.ndarray | None,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One case's training rows.

    ``labels``, ``labelled`` (the label is known) and ``annotated`` (the mask is a target) are per
    slice of the original grid; ``mask`` is on the preprocessed grid (``prep.image``'s)."""
    original = np.arange(prep.n_slices) + prep.mapping.first_slice
    keep = np.zeros(prep.n_slices, bool)
    keep[training_slices(prep, cfg)] = True
    # a slice a reviewer annotated is kept while it shows any brain: the slices a review
    # corrects first are small ones at the ends of a tumour, which the trimming and the
    # zero-fraction rule drop (issue 13: 20 corrected slices per fold became 8–19)
    keep |= annotated[original] & (prep.nonzero_fraction > 0)
    keep &= labelled[original]
    rows = np.flatnonzero(keep)
    target = np.zeros((len(rows), *prep.image.shape[-2:]), np.float32) if mask is None \
        else mask[rows].astype(np.float32)
    stacked = np.concatenate([prep.image[rows], target[:, None]], axis=1)
    volume, _, _ = crop_or_pad(stacked, cfg.size, rng)
    channels = prep.image.shape[1]
    return {"images": np.ascontiguousarray(volume[:, :channels], np.float32),
            "labels": labels[original[rows]].astype(np.uint8),
            "case_index": np.full(len(rows), number),
            "slice_index": original[rows],
            "masks": (volume[:, -1] > 0.5).astype(np.uint8),
            "has_mask": annotated[original[rows]].astype(bool)}


def build_mixed_slices(cohort: Cohort, cfg: DataConfig, channels: list[str],
                       full_cases: Collection[str] = (),
                       reviews: Mapping[str, Any] | None = None,
                       labels: SliceLabels | None = None, seed: int = 0,
                       progress: Callable | None = None) -> MixedSlices:
    """Read and preprocess every case; masks of ``full_cases`` and reviewed slices are targets.

    ``reviews``: case → its review outcome (``mixed.records.ReviewedSlices``: ``mask`` and
    ``annotated`` on the original grid). Slice labels come from ``labels``, else from the case's
    mask; a case with neither contributes only its reviewed (accepted/corrected) slices."""
    from .brain_mask import attach_brain_mask
    from .preprocess import preprocess_case
    from .reader import read_case

    reviews = reviews or {}
    unknown = [c for c in full_cases if c not in cohort.names]
    if unknown:
        raise InputError(None, f"full-annotation cases not in the cohort: {', '.join(unknown)}")
    rng = np.random.default_rng(seed)
    parts = []
    for number, files in enumerate(progress(cohort.cases) if progress else cohort.cases):
        case = read_case(files, data=cfg)
        attach_brain_mask(case, cfg)
        depth = case.geometry.shape[0]
        full = files.name in full_cases
        if full and case.mask is None:
            raise InputError(files.folder, f"case {files.name} is named as fully annotated but "
                             "has no mask file")
        if labels is not None and files.name in labels:
            case_labels = input_slice_labels(case, labels[files.name])
            labelled = np.ones(depth, bool)
        elif case.mask is not None:
            case_labels, labelled = labels_from_mask(case.mask, cfg.erode), np.ones(depth, bool)
        else:
            case_labels, labelled = np.zeros(depth, np.uint8), np.zeros(depth, bool)
        reviewed = None if full else reviews.get(files.name)
        prep = preprocess_case(case, cfg, channels)
        if full:
            annotated, mask = np.ones(depth, bool), prep.mask
        elif reviewed is not None:
            annotated = input_slice_labels(case, reviewed.annotated).astype(bool)
            from_review = labels_from_mask(case.frame.to_model(reviewed.mask, "mask"), cfg.erode)
            case_labels = np.where(annotated, from_review, case_labels).astype(np.uint8)
            labelled = labelled | annotated
            mask = prep.mapping.from_original(case.frame.to_model(reviewed.mask, "mask")
                                              * annotated[:, None, None], kind="mask")
        else:
            annotated, mask = np.zeros(depth, bool), None
        if not labelled.any():
            raise InputError(files.folder, f"case {files.name} has neither a mask, slice labels "
                             "(labels.csv or ranges) nor accepted/corrected review records")
        parts.append(case_rows(prep, cfg, number, case_labels, labelled, annotated, mask, rng))
    return MixedSlices.concatenate(parts, cohort.names, channels)

"""The training set of axial slices: preprocessed, cropped/padded to ``size``, with slice labels.

Masks, where a cohort has them, only become slice labels (the weak supervision) and evaluation
references (seed overlap); no stage trains on them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..config import DataConfig
from ..events import EventWriter
from .cohort import Cohort
from .errors import InputError
from .brain_mask import attach_brain_mask
from .labels import labels_from_mask
from .preprocess import crop_or_pad, preprocess_case, training_slices
from .reader import CaseVolumes, read_case

#: case name → label per axial slice of the original grid
SliceLabels = Mapping[str, np.ndarray]


@dataclass
class SliceSet:
    images: np.ndarray          # (N, C, S, S) float32 in [0, 1]
    labels: np.ndarray          # (N,) uint8: tumour on the slice
    case_index: np.ndarray      # (N,) int: index into ``cases``
    slice_index: np.ndarray     # (N,) int: axial index on the original grid
    cases: list[str]
    channels: list[str]
    masks: np.ndarray | None = None   # (N, S, S) uint8, evaluation only

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def flair(self) -> np.ndarray:
        return self.images[:, self.channels.index("flair")]

    def subset(self, index: np.ndarray) -> "SliceSet":
        index = np.asarray(index)
        return SliceSet(self.images[index], self.labels[index], self.case_index[index],
                        self.slice_index[index], self.cases, self.channels,
                        None if self.masks is None else self.masks[index])

    def joined(self, other: "SliceSet") -> "SliceSet":
        """This set's slices followed by ``other``'s (subsets of the same slice set)."""
        if other.cases != self.cases or other.channels != self.channels:
            raise ValueError("only subsets of the same slice set can be joined")
        masks = None if self.masks is None or other.masks is None else \
            np.concatenate([self.masks, other.masks])
        return SliceSet(*(np.concatenate([getattr(self, n), getattr(other, n)])
                          for n in ("images", "labels", "case_index", "slice_index")),
                        self.cases, self.channels, masks)

    def for_cases(self, names: list[str]) -> "SliceSet":
        wanted = [self.cases.index(n) for n in names]
        return self.subset(np.flatnonzero(np.isin(self.case_index, wanted)))

    def case_name(self, i: int) -> str:
        return self.cases[int(self.case_index[i])]

    def save(self, path: Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        np.savez_compressed(path, cases=np.array(self.cases), channels=np.array(self.channels),
                            **arrays)

    @classmethod
    def load(cls, path: Path) -> "SliceSet":
        with np.load(path, allow_pickle=False) as data:
            return cls(images=data["images"], labels=data["labels"],
                       case_index=data["case_index"], slice_index=data["slice_index"],
                       cases=[str(c) for c in data["cases"]],
                       channels=[str(c) for c in data["channels"]],
                       masks=data["masks"] if "masks" in data else None)


def load_labels(path: Path, names: list[str]) -> np.ndarray:
    """The slice labels of ``names``' rows of a saved SliceSet, in the order ``for_cases`` gives,
    without decompressing the images (what a run's gate needs at every ``segment``)."""
    with np.load(path, allow_pickle=False) as data:
        cases = [str(c) for c in data["cases"]]
        wanted = [cases.index(n) for n in names]
        return data["labels"][np.isin(data["case_index"], wanted)]


def cohort_fingerprint(cohort: Cohort) -> str:
    """Names and sizes of every file: enough to notice that a run's data changed."""
    digest = hashlib.sha256()
    for case in cohort:
        for path in sorted([*case.images.values(), *([case.mask] if case.mask else [])]):
            size = sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() \
                else path.stat().st_size              # a DICOM series folder: its files
            digest.update(f"{case.name}/{path.name}:{size};".encode())
    return digest.hexdigest()[:16]


def input_slice_labels(case: CaseVolumes, values) -> np.ndarray:
    """Slice labels numbered on the input file's slices, on the model's axial slices; an
    InputError when their count is wrong or the scan was not acquired axially."""
    values = np.asarray(values, np.uint8)
    depth = case.input_geometry.shape[0]
    if values.shape[0] != depth:
        raise InputError(case.files.folder if case.files else None,
                         f"case {case.name}: {values.shape[0]} slice labels for {depth} slices")
    if case.frame is None:
        return values
    try:
        return case.frame.slices_to_model(values)
    except ValueError as error:
        raise InputError(case.files.images["flair"] if case.files else None, str(error)) from None


def build_slice_set(cohort: Cohort, cfg: DataConfig, channels: list[str],
                    labels: SliceLabels | None = None, seed: int = 0,
                    progress: Callable | None = None, device: object = "cpu",
                    events: EventWriter | None = None) -> SliceSet:
    """Read, preprocess and slice every case; labels come from ``labels`` or else from masks.
    Each case's brain mask follows ``cfg.brain_mask`` (extraction runs on ``device``)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("images", "labels", "case", "slice",
                                                          "masks")}
    cases = progress(cohort.cases) if progress else cohort.cases
    have_masks = all(c.mask is not None for c in cohort)
    for number, files in enumerate(cases):
        case = read_case(files, data=cfg)
        attach_brain_mask(case, cfg, device, events)
        if labels is not None and files.name in labels:
            case_labels = input_slice_labels(case, labels[files.name])
        elif case.mask is not None:
            case_labels = labels_from_mask(case.mask, cfg.erode)
        else:
            raise InputError(files.folder, f"case {files.name} has neither a mask nor slice "
                             "labels (labels.csv or slice ranges)")
        prep = preprocess_case(case, cfg, channels)
        keep = training_slices(prep, cfg)
        stacked = prep.image[keep]
        if have_masks:      # crop the mask with the very same offsets as an extra channel
            stacked = np.concatenate([stacked, prep.mask[keep, None].astype(np.float32)], axis=1)
        volume, _, _ = crop_or_pad(stacked, cfg.size, rng)
        parts["images"].append(volume[:, :len(channels)].astype(np.float32))
        original = np.array([prep.mapping.original_slice(i) for i in keep], int)
        parts["labels"].append(case_labels[original])
        parts["case"].append(np.full(len(keep), number))
        parts["slice"].append(original)
        if have_masks:
            parts["masks"].append((volume[:, -1] > 0.5).astype(np.uint8))
    return SliceSet(images=np.concatenate(parts["images"]),
                    labels=np.concatenate(parts["labels"]).astype(np.uint8),
                    case_index=np.concatenate(parts["case"]),
                    slice_index=np.concatenate(parts["slice"]),
                    cases=cohort.names, channels=list(channels),
                    masks=np.concatenate(parts["masks"]) if have_masks else None)


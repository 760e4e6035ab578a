"""Seed 000 §3.1.1 preprocessing with an exact way back to the original voxel grid.

Per case: crop to the brain's bounding box (the case's brain mask where one is attached),
clip the brain (foreground) voxels of each modality to the 1st–99th percentile, scale to
[0, 1] with everything outside the brain at 0, optionally rescale in-plane (fast profile),
split into axial slices. ``GridMapping`` records the crop box and the in-plane scale so a
slice-wise prediction returns to the input grid; training crops/pads record their offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from ..config import DataConfig
from .brain_mask import BRAIN_METHODS, background_value
from .reader import CaseVolumes

#: brain voxels never normalise to exactly 0, so ``image != 0`` stays the brain downstream
_FOREGROUND_MIN = 1e-6


@dataclass(frozen=True)
class GridMapping:
    """Preprocessed (z', y', x') ↔ original (z, y, x): crop box then in-plane resize."""

    original_shape: tuple[int, int, int]
    box: tuple[slice, slice, slice]               # crop box on the original grid
    scaled_inplane: tuple[int, int]                # (y', x') after in-plane scaling

    @property
    def cropped_shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.box)

    @property
    def first_slice(self) -> int:
        return self.box[0].start

    def original_slice(self, index: int) -> int:
        """Axial index on the original grid of preprocessed slice ``index``."""
        return self.box[0].start + index

    @property
    def pixel_area_ratio(self) -> float:
        """Original-grid pixels per preprocessed pixel in a slice (the in-plane resize): what a
        preprocessed-grid voxel count is worth on the original grid."""
        (height, width), (scaled_h, scaled_w) = self.cropped_shape[1:], self.scaled_inplane
        return height * width / (scaled_h * scaled_w)

    def to_original(self, volume: np.ndarray, kind: str = "label", threshold: float = 0.5,
                    fill: float = 0) -> np.ndarray:
        """Put a preprocessed-grid volume back on the original grid.

        ``kind='label'``: nearest neighbour (exact when no rescaling was done);
        ``'probability'``: linear, returned as float; ``'binary'``: linear, then ``> threshold``.
        """
        if volume.shape != (self.cropped_shape[0], *self.scaled_inplane):
            raise ValueError(f"volume of shape {volume.shape} is not on this preprocessed grid "
                             f"{(self.cropped_shape[0], *self.scaled_inplane)}")
        target = self.cropped_shape
        if tuple(volume.shape) == target:
            restored = volume
        elif kind == "label":
            restored = resize(volume, target, order=0, preserve_range=True, anti_aliasing=False)
        else:
            restored = resize(volume.astype(np.float32), target, order=1, preserve_range=True,
                              anti_aliasing=False)
        dtype = {"probability": np.float32, "binary": np.uint8}.get(kind, volume.dtype)
        if kind == "binary":
            restored = restored > threshold
        out = np.full(self.original_shape, fill, dtype=dtype)
        out[self.box] = restored
        return out

    def from_original(self, volume: np.ndarray, kind: str = "image") -> np.ndarray:
        """Original grid → preprocessed grid (crop + in-plane resize), for masks and images."""
        cropped = volume[self.box]
        target = (cropped.shape[0], *self.scaled_inplane)
        if cropped.shape == target:
            return cropped.copy()
        if kind == "mask":
            return (resize(cropped.astype(np.float32), target, order=1, preserve_range=True,
                           anti_aliasing=False) > 0.5).astype(np.uint8)
        return resize(cropped.astype(np.float32), target, order=1, preserve_range=True,
                      anti_aliasing=True).astype(np.float32)


@dataclass
class PreprocessedCase:
    """A case ready for the networks: ``image`` (Z', C, H, W) in [0, 1], ``mask`` (Z', H, W)."""

    name: str
    channels: list[str]
    image: np.ndarray
    mapping: GridMapping
    mask: np.ndarray | None = None

    @property
    def n_slices(self) -> int:
        return self.image.shape[0]

    @property
    def nonzero_fraction(self) -> np.ndarray:
        """Per slice, the fraction of pixels non-zero in any channel."""
        return np.any(self.image != 0, axis=1).mean(axis=(1, 2))


def brain_box(brain: np.ndarray) -> tuple[slice, slice, slice]:
    """Smallest box holding every brain voxel; the whole volume if there is none."""
    if not brain.any():
        return tuple(slice(0, n) for n in brain.shape)
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(brain.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def normalise_intensities(volume: np.ndarray, percentiles: tuple[float, float],
                          foreground: np.ndarray | None = None) -> np.ndarray:
    """Clip the foreground to its percentiles and scale so that the background level is 0 and
    the upper percentile 1; everything outside the foreground is 0.

    ``foreground``: the brain mask; by default every voxel that is not the background value
    (the border's most common value: 0 in BraTS, negative in a z-scored scan). The zero level
    is the lower of the foreground's low percentile and the 1st percentile outside it, so the
    result is the same for a scan stored as 8-bit, integer, float or z-scored (any positive
    affine map of the intensities), and for BraTS (background 0) it is what seed 000 does."""
    out = volume.astype(np.float32, copy=True)
    if foreground is None:
        foreground = out != background_value(out)[0]
    if not foreground.any():
        return np.zeros_like(out)
    low, high = (float(v) for v in np.percentile(out[foreground], percentiles))
    outside = out[~foreground]
    zero = min(low, float(np.percentile(outside, 1))) if outside.size else low
    if high <= zero:
        return np.zeros_like(out)
    scaled = (np.clip(out[foreground], low, high) - zero) / (high - zero)
    out[:] = 0
    out[foreground] = np.maximum(scaled, _FOREGROUND_MIN)
    return out


def preprocess_case(case: CaseVolumes, cfg: DataConfig, channels: list[str] | None = None
                    ) -> PreprocessedCase:
    """Crop, normalise and (for the fast profile) rescale a case; keep the way back."""
    channels = channels or case.channels
    stacked = case.stack(channels)
    brain = case.brain_mask if case.brain_mask is not None else np.any(stacked != 0, axis=0)
    box = brain_box(brain)
    cropped = stacked[(slice(None), *box)]
    # an extracted brain mask is the foreground of every channel (the scalp goes); otherwise
    # each channel's own non-background voxels, as seed 000 does
    foreground = brain[box] if case.brain_source in BRAIN_METHODS else None
    _, depth, height, width = cropped.shape
    scaled = (max(1, round(height * cfg.inplane_scale)), max(1, round(width * cfg.inplane_scale)))
    mapping = GridMapping(tuple(stacked.shape[1:]), box, scaled)
    normalised = [normalise_intensities(c, cfg.clip_percentiles, foreground) for c in cropped]
    if scaled != (height, width):
        normalised = [np.clip(resize(c, (depth, *scaled), order=1, preserve_range=True,
                                     anti_aliasing=True), 0, 1).astype(np.float32)
                      for c in normalised]
    image = np.ascontiguousarray(np.stack(normalised, axis=1), dtype=np.float32)
    mask = None if case.mask is None else mapping.from_original(case.mask, kind="mask")
    return PreprocessedCase(case.name, list(channels), image, mapping, mask)


def training_slices(case: PreprocessedCase, cfg: DataConfig) -> np.ndarray:
    """Preprocessed slice indices used for training: not within ``trim_fraction`` of the
    brain's superior–inferior extent (the crop box) of either end, and at most
    ``max_zero_fraction`` zero pixels."""
    index = np.arange(case.n_slices)
    trim = int(round(cfg.trim_fraction * case.n_slices))
    keep = (index >= trim) & (index < case.n_slices - trim)
    keep &= (1.0 - case.nonzero_fraction) <= cfg.max_zero_fraction
    return np.flatnonzero(keep)


def crop_or_pad(array: np.ndarray, size: int, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Crop or zero-pad the last two axes to ``size``; random offsets when ``rng`` is given,
    centred otherwise. Returns the array, the crop start and the pad start per axis, so a
    prediction can be put back where it came from."""
    out = array
    crop_start, pad_start = [0, 0], [0, 0]
    for i, axis in enumerate((-2, -1)):
        n = out.shape[axis]
        if n > size:
            start = int(rng.integers(0, n - size + 1)) if rng is not None else (n - size) // 2
            out = np.take(out, np.arange(start, start + size), axis=axis)
            crop_start[i] = start
        elif n < size:
            before = int(rng.integers(0, size - n + 1)) if rng is not None else (size - n) // 2
            widths = [(0, 0)] * out.ndim
            widths[axis] = (before, size - n - before)
            out = np.pad(out, widths)
            pad_start[i] = before
    return out, tuple(crop_start), tuple(pad_start)

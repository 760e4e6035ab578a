"""Whole-slice inference by patches (Pipeline row 9): cover each slice with ``patch``-sized
windows at ``stride``, predict every window of a volume in one batched pass, and average the
windows' probabilities where they overlap. Slices smaller than a patch are zero-padded first
(the networks saw zero background around the brain in training too)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def patch_geometry(size: int, stride: int) -> tuple[int, int]:
    """(patch, stride) for a network trained on ``size`` px crops: the patch is the training
    size (the networks accept nothing else) and the stride at most half of it, so every pixel
    is covered and overlaps are averaged whatever the profile's overrides."""
    return size, max(1, min(stride, size // 2))


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Starts of windows covering ``[0, length)``; the last window ends at the border."""
    if stride < 1 or patch < 1:
        raise ValueError(f"patch {patch} and stride {stride} must be positive")
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


@dataclass(frozen=True)
class PatchGrid:
    """Where each patch of a ``(Z, H, W)`` stack came from, after padding to at least a patch."""
    shape: tuple[int, int, int]          # the stack before padding
    padded: tuple[int, int]              # (H', W') after padding
    patch: int
    origins: np.ndarray                  # (M, 3) int: z, y, x of each patch on the padded grid

    @classmethod
    def cover(cls, shape: tuple[int, int, int], patch: int, stride: int,
              slices: np.ndarray | None = None) -> "PatchGrid":
        """Patches over every slice (or only ``slices``, indices into z)."""
        depth, height, width = shape
        padded = (max(height, patch), max(width, patch))
        ys, xs = window_starts(padded[0], patch, stride), window_starts(padded[1], patch, stride)
        zs = np.arange(depth) if slices is None else np.asarray(slices, int)
        origins = np.array([(z, y, x) for z in zs for y in ys for x in xs], int).reshape(-1, 3)
        return cls(tuple(shape), padded, patch, origins)

    def __len__(self) -> int:
        return len(self.origins)

    def extract(self, stack: np.ndarray) -> np.ndarray:
        """``(Z, C, H, W)`` → ``(M, C, P, P)`` patches (float32)."""
        if stack.shape[0] != self.shape[0] or stack.shape[-2:] != self.shape[1:]:
            raise ValueError(f"stack of shape {stack.shape} does not match the grid {self.shape}")
        pad = [(0, 0)] * (stack.ndim - 2) + [(0, self.padded[0] - self.shape[1]),
                                            (0, self.padded[1] - self.shape[2])]
        padded = np.pad(stack, pad)
        p = self.patch
        return np.stack([padded[z, ..., y:y + p, x:x + p] for z, y, x in self.origins]
                        ).astype(np.float32, copy=False)

    def assemble(self, maps: np.ndarray) -> np.ndarray:
        """``(M, P, P)`` patch maps → ``(Z, H, W)``: the mean of the patches covering each
        pixel; pixels no patch covers (slices left out) stay 0."""
        if maps.shape != (len(self), self.patch, self.patch):
            raise ValueError(f"{maps.shape} maps for a grid of {len(self)} patches of "
                             f"{self.patch} px")
        total = np.zeros((self.shape[0], *self.padded), np.float64)
        count = np.zeros_like(total)
        p = self.patch
        for (z, y, x), values in zip(self.origins, maps):
            total[z, y:y + p, x:x + p] += values
            count[z, y:y + p, x:x + p] += 1
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        return mean[:, :self.shape[1], :self.shape[2]].astype(np.float32)

    def per_slice_max(self, values: np.ndarray) -> np.ndarray:
        """Largest per-patch value of each slice (the slice's classifier score); 0 if none."""
        out = np.zeros(self.shape[0], np.float32)
        np.maximum.at(out, self.origins[:, 0], np.asarray(values, np.float32))
        return out

"""Whole-volume prediction with a mixed-supervision model (DESIGN Pipeline row 9's tiling).

Every slice of the preprocessed volume is covered by ``patch``-sized tiles at ``stride``
(zero-padded where the slice is smaller); tumour probabilities are averaged where tiles overlap,
set to 0 outside the brain (no non-zero channel), thresholded and put back on the original grid
exactly (``GridMapping.to_original``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import RuntimeConfig
from ..data.preprocess import PreprocessedCase
from ..models.mixed_unet import tumour_probability
from ..stages.common import batches
from ..stages.runtime import autocast, to_device


def tile_starts(length: int, patch: int, stride: int) -> list[int]:
    """Tile offsets covering ``length`` (≥ patch after padding), the last one flush with the end."""
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


@torch.no_grad()
def predict_probabilities(model: nn.Module, image: np.ndarray, patch: int, stride: int,
                          device: torch.device, runtime: RuntimeConfig = RuntimeConfig(),
                          batch_size: int = 64) -> np.ndarray:
    """(Z, C, H, W) slices → (Z, H, W) tumour probabilities."""
    depth, _, height, width = image.shape
    pad_h, pad_w = max(0, patch - height), max(0, patch - width)
    padded = np.pad(image, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
    ys = tile_starts(padded.shape[2], patch, stride)
    xs = tile_starts(padded.shape[3], patch, stride)
    spots = [(z, y, x) for z in range(depth) for y in ys for x in xs]
    total = np.zeros((depth, *padded.shape[2:]), np.float32)
    count = np.zeros_like(total)
    was_training = model.training
    model.eval()
    try:
        for chunk in batches(np.arange(len(spots)), batch_size):
            tiles = np.stack([padded[z, :, y:y + patch, x:x + patch]
                              for z, y, x in (spots[i] for i in chunk)])
            with autocast(runtime, device):
                logits = model(to_device(tiles, device, runtime))
            probs = tumour_probability(logits).cpu().numpy()
            for i, prob in zip(chunk, probs):
                z, y, x = spots[i]
                total[z, y:y + patch, x:x + patch] += prob
                count[z, y:y + patch, x:x + patch] += 1
    finally:
        model.train(was_training)
    out = total / np.maximum(count, 1)
    return out[:, :height, :width]


def predict_case(model: nn.Module, prep: PreprocessedCase, patch: int, stride: int,
                 threshold: float, device: torch.device,
                 runtime: RuntimeConfig = RuntimeConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities on the preprocessed grid, 0/1 label map on the original grid)."""
    prob = predict_probabilities(model, prep.image, patch, stride, device, runtime)
    prob *= np.any(prep.image != 0, axis=1)
    return prob, prep.mapping.to_original(prob, kind="binary", threshold=threshold)

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
from ..inference.patches import PatchGrid
from ..data.preprocess import PreprocessedCase
from ..models.mixed_unet import tumour_probability
from ..runtime import autocast, batches, to_device


@torch.no_grad()
def predict_probabilities(model: nn.Module, image: np.ndarray, patch: int, stride: int,
                          device: torch.device, runtime: RuntimeConfig = RuntimeConfig(),
                          batch_size: int = 64) -> np.ndarray:
    """(Z, C, H, W) slices → (Z, H, W) tumour probabilities, tiled as the weak pipeline tiles."""
    grid = PatchGrid.cover((image.shape[0], *image.shape[-2:]), patch, stride)
    tiles = grid.extract(image)
    was_training = model.training
    model.eval()
    probs = []
    try:
        for chunk in batches(np.arange(len(tiles)), batch_size):
            with autocast(runtime, device):
                logits = model(to_device(tiles[chunk], device, runtime))
            probs.append(tumour_probability(logits).float().cpu().numpy())
    finally:
        model.train(was_training)
    maps = np.concatenate(probs) if probs else np.zeros((0, patch, patch), np.float32)
    return grid.assemble(maps.reshape(len(tiles), patch, patch))


def predict_case(model: nn.Module, prep: PreprocessedCase, patch: int, stride: int,
                 threshold: float, device: torch.device,
                 runtime: RuntimeConfig = RuntimeConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities on the preprocessed grid, 0/1 label map on the original grid)."""
    prob = predict_probabilities(model, prep.image, patch, stride, device, runtime)
    prob *= np.any(prep.image != 0, axis=1)
    return prob, prep.mapping.to_original(prob, kind="binary", threshold=threshold)

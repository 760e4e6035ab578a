"""Grad-CAM++ (Chattopadhay et al. 2018): the alternative seed source of Pipeline row 2.

One backward pass per batch of slices on the last conv feature map A of the classifier (images
in eval mode are independent, so a batched backward gives each slice its own gradient):
α = g² / (2g² + Σ_ab A·g³), w_k = Σ_ab α·ReLU(g), map = ReLU(Σ_k w_k A_k), bilinearly upsampled
to the input size and min-max scaled per image. g = ∂logit/∂A.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import eval_mode, logits_of, minmax_per_image, model_device


def default_target_layer(model: nn.Module) -> nn.Module:
    """``model.cam_layer`` if the model names one, else its last ``Conv2d``."""
    layer = getattr(model, "cam_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM++ needs a conv layer; pass target_layer")
    return convs[-1]


def gradcampp_saliency(model: nn.Module, images: torch.Tensor, *,
                       target_layer: nn.Module | None = None, batch: int = 32) -> torch.Tensor:
    """Grad-CAM++ maps ``[B, H, W]`` in [0, 1] for a one-logit model (on the model's device)."""
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    layer = target_layer if target_layer is not None else default_target_layer(model)
    device = model_device(model, images.device)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    maps = []
    try:
        with eval_mode(model), torch.enable_grad():
            for start in range(0, images.shape[0], max(1, batch)):
                captured.clear()
                # requires_grad on the input keeps a graph even if the weights are frozen
                x = images[start:start + batch].to(device=device, dtype=torch.float32)
                x.requires_grad_(True)
                logits = logits_of(model, x)
                acts = captured[-1]
                grads, = torch.autograd.grad(logits.sum(), acts)
                maps.append(_cam(acts.detach().float(), grads.float(), x.shape[-2:]))
    finally:
        handle.remove()
    return minmax_per_image(torch.cat(maps))


def _cam(acts: torch.Tensor, grads: torch.Tensor, size: torch.Size) -> torch.Tensor:
    g2 = grads.pow(2)
    g3 = g2 * grads
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(grads != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(grads))
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]

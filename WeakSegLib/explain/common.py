"""Helpers shared by the explainers: eval mode, device, one logit per image, min-max, BN folding."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Explain in eval mode (BN statistics fixed, no dropout) so a score never depends on which
    other images share the batch; restores the caller's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    """Where the model's parameters live (``fallback`` for a parameter-free model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def minmax_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``[H, W]`` map of a ``[B, H, W]`` batch to [0, 1]; a constant map becomes 0."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    out = torch.where(span > 0, (flat - lo) / safe, torch.zeros_like(flat))
    return out.reshape(maps.shape)


def logits_of(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The model's single logit per input as ``[n]``; refuses multi-output models."""
    out = model(batch)
    n = batch.shape[0]
    if out.numel() != n:
        raise ValueError(f"explainers need one logit per image; model returned shape "
                         f"{tuple(out.shape)} for {n} images")
    return out.reshape(n).float()


def fold_batchnorm(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` with every Conv2d → BatchNorm2d pair inside an
    ``nn.Sequential`` folded into one conv: same outputs up to rounding, ~15 % less CPU time for
    RISE's thousands of forwards (BN is a memory-bound pass of its own); ``channels_last`` saves
    about a third more on CPU (oneDNN) and suits CUDA too. The original is untouched; a model
    without BatchNorm2d is returned as it is (no copy, no format change).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module              # ranks explain with their local replica
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model
    try:
        folded = copy.deepcopy(model).eval()
    except Exception:                     # an uncopyable model is explained as it is
        return model
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and \
                    bn.track_running_stats and bn.running_mean is not None:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return folded.to(memory_format=torch.channels_last) if channels_last else folded

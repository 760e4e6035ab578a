"""Seed 001 §3.1 losses: a·L_seg + (1 − a)·L_cls.

L_seg is a pixel-wise cross-entropy on the annotated images of the batch (masked tumour slices and
healthy slices) whose pixel weights adapt to the batch: all healthy-class pixels together weigh
t0 and all tumour-class pixels together t1, so a tumour pixel weighs t1 / N1 and a healthy one
t0 / N0 (N1, N0: the batch's pixel counts of each class). The weights thus sum to t0 + t1 = 1 and
L_seg is a weighted mean, "normalised" like L_cls, which is what makes the convex combination
meaningful (seed 001 writes a further 1/P, a constant that only rescales). A class absent from
the batch contributes nothing. L_cls is the plain cross-entropy of the image-level logits over
every image of the batch, unweighted (the sampler balances the labels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.mixed_unet import MixedOutput


def class_weights(targets: torch.Tensor, healthy_weight: float = 0.7,
                  tumour_weight: float = 0.3) -> torch.Tensor:
    """Per-pixel weights for 0/1 ``targets`` of any shape: t1 / N1 on tumour, t0 / N0 elsewhere."""
    tumour = targets.bool()
    n_tumour = int(tumour.sum())
    n_healthy = tumour.numel() - n_tumour
    w_tumour = tumour_weight / n_tumour if n_tumour else 0.0
    w_healthy = healthy_weight / n_healthy if n_healthy else 0.0
    return torch.where(tumour, torch.full_like(targets, w_tumour, dtype=torch.float32),
                       torch.full_like(targets, w_healthy, dtype=torch.float32))


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor, annotated: torch.Tensor,
                      healthy_weight: float = 0.7, tumour_weight: float = 0.3) -> torch.Tensor:
    """Weighted pixel cross-entropy over the ``annotated`` images only.

    ``logits`` [B, 2, H, W], ``targets`` [B, H, W] in {0, 1}, ``annotated`` [B] bool."""
    if not bool(annotated.any()):
        return logits.sum() * 0.0
    chosen = logits[annotated].float()
    truth = targets[annotated].long()
    ce = F.cross_entropy(chosen, truth, reduction="none")
    return (class_weights(truth, healthy_weight, tumour_weight) * ce).sum()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of image-level logits [B, 2] against 0/1 labels [B]."""
    return F.cross_entropy(logits.float(), labels.long())


def mixed_loss(output: MixedOutput, targets: torch.Tensor, annotated: torch.Tensor,
               labels: torch.Tensor, seg_weight: float = 0.7, healthy_weight: float = 0.7,
               tumour_weight: float = 0.3) -> tuple[torch.Tensor, dict[str, float]]:
    """a·L_seg + (1 − a)·L_cls and its parts (as floats, for the history)."""
    seg = segmentation_loss(output.segmentation, targets, annotated, healthy_weight,
                            tumour_weight)
    cls = classification_loss(output.classification, labels)
    total = seg_weight * seg + (1.0 - seg_weight) * cls
    return total, {"loss": float(total.detach()), "seg_loss": float(seg.detach()),
                   "cls_loss": float(cls.detach())}

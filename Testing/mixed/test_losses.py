"""Seed 001's loss: batch-adaptive class weights (t0 = 0.7, t1 = 0.3) and a·L_seg + (1 − a)·L_cls."""
from __future__ import annotations

import math

import pytest
import torch

from WeakSegLib.mixed.losses import class_weights, mixed_loss, segmentation_loss
from WeakSegLib.models.mixed_unet import MixedOutput


def hand_made_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three 2×2 images: two annotated (3 tumour, 5 healthy pixels) and an unmasked tumour
    slice whose all-tumour 'target' must be ignored."""
    targets = torch.tensor([[[1, 0], [0, 0]],
                            [[1, 1], [0, 0]],
                            [[1, 1], [1, 1]]])
    return targets, torch.tensor([True, True, False])


def test_class_weights_follow_the_batch_composition() -> None:
    targets, annotated = hand_made_batch()
    weights = class_weights(targets[annotated], 0.7, 0.3)
    tumour = targets[annotated].bool()
    assert torch.allclose(weights[tumour], torch.full((3,), 0.3 / 3))     # t1 / N1
    assert torch.allclose(weights[~tumour], torch.full((5,), 0.7 / 5))    # t0 / N0
    assert float(weights.sum()) == pytest.approx(1.0)                     # t0 + t1


def test_class_weights_without_tumour_pixels() -> None:
    weights = class_weights(torch.zeros(2, 2, 2, dtype=torch.long), 0.7, 0.3)
    assert torch.allclose(weights, torch.full((2, 2, 2), 0.7 / 8))


def test_segmentation_loss_by_hand() -> None:
    targets, annotated = hand_made_batch()
    logits = torch.zeros(3, 2, 2, 2)
    logits[:, 1] = math.log(3.0)          # softmax tumour probability 0.75 on every pixel
    loss = segmentation_loss(logits, targets, annotated, 0.7, 0.3)
    expected = 3 * (0.3 / 3) * -math.log(0.75) + 5 * (0.7 / 5) * -math.log(0.25)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # the unannotated image does not count: changing its logits changes nothing
    logits[2] = 50.0 * torch.randn(2, 2, 2)
    assert float(segmentation_loss(logits, targets, annotated)) == pytest.approx(expected,
                                                                                 rel=1e-6)


def test_mixed_loss_is_the_convex_combination() -> None:
    targets, annotated = hand_made_batch()
    seg = torch.zeros(3, 2, 2, 2, requires_grad=True)     # p = 0.5 everywhere: L_seg = ln 2
    cls = torch.zeros(3, 2, requires_grad=True)           # L_cls = ln 2 as well
    cls_logits = cls + torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, math.log(3.0)]])
    total, parts = mixed_loss(MixedOutput(seg, cls_logits), targets, annotated,
                              torch.tensor([1, 1, 1]), seg_weight=0.7)
    l_cls = (2 * math.log(2.0) - math.log(0.75)) / 3
    assert parts["seg_loss"] == pytest.approx(math.log(2.0), rel=1e-6)
    assert parts["cls_loss"] == pytest.approx(l_cls, rel=1e-6)
    assert float(total.detach()) == pytest.approx(0.7 * math.log(2.0) + 0.3 * l_cls, rel=1e-6)
    total.backward()
    assert seg.grad[2].abs().sum() == 0          # no segmentation gradient from image 3
    assert cls.grad[2].abs().sum() > 0           # but it trains the classification branch


def test_segmentation_loss_without_annotated_images_is_zero() -> None:
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, torch.ones(2, 4, 4), torch.tensor([False, False]))
    assert float(loss.detach()) == 0.0
    loss.backward()

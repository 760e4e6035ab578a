"""The U-Net with seed 001's classification branch: shapes, widths, skip FC1‖FC5, weights I/O."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from WeakSegLib.models.mixed_unet import (SEED_001_FC_WIDTHS, ClassificationBranch, MixedUNet,
                                          scaled_widths)
from WeakSegLib.models.unet import UNet
from WeakSegLib.models.weights import load_model, save_model


def test_fast_profile_model_shapes_and_widths() -> None:
    model = MixedUNet(size=64, in_channels=2, width_divisor=4).eval()
    out = model.forward_full(torch.rand(3, 2, 64, 64))
    assert out.segmentation.shape == (3, 2, 64, 64) and out.classification.shape == (3, 2)
    branch = model.branch
    assert branch.conv[0].in_channels == 16 and branch.conv[0].out_channels == 8   # 64/4, 32/4
    assert [fc.out_features for fc in branch.fc] == [75, 62, 50, 37, 25, 12, 2]
    assert branch.fc[0].in_features == 8 * 4 * 4        # 32×32 features, mean-pool 8 → 4×4
    assert branch.fc[5].in_features == 75 + 25          # FC1 ‖ FC5 → FC6
    assert torch.equal(model(torch.ones(1, 2, 64, 64)),
                       model.forward_full(torch.ones(1, 2, 64, 64)).segmentation)


def test_paper_widths() -> None:
    assert scaled_widths(SEED_001_FC_WIDTHS, 1) == [300, 250, 200, 150, 100, 50, 2]
    branch = ClassificationBranch(64, feature_size=64, pool=8, maps=32)   # 128 px input
    assert branch.conv[0].out_channels == 32 and branch.fc[0].in_features == 32 * 8 * 8
    assert [fc.out_features for fc in branch.fc] == list(SEED_001_FC_WIDTHS)
    with pytest.raises(ValueError, match="7 fully connected"):
        scaled_widths((300, 2), 1)


def test_fc5_feeds_fc6_through_the_concatenation() -> None:
    branch = ClassificationBranch(4, feature_size=8, pool=8, maps=2, widths=(6, 5, 4, 3, 2, 3, 2))
    seen = {}
    branch.fc[5].register_forward_hook(lambda m, inputs, out: seen.update(x=inputs[0]))
    branch(torch.rand(2, 4, 8, 8))
    assert seen["x"].shape == (2, 6 + 2)


def test_branch_output_depends_on_the_input_at_initialisation() -> None:
    torch.manual_seed(0)
    branch = ClassificationBranch(16, feature_size=32, pool=8, maps=8,
                                  widths=scaled_widths(SEED_001_FC_WIDTHS, 4))
    logits = branch(torch.rand(16, 16, 32, 32))
    assert logits.std(dim=0).min() > 0.04 * logits.abs().mean()     # PyTorch default: ~0.013


def test_segmentation_path_is_the_unet(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MixedUNet(size=16, in_channels=2, width_divisor=16).eval()
    x = torch.rand(2, 2, 16, 16)
    assert torch.allclose(model(x), model.unet(x))       # same ops as UNet.decode


def test_weights_round_trip_and_foreign_file(tmp_path: Path) -> None:
    model = MixedUNet(size=16, in_channels=2, width_divisor=16).eval()
    path = save_model(tmp_path / "model.pt", model, {"channels": ["flair", "t1"]})
    loaded, meta = load_model(path, MixedUNet.architecture)
    loaded.eval()
    x = torch.rand(2, 2, 16, 16)
    assert torch.equal(loaded(x), model(x)) and meta["arch_kwargs"]["width_divisor"] == 16
    other = save_model(tmp_path / "unet.pt", UNet(16, 1, width_divisor=16))
    with pytest.raises(ValueError, match="architecture is 'weakseg_unet', expected 'mixed_unet'"):
        load_model(other, MixedUNet.architecture)

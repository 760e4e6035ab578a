"""RISE, Grad-CAM++ and the seed rules on toy models with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from WeakSegLib.config import SeedConfig, get_profile
from WeakSegLib.explain.common import fold_batchnorm
from WeakSegLib.explain.gradcampp import gradcampp_saliency
from WeakSegLib.explain.registry import available_explainers, get_explainer
from WeakSegLib.explain.rise import (clear_mask_cache, generate_masks, mask_shard,
                                     rise_partial_sums, rise_saliency)
from WeakSegLib.explain.seeds import compute_seeds, seeds_from_saliency
from WeakSegLib.models.classifier import VGG16BNClassifier

SQUARE = (slice(20, 36), slice(20, 36))
RISE_ARGS = dict(n_masks=120, grid=8, p=0.5, seed=3)


class SquareModel(nn.Module):
    """Logit = 20 · mean(x[..., 20:36, 20:36]) − 5: only the square matters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20 * x[..., SQUARE[0], SQUARE[1]].mean(dim=(1, 2, 3))[:, None] - 5


class TinyConv(nn.Module):
    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RefusesHealthy(nn.Module):
    """Healthy test slices are filled with −1: any negative input means one was passed in."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.conv = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x < 0).any():
            raise AssertionError("the model was called with a healthy slice")
        self.calls += 1
        return self.conv(x).mean(dim=(1, 2, 3))[:, None]


# ---------------------------------------------------------------- RISE

def test_masks_are_deterministic_and_cover_p() -> None:
    clear_mask_cache()
    a = generate_masks((64, 48), 300, 8, 0.5, seed=7)
    clear_mask_cache()
    b = generate_masks((64, 48), 300, 8, 0.5, seed=7)
    assert a.shape == (300, 64, 48) and torch.equal(a, b)
    assert generate_masks((64, 48), 300, 8, 0.5, seed=7) is b          # cached
    assert not torch.equal(a, generate_masks((64, 48), 300, 8, 0.5, seed=8))
    assert a.min() >= 0 and a.max() <= 1 and abs(a.mean().item() - 0.5) < 0.05


def test_rise_finds_the_square() -> None:
    # 4000 masks (the paper's count): with a few hundred, RISE's sampling noise rivals the signal
    images = torch.ones(2, 2, 64, 64)
    sal = rise_saliency(SquareModel(), images, n_masks=4000, grid=8, p=0.5, seed=2, batch=1000)
    assert sal.shape == (2, 64, 64)
    assert sal.min() >= 0 and sal.max() <= 1
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[SQUARE] = True
    far = torch.ones(64, 64, dtype=torch.bool)
    far[8:48, 8:48] = False                          # one grid cell or more from the square
    for s in sal:
        assert s[inside].mean() > 3 * s[~inside].mean()
        assert s[far].max() < s[inside].mean()
        r, c = divmod(int(s.argmax()), 64)
        assert 20 <= r < 36 and 20 <= c < 36


def test_rise_chunked_equals_unchunked() -> None:
    images = torch.rand(3, 2, 32, 32)
    model = TinyConv()
    small = rise_saliency(model, images, batch=7, **RISE_ARGS)
    whole = rise_saliency(model, images, batch=10_000, **RISE_ARGS)
    assert torch.allclose(small, whole, atol=1e-5)


def test_rise_shards_add_up_and_ranks_agree() -> None:
    images = torch.rand(2, 2, 32, 32)
    model = TinyConv()
    n = RISE_ARGS["n_masks"]
    shards = [mask_shard(n, r, 2) for r in range(2)]
    assert torch.equal(torch.cat(shards), torch.arange(n))
    full = rise_partial_sums(model, images, None, batch=64, **RISE_ARGS)
    parts = [rise_partial_sums(model, images, s, batch=64, **RISE_ARGS) for s in shards]
    assert torch.allclose(parts[0] + parts[1], full, atol=1e-4)

    single = rise_saliency(model, images, batch=64, **RISE_ARGS)
    for rank in range(2):
        other = parts[1 - rank]
        two = rise_saliency(model, images, batch=64, rank=rank, world_size=2,
                            all_reduce=lambda t, o=other: t.add_(o), **RISE_ARGS)
        assert torch.allclose(two, single, atol=1e-5)


def test_rise_restores_training_mode_and_rejects_multi_logit() -> None:
    model = TinyConv().train()
    rise_saliency(model, torch.rand(1, 2, 32, 32), n_masks=20, batch=8)
    assert model.training
    with pytest.raises(ValueError, match="one logit"):
        rise_saliency(nn.Conv2d(2, 3, 3), torch.rand(1, 2, 32, 32), n_masks=4)


def test_rise_batchnorm_folding_keeps_results() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1)).train()
    with torch.no_grad():
        for _ in range(3):                              # running stats away from 0 / 1
            model(torch.rand(8, 2, 32, 32) * 3)
    model.eval()
    images = torch.rand(2, 2, 32, 32)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())   # original untouched
    with torch.no_grad():
        assert torch.allclose(folded(images), model(images), atol=1e-4)
    a = rise_partial_sums(model, images, n_masks=24, seed=1, fold_bn=True)
    b = rise_partial_sums(model, images, n_masks=24, seed=1, fold_bn=False)
    assert torch.allclose(a, b, atol=1e-4)


# ---------------------------------------------------------------- Grad-CAM++

def test_gradcampp_on_tiny_conv() -> None:
    torch.manual_seed(0)
    sal = gradcampp_saliency(TinyConv(), torch.rand(3, 2, 40, 40), batch=2)
    assert sal.shape == (3, 40, 40)
    assert sal.min() >= 0 and sal.max() <= 1


def test_gradcampp_on_frozen_classifier_uses_cam_layer() -> None:
    torch.manual_seed(0)
    model = VGG16BNClassifier(in_channels=2, width_divisor=16).train()
    for param in model.parameters():
        param.requires_grad_(False)
    with torch.no_grad():                          # must still work inside the caller's no_grad
        sal = gradcampp_saliency(model, torch.rand(2, 2, 64, 64))
    assert sal.shape == (2, 64, 64) and sal.min() >= 0 and sal.max() <= 1
    assert model.training


# ---------------------------------------------------------------- seeds

def test_seed_thresholds_and_healthy_slices() -> None:
    sal = np.array([[[0.1, 0.5, 0.9, 0.8, 0.2]]] * 2, dtype=np.float32)
    pos, neg = seeds_from_saliency(sal, [1, 0], pos=0.8, neg=0.2)
    assert pos.dtype == bool and neg.dtype == bool
    assert pos[0, 0].tolist() == [False, False, True, False, False]
    assert neg[0, 0].tolist() == [True, False, False, False, False]
    assert not pos[1].any() and neg[1].all()


@pytest.mark.parametrize("source", ["rise", "gradcampp"])
def test_compute_seeds_never_explains_healthy_slices(source: str) -> None:
    images = torch.rand(4, 2, 32, 32)
    labels = np.array([0, 1, 0, 1])
    images[labels == 0] = -1.0
    model = RefusesHealthy()
    cfg = SeedConfig(rise_masks=30, rise_batch=16)
    pos, neg, sal = compute_seeds(model, images, labels, cfg, source=source,
                                  return_saliency=True)
    assert model.calls > 0
    assert pos.shape == neg.shape == sal.shape == (4, 32, 32)
    assert not pos[labels == 0].any() and neg[labels == 0].all()
    assert (sal[labels == 0] == 0).all()
    assert np.array_equal(pos[1], sal[1] > 0.8) and np.array_equal(neg[3], sal[3] < 0.2)


def test_compute_seeds_all_healthy_needs_no_model() -> None:
    class Explodes(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("called")

    pos, neg = compute_seeds(Explodes(), np.zeros((3, 1, 16, 16), np.float32), [0, 0, 0],
                             get_profile("fast"))
    assert not pos.any() and neg.all()


def test_explainer_registry() -> None:
    assert {"rise", "gradcampp"} <= set(available_explainers())
    with pytest.raises(ValueError, match="unknown seed source"):
        get_explainer("lime")
    cfg = SeedConfig(rise_masks=40, rise_grid=4, rise_p=0.5, rise_batch=16, rise_seed=5)
    images = torch.rand(1, 2, 32, 32)
    model = TinyConv()
    direct = rise_saliency(model, images, n_masks=40, grid=4, p=0.5, seed=5, batch=16,
                           bf16=cfg.rise_bf16)
    assert torch.allclose(get_explainer("rise", cfg)(model, images), direct)


def test_intensity_prior_seeds_need_saliency_and_hyperintensity() -> None:
    from WeakSegLib.explain.seeds import brain_normalised, intensity_prior_seeds

    flair = np.full((2, 20, 20), 0.4, np.float32)
    flair[:, :2] = 0.0                                   # background rows
    flair[0, 5:9, 5:9] = 1.0                              # bright and salient: tumour
    flair[0, 12:16, 12:16] = 1.0                          # bright but not salient
    saliency = np.full((2, 20, 20), 0.45, np.float32)
    saliency[0, 4:10, 4:10] = 0.6
    saliency[0, 10:, :] = 0.40
    positive, negative = intensity_prior_seeds(saliency, flair, [1, 0], 0.5, 1.5, 0.0)
    assert positive[0, 5:9, 5:9].all() and positive[0].sum() == 16
    assert not positive[0, 12:16, 12:16].any()
    assert not (positive & negative).any()
    assert negative[0, 2, 0] and not negative[0, 12, 12]      # dark brain yes, bright no
    assert negative[1].all() and not positive[1].any()        # healthy slice
    norm = brain_normalised(saliency, flair > 0)
    assert norm[0][flair[0] == 0].max() == 0 and norm[0].max() == pytest.approx(1.0)


def test_coverage_normalised_rise_finds_the_square_with_few_masks() -> None:
    """With 250 masks the paper's ÷ N·p map is mostly the masks' coverage pattern; dividing
    each pixel by its actual coverage removes that pattern and leaves the square."""
    images = torch.ones(1, 2, 64, 64)
    args = dict(n_masks=250, grid=8, p=0.5, seed=2, batch=250, fold_bn=False)
    coverage = generate_masks((64, 64), 250, 8, 0.5, 2).sum(dim=0).reshape(-1)
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[SQUARE] = True
    scores = {}
    for normalise in ("expected", "coverage"):
        sal = rise_saliency(SquareModel(), images, normalise=normalise, **args)[0]
        scores[normalise] = (float(sal[inside].mean() - sal[~inside].mean()),
                             float(torch.corrcoef(torch.stack([sal.reshape(-1), coverage]))[0, 1]))
    assert scores["coverage"][0] > scores["expected"][0]          # more contrast on the square
    assert abs(scores["coverage"][1]) < abs(scores["expected"][1])  # less of the mask pattern
    with pytest.raises(ValueError, match="normalise"):
        rise_saliency(SquareModel(), images, normalise="other", **args)


def test_rise_bf16_on_a_bf16_cpu_keeps_the_maps_and_the_seeds() -> None:
    """issue 17: RISE's forwards in bfloat16 where the CPU has it (half the time); the maps
    of a VGG-BN classifier stay within a few hundredths and the 0.8 / 0.2 seeds nearly the
    same. On other devices or CPUs the flag is ignored (bit-identical maps)."""
    from WeakSegLib.explain.rise import cpu_bf16

    assert not cpu_bf16(torch.device("meta"))
    torch.manual_seed(0)
    model = VGG16BNClassifier(in_channels=2, width_divisor=8, upsample=1).eval()
    images = torch.rand(2, 2, 64, 64)
    exact = rise_saliency(model, images, batch=64, **RISE_ARGS)
    low = rise_saliency(model, images, batch=64, bf16=True, **RISE_ARGS)
    if not cpu_bf16(torch.device("cpu")):
        assert torch.equal(low, exact)
        pytest.skip("this CPU has no native bfloat16: only the fallback was checked")
    assert not torch.equal(low, exact)                   # bf16 did run
    assert (low - exact).abs().max() < 0.06
    for threshold in (0.8, 0.2):
        assert ((low > threshold) == (exact > threshold)).float().mean() > 0.97

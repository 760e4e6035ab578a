"""Patch inference, the combination rule and the difference score on hand-made arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from WeakSegLib.inference.combine import combine, difference_scores, flagged, gate
from WeakSegLib.inference.patches import PatchGrid, window_starts


def test_windows_cover_the_axis_and_end_at_the_border() -> None:
    assert window_starts(64, 64, 32) == [0]
    assert window_starts(50, 64, 32) == [0]
    assert window_starts(100, 64, 32) == [0, 32, 36]
    assert window_starts(128, 64, 32) == [0, 32, 64]
    with pytest.raises(ValueError):
        window_starts(10, 4, 0)


def test_patches_reproduce_a_whole_slice_prediction_of_a_translation_invariant_model() -> None:
    """A pointwise model (1×1 convolutions) gives the same value at a pixel whichever patch it
    sits in, so patch-and-average must equal the whole-slice prediction exactly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 1, 1), torch.nn.Sigmoid()).eval()
    stack = np.random.default_rng(1).random((3, 2, 70, 90)).astype(np.float32)
    with torch.no_grad():
        whole = model(torch.from_numpy(stack))[:, 0].numpy()
        grid = PatchGrid.cover((3, 70, 90), patch=32, stride=16)
        patches = model(torch.from_numpy(grid.extract(stack)))[:, 0].numpy()
    assert len(grid) == 3 * len(window_starts(70, 32, 16)) * len(window_starts(90, 32, 16))
    np.testing.assert_allclose(grid.assemble(patches), whole, atol=1e-6)


def test_slices_smaller_than_a_patch_are_padded_and_cropped_back() -> None:
    stack = np.arange(2 * 1 * 10 * 12, dtype=np.float32).reshape(2, 1, 10, 12)
    grid = PatchGrid.cover((2, 10, 12), patch=16, stride=8)
    patches = grid.extract(stack)
    assert patches.shape == (2, 1, 16, 16)
    np.testing.assert_array_equal(grid.assemble(patches[:, 0]), stack[:, 0])


def test_left_out_slices_stay_empty_and_slice_score_is_the_patch_maximum() -> None:
    grid = PatchGrid.cover((3, 8, 16), patch=8, stride=8, slices=[1])
    assert len(grid) == 2
    out = grid.assemble(np.ones((2, 8, 8), np.float32))
    assert out[1].min() == 1 and out[0].max() == 0 and out[2].max() == 0
    np.testing.assert_allclose(grid.per_slice_max(np.array([0.2, 0.9])), [0, 0.9, 0], rtol=1e-6)


def test_combination_rule() -> None:
    under = np.array([[[0.2, 0.8]], [[0.0, 1.0]]], np.float32)
    over = np.array([[[1.0, 1.0]], [[0.6, 0.4]]], np.float32)
    out = combine(under, over, np.array([0.25, 1.0]))
    np.testing.assert_allclose(out[0], 0.25 * over[0] + 0.75 * under[0])
    np.testing.assert_allclose(out[1], over[1])                     # w = 1: the over-segmenter
    np.testing.assert_allclose(combine(under, over, np.zeros(2)), under)   # w = 0: the under one


def test_gate_empties_patches_the_classifier_calls_healthy() -> None:
    maps = np.ones((3, 2, 2), np.float32)
    out = gate(maps, np.array([0.49, 0.5, 0.9]), 0.5)
    assert out[0].max() == 0 and out[1].min() == 1 and out[2].min() == 1


def test_difference_score_is_the_mean_inside_the_segmentation_and_nan_when_empty() -> None:
    flair = np.zeros((2, 2, 2), np.float32)
    flair[0] = [[1.0, 0.5], [0.0, 0.0]]
    variant = np.zeros_like(flair)
    seg = np.zeros((2, 2, 2), bool)
    seg[0, 0, :] = True
    scores = difference_scores(flair, variant, seg)
    assert scores[0] == pytest.approx(0.75) and np.isnan(scores[1])
    np.testing.assert_array_equal(flagged(np.array([0.1, 0.3, np.nan]), 0.2), [True, False, False])


def test_test_time_flips_average_a_network_over_the_four_flips() -> None:
    """A network that paints a left-right ramp is symmetric after the flips; one that only
    reads each pixel (flip-equivariant) is unchanged."""
    from dataclasses import replace
    from types import SimpleNamespace

    import torch

    from WeakSegLib.config import get_profile
    from WeakSegLib.inference.volume import _patch_outputs

    class Ramp(torch.nn.Module):
        def forward(self, x):
            ramp = torch.linspace(0, 1, x.shape[-1]).expand(x.shape[0], 1, *x.shape[-2:])
            return ramp.contiguous()

    class Pointwise(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x[:, :1] * 3 - 1)

    class Score(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 1)

    profile = get_profile("fast")
    profile = replace(profile, runtime=replace(profile.runtime, channels_last=False),
                      inference=replace(profile.inference,
                                        test_time_flips=("ramp", "pointwise")))
    bundle = SimpleNamespace(profile=profile, device=torch.device("cpu"), classifier=Score(),
                             converter=Pointwise(),
                             segmenters={"ramp": Ramp(), "pointwise": Pointwise(),
                                         "plain": Ramp()})
    patches = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    out = _patch_outputs(bundle, patches, 0, batch_size=2)
    np.testing.assert_allclose(out["ramp"], 0.5, atol=1e-6)             # averaged away
    np.testing.assert_allclose(out["plain"][:, 0], np.tile(np.linspace(0, 1, 8), (3, 1)), atol=1e-6)
    expected = 1 / (1 + np.exp(-(patches[:, 0] * 3 - 1)))
    np.testing.assert_allclose(out["pointwise"], expected, atol=1e-6)


def test_a_case_runs_only_the_networks_its_methods_read() -> None:
    """issue 17: `segment --method self_trained` ran every segmenter of the run (and the
    classifier a second time for w); now only the ones the asked methods read run."""
    from types import SimpleNamespace

    import torch

    from WeakSegLib.config import get_profile
    from WeakSegLib.inference.volume import _patch_outputs, networks_for

    calls: list[str] = []

    class Net(torch.nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)
            return torch.sigmoid(x[:, :1])

    from dataclasses import replace

    names = ("segmenter", "under", "over", "seed_only", "self_train")
    profile = get_profile("fast")            # one call per network: no test-time flips here
    profile = replace(profile, inference=replace(profile.inference, test_time_flips=()))
    bundle = SimpleNamespace(profile=profile, device=torch.device("cpu"),
                             classifier=Net("classifier"), converter=Net("converter"),
                             segmenters={n: Net(n) for n in names})
    assert networks_for(bundle, ["self_trained"]) == {"self_train"}
    assert networks_for(bundle, ["combined", "initial"]) == {"under", "over", "w", "segmenter"}
    assert networks_for(bundle, ["l1_baseline"]) == set()
    patches = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    out = _patch_outputs(bundle, patches, 0, batch_size=8,
                         networks=networks_for(bundle, ["self_trained"]))
    assert sorted(calls) == ["classifier", "converter", "self_train"]
    assert set(out) == {"score", "variant", "self_train"}
    calls.clear()
    out = _patch_outputs(bundle, patches, 0, batch_size=8, networks={"under", "over", "w"})
    assert sorted(calls) == ["classifier", "classifier", "converter", "over", "under"]
    assert "w" in out


def test_padded_last_batches_keep_the_outputs_and_use_few_shapes() -> None:
    """issue 17: the last batch of a case is padded to a multiple of inference.batch_quantum
    (a long batch otherwise grew memory with every new batch shape); the real patches'
    outputs are those of the unpadded run, and the networks see only quantum-sized batches."""
    from dataclasses import replace
    from types import SimpleNamespace

    import torch

    from WeakSegLib.config import get_profile
    from WeakSegLib.inference.volume import _patch_outputs

    shapes: list[int] = []

    class Net(torch.nn.Module):
        def forward(self, x):
            shapes.append(x.shape[0])
            return torch.sigmoid(x[:, :1] * 2 - 1)

    def bundle(quantum: int):
        profile = get_profile("fast")
        profile = replace(profile, runtime=replace(profile.runtime, channels_last=False),
                          inference=replace(profile.inference, batch_quantum=quantum))
        return SimpleNamespace(profile=profile, device=torch.device("cpu"), classifier=None,
                               converter=Net(), segmenters={"self_train": Net()})

    patches = np.random.default_rng(1).random((37, 1, 8, 8)).astype(np.float32)
    plain = _patch_outputs(bundle(1), patches, 0, batch_size=16)
    assert sorted(set(shapes)) == [5, 16]
    shapes.clear()
    padded = _patch_outputs(bundle(8), patches, 0, batch_size=16)
    assert sorted(set(shapes)) == [8, 16]
    for key in plain:
        assert padded[key].shape == plain[key].shape == (37, 8, 8)
        np.testing.assert_allclose(padded[key], plain[key], atol=1e-6)


def test_test_time_flips_on_the_classifier_average_its_score_over_the_flipped_patches() -> None:
    """"classifier" in test_time_flips: the score is the mean of the four flipped patches'
    sigmoid scores (a score is not flipped back); off, it is the patch's own."""
    from dataclasses import replace
    from types import SimpleNamespace

    import torch

    from WeakSegLib.config import get_profile
    from WeakSegLib.inference.volume import _patch_outputs

    class LeftColumn(torch.nn.Module):        # reads the left column only: not flip-invariant
        def forward(self, x):
            return x[:, 0, :, 0].mean(dim=1, keepdim=True) * 4 - 2

    patches = np.random.default_rng(1).random((3, 1, 8, 8)).astype(np.float32)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))             # noqa: E731
    left = sigmoid(patches[:, 0, :, 0].mean(axis=1) * 4 - 2)
    right = sigmoid(patches[:, 0, :, -1].mean(axis=1) * 4 - 2)
    profile = get_profile("fast")
    for flips, expected in (((), left), (("classifier",), (left + right) / 2)):
        cfg = replace(profile, runtime=replace(profile.runtime, channels_last=False),
                      inference=replace(profile.inference, test_time_flips=flips))
        bundle = SimpleNamespace(profile=cfg, device=torch.device("cpu"),
                                 classifier=LeftColumn(), converter=None, segmenters={})
        out = _patch_outputs(bundle, patches, 0, batch_size=2)
        np.testing.assert_allclose(out["score"], expected, atol=1e-6)


def test_slice_scores_are_smoothed_along_z_in_millimetres() -> None:
    """inference.slice_score_sigma_mm: a lone high slice falls below a run of equally high
    slices (a tumour spans slices), the same σ in mm smooths thick slices less, 0 is off."""
    from WeakSegLib.inference.volume import smooth_along_z

    scores = np.zeros(21, np.float32)
    scores[3] = 0.9                        # one slice alone
    scores[10:16] = 0.9                    # a run of six
    smoothed = smooth_along_z(scores, 2.0, 1.0)
    assert smoothed[3] < 0.5 < smoothed[12]
    assert smoothed[2] > 0 and smoothed.dtype == np.float32
    thick = smooth_along_z(scores, 2.0, 5.0)
    assert smoothed[3] < thick[3] < 0.9
    np.testing.assert_array_equal(smooth_along_z(scores, 0.0, 1.0), scores)


def test_segment_case_reports_the_smoothed_slice_score(tiny_run, tiny_flair_t1_phantom) -> None:
    """segment's slice score is the classifier's per-slice maximum smoothed by σ / z spacing."""
    from dataclasses import replace

    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.data.reader import read_case
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.volume import segment_case, smooth_along_z

    bundle = load_bundle(tiny_run, "cpu")
    case = read_case(discover_cohort(tiny_flair_t1_phantom).cases[0])
    results = {}
    for sigma in (0.0, 3.0):
        bundle.profile = replace(bundle.profile, inference=replace(
            bundle.profile.inference, slice_score_sigma_mm=sigma))
        results[sigma] = segment_case(bundle, case, ["self_trained"]).slice_scores
    assert results[0.0].max() > 0
    np.testing.assert_allclose(results[3.0], smooth_along_z(results[0.0], 3.0,
                                                            case.geometry.spacing_zyx[0]),
                               atol=1e-6)
    assert not np.allclose(results[3.0], results[0.0])

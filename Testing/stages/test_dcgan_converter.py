"""DCGAN and converter stages on a tiny synthetic slice set: steps learn, artefacts appear,
healthy variants are the input, the converter starts from the DCGAN, resume is reproducible."""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from WeakSegLib.config import get_profile
from WeakSegLib.data.slices import SliceSet
from WeakSegLib.events import EventWriter, parse_events
from WeakSegLib.models.dcgan import Discriminator, Generator
from WeakSegLib.models.unet import UNet
from WeakSegLib.models.weights import load_model
from WeakSegLib.stages.base import RunContext
from WeakSegLib.stages.converter import (ConverterStage, FullOutput, build_converter,
                                         converter_step, negative_l1, select_training_slices)
from WeakSegLib.stages.run_folder import load_variants
from WeakSegLib.stages.dcgan import (DcganStage, adam, build_gan, discriminator_step, gan_step,
                                     generator_loss, healthy_flair)

SIZE = 32
CASES = ["A", "B", "C"]          # A, B train; C validation


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: with 2 OpenMP threads on a busy 2-core machine each op waits
    on the other thread (measured: 30 ms vs 0.2 ms per BatchNorm), so the module runs 5× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _slices(n_per_case: int = 8, seed: int = 0) -> SliceSet:
    """A disc 'brain' (FLAIR 0.4, T1 0.6) per slice; odd slices carry a bright square tumour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    brain = ((yy - 16) ** 2 + (xx - 16) ** 2) < 13 ** 2
    n = n_per_case * len(CASES)
    labels = np.tile(np.arange(n_per_case) % 2, len(CASES)).astype(np.uint8)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    images = np.zeros((n, 2, SIZE, SIZE), np.float32)
    for i in range(n):
        images[i, 0] = brain * (0.4 + 0.05 * rng.standard_normal((SIZE, SIZE)))
        images[i, 1] = brain * 0.6
        if labels[i]:
            top, left = rng.integers(8, 18, size=2)
            masks[i, top:top + 6, left:left + 6] = 1
            images[i, 0][masks[i] > 0] = 0.95
    return SliceSet(images=np.clip(images, 0, 1), labels=labels,
                    case_index=np.repeat(np.arange(len(CASES)), n_per_case),
                    slice_index=np.tile(np.arange(40, 40 + n_per_case), len(CASES)),
                    cases=list(CASES), channels=["flair", "t1"], masks=masks)


def _profile(gan_epochs: int = 2):
    fast = get_profile("fast")
    return replace(fast,
                   gan=replace(fast.gan, epochs=gan_epochs, batch_size=4, time_budget_s=None),
                   converter=replace(fast.converter, epochs=2, batch_size=4, time_budget_s=None))


def _context(run_dir: Path, slices: SliceSet | None = None, gan_epochs: int = 2,
             events: EventWriter | None = None) -> RunContext:
    slices = slices or _slices()
    return RunContext(run_dir, _profile(gan_epochs), torch.device("cpu"),
                      slices.for_cases(CASES[:2]), slices.for_cases(CASES[2:]),
                      events=events or EventWriter(run_dir / "events.jsonl"), show_progress=False)


def _write_stage1_and_2(ctx: RunContext) -> None:
    """What the classifier and seeds stages leave behind: scores.npz and seeds/<case>.npz.
    Scores are right except for one missed tumour slice; the seeds' negative is everything
    outside a margin around the truth, except on one slice where it covers the whole slice."""
    data = ctx.train
    scores = np.where(data.labels == 1, 0.9, 0.1).astype(np.float32)
    scores[np.flatnonzero(data.labels)[0]] = 0.2                # a false negative
    (ctx.run_dir / "classifier").mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ctx.run_dir / "classifier" / "scores.npz", train=scores,
                        val=np.where(ctx.val.labels == 1, 0.9, 0.1).astype(np.float32))
    positive = data.masks.astype(bool)
    masks = torch.as_tensor(data.masks[:, None], dtype=torch.float32)
    grown = torch.nn.functional.max_pool2d(masks, 7, 1, 3)[:, 0].numpy() > 0
    negative = ~grown
    negative[np.flatnonzero(data.labels)[1]] = True             # covers 100 % → not selected
    saliency = np.where(positive, 0.9, np.where(negative, 0.1, 0.5)).astype(np.float16)
    (ctx.run_dir / "seeds").mkdir(parents=True, exist_ok=True)
    for number, case in enumerate(data.cases):
        rows = np.flatnonzero(data.case_index == number)[::-1]   # reversed: matched by slice
        if len(rows):
            np.savez_compressed(ctx.run_dir / "seeds" / f"{case}.npz",
                                slice_index=data.slice_index[rows], positive=positive[rows],
                                negative=negative[rows], saliency=saliency[rows])


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- steps
def test_discriminator_and_generator_steps_lower_their_losses(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    torch.manual_seed(0)
    g, d = build_gan(ctx.profile.gan, SIZE)
    real = torch.as_tensor(healthy_flair(ctx, "dcgan")[:4])
    with torch.no_grad():
        fake = g(torch.randn(4, g.latent))

    def d_loss() -> float:          # seed 000 eq. 1 with one-sided label smoothing
        bce = torch.nn.functional.binary_cross_entropy
        with torch.no_grad():
            p_real, p_fake = d(real).reshape(-1), d(fake).reshape(-1)
            return float(bce(p_real, torch.full_like(p_real, 0.9))
                         + bce(p_fake, torch.zeros_like(p_fake)))

    cfg = ctx.profile.gan                   # lr 2e-4: at 1e-3 Adam's first steps overshoot
    losses = [d_loss()]
    opt_d = adam(d, cfg.lr, cfg.beta1)
    for _ in range(3):
        discriminator_step(d, opt_d, real, fake, cfg, ctx)
        losses.append(d_loss())
    assert np.all(np.diff(losses) < 0), losses

    z = torch.randn(4, g.latent)
    opt_g = adam(g, cfg.lr, cfg.beta1)
    d.eval()                     # a fixed judge: only G moves

    def g_loss() -> float:
        with torch.no_grad():
            return float(generator_loss(d, g(z), ctx))

    before = g_loss()
    for _ in range(3):
        loss = generator_loss(d, g(z), ctx)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    assert g_loss() < before

    record = gan_step(g, d, opt_g, opt_d, real, cfg, ctx)
    assert set(record) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in record.values())


def test_converter_step_lowers_l1_on_negative_seeds(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    torch.manual_seed(0)
    g, d = build_gan(ctx.profile.gan, SIZE)
    model = FullOutput(build_converter(g, d))
    tumour = np.flatnonzero(ctx.train.labels)[:4]
    x = torch.as_tensor(ctx.train.flair[tumour, None])
    negative = torch.as_tensor(1.0 - ctx.train.masks[tumour, None])
    real = torch.as_tensor(healthy_flair(ctx, "converter")[:4])

    def l1() -> float:
        torch.manual_seed(1)     # the same latent sample each time
        with torch.no_grad():
            return float(negative_l1(x, model(x).image, negative))

    before = l1()
    opt_model, opt_d = adam(model, 1e-3, 0.5), adam(d, 1e-3, 0.5)
    for _ in range(3):
        record = converter_step(model, d, opt_model, opt_d, x, negative, real, ctx)
    assert l1() < before
    assert {"loss", "l1", "adversarial", "kl", "d_loss", "d_real", "d_fake"} <= set(record)


def test_converter_starts_from_the_dcgan() -> None:
    torch.manual_seed(0)
    g, d = build_gan(_profile().gan, SIZE)
    unet = build_converter(g, d)
    assert _state_equal(unet.decoder, g)
    for i in range(5):
        assert _state_equal(unet.encoder.blocks[i], d.blocks[i])
    with torch.no_grad():     # identity skips: at first the converter is G(μ(x))
        x = torch.rand(2, 1, SIZE, SIZE)
        unet.eval(), g.eval()
        mu, _, _ = unet.encode(x)
        assert torch.allclose(unet(x), g(mu), atol=1e-5)


# --------------------------------------------------------------------------- selection, inputs
def test_training_slices_are_true_positives_with_room_outside_the_negative_seed() -> None:
    labels = np.array([0, 1, 1, 1, 1])
    scores = np.array([0.9, 0.9, 0.3, 0.8, 0.7])
    negative = np.zeros((5, 10, 10), bool)
    negative[3] = True                       # 100 % negative
    negative[4, :9] = True                   # 90 %
    index, counts = select_training_slices(labels, scores, negative, _profile().converter)
    assert index.tolist() == [1, 4]
    assert counts == {"n_tumour": 4, "n_true_positive": 3, "n_selected": 2}


def test_few_healthy_slices_fall_back_with_a_log_and_none_is_an_error(tmp_path: Path) -> None:
    slices = _slices(n_per_case=4)          # 2 healthy slices per case: 4 in train, 2 in val
    stream = io.StringIO()
    ctx = _context(tmp_path, slices, events=EventWriter(stream))
    assert healthy_flair(ctx, "dcgan").shape == (6, 1, SIZE, SIZE)
    logs = [e for e in parse_events(stream.getvalue().splitlines()) if e["event"] == "log"]
    assert logs and logs[0]["level"] == "warning" and "healthy" in logs[0]["message"]
    tumour_only = slices.subset(np.flatnonzero(slices.labels))
    with pytest.raises(ValueError, match="healthy"):
        healthy_flair(_context(tmp_path, tumour_only), "dcgan")


def test_no_qualifying_slice_falls_back_to_all_tumour_slices_with_a_log(tmp_path: Path) -> None:
    stream = io.StringIO()
    ctx = _context(tmp_path, events=EventWriter(stream))
    _write_stage1_and_2(ctx)
    negative = np.ones((len(ctx.train), SIZE, SIZE), bool)      # nothing left for D' to judge
    index, counts = ConverterStage()._training_slices(ctx, negative)
    assert index.tolist() == np.flatnonzero(ctx.train.labels).tolist()
    assert counts["n_selected"] == 0 and counts["n_train_slices"] == len(index)
    logs = [e for e in parse_events(stream.getvalue().splitlines()) if e["event"] == "log"]
    assert any(e["level"] == "warning" and "instead" in e["message"] for e in logs)


# --------------------------------------------------------------------------- whole stages
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunContext, list[Path], list[Path]]:
    ctx = _context(tmp_path_factory.mktemp("run"))
    _write_stage1_and_2(ctx)
    dcgan = DcganStage().run(ctx)
    converter = ConverterStage().run(ctx)
    return ctx, dcgan, converter


def test_dcgan_stage_writes_its_artefacts(trained) -> None:
    ctx, artefacts, _ = trained
    stage = ctx.run_dir / "dcgan"
    for name in ("generator.pt", "discriminator.pt", "metrics.json", "figures/samples.png",
                 "figures/history.png"):
        assert stage / name in artefacts and (stage / name).is_file(), name
    metrics = json.loads((stage / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["n_healthy"] == 8
    assert {"d_loss", "g_loss", "d_real", "d_fake", "lr"} <= set(metrics["history"][0])
    g, _ = load_model(stage / "generator.pt", Generator.architecture)
    assert g(torch.randn(1, g.latent)).shape == (1, 1, SIZE, SIZE)
    load_model(stage / "discriminator.pt", Discriminator.architecture)


def test_converter_stage_writes_variants_model_metrics_and_figure(trained) -> None:
    ctx, _, artefacts = trained
    stage = ctx.run_dir / "converter"
    for path in (stage / "model.pt", stage / "metrics.json", stage / "figures" / "variants.png",
                 *(ctx.run_dir / "variants" / f"{c}.npz" for c in CASES)):
        assert path in artefacts and path.is_file(), path
    metrics = json.loads((stage / "metrics.json").read_text())
    # 8 tumour slices in train, one false negative and one all-negative slice left out
    assert metrics["n_train_slices"] == 6 and metrics["n_true_positive"] == 7
    assert len(metrics["history"]) == 2
    assert {"l1", "adversarial", "kl"} <= set(metrics["history"][0])
    for split in ("train", "val"):
        diff = metrics[f"{split}_abs_difference"]
        assert set(diff) >= {"inside_mask", "outside_mask_brain", "outside_mask_brain_correlation"}
        assert all(np.isfinite(v) for v in diff.values())
    unet, _ = load_model(stage / "model.pt", UNet.architecture)
    assert unet.arch_kwargs["in_channels"] == 1


@pytest.mark.parametrize("split", ["train", "val"])
def test_variants_of_healthy_slices_are_the_input(trained, split: str) -> None:
    ctx, _, _ = trained
    data = getattr(ctx, split)
    variants = load_variants(ctx.run_dir, data)
    assert variants.shape == data.flair.shape
    healthy = data.labels == 0
    np.testing.assert_allclose(variants[healthy], data.flair[healthy], atol=1e-3)  # float16
    assert not np.allclose(variants[~healthy], data.flair[~healthy], atol=1e-3)
    assert variants.min() >= 0 and variants.max() <= 1


def test_a_resumed_dcgan_matches_an_uninterrupted_one(tmp_path: Path, trained) -> None:
    ctx, _, _ = trained                     # the fixture's run: 2 epochs straight through
    resumed = _context(tmp_path, gan_epochs=1)
    DcganStage().run(resumed)
    resumed.profile = _profile(gan_epochs=2)
    DcganStage().run(resumed)
    straight, _ = load_model(ctx.run_dir / "dcgan" / "generator.pt", Generator.architecture)
    again, _ = load_model(tmp_path / "dcgan" / "generator.pt", Generator.architecture)
    assert _state_equal(straight, again)

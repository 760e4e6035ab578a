"""Shapes, DCGAN → U-Net initialisation and safe weight files, at tiny widths."""
from __future__ import annotations

import pickle

import pytest
import torch

from WeakSegLib.models.classifier import VGG16BNClassifier
from WeakSegLib.models.dcgan import Discriminator, Generator, middle_schedule
from WeakSegLib.models.unet import UNet
from WeakSegLib.models.weights import load_model, load_model_state, save_model

TINY = 16          # width divisor for tests: VGG widths 4 … 32, DCGAN widths 4 … 64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("size", [64, 128])
def test_classifier_logit_shape_and_proba(channels: int, size: int) -> None:
    model = VGG16BNClassifier(in_channels=channels, width_divisor=TINY).eval()
    x = torch.rand(2, channels, size, size)
    logits = model(x)
    assert logits.shape == (2, 1)
    proba = model.predict_proba(x)
    assert proba.shape == (2,)
    assert torch.allclose(proba, torch.sigmoid(logits[:, 0]))


def test_classifier_max_pool_head_sees_a_small_bright_spot_wherever_it_is() -> None:
    """Global max pooling: the logit depends on the strongest place, not on how much of the
    slice it covers; an unknown pooling is refused; the kind travels with the weights."""
    torch.manual_seed(0)
    model = VGG16BNClassifier(in_channels=1, width_divisor=TINY, upsample=1, pool="max").eval()
    assert model.arch_kwargs["pool"] == "max"
    feature = model.pool(torch.zeros(1, 3, 4, 4).index_put_(
        (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([3])),
        torch.tensor([5.0])))
    assert feature.flatten().tolist() == [0.0, 5.0, 0.0]
    with pytest.raises(ValueError, match="pool 'sum'"):
        VGG16BNClassifier(in_channels=1, pool="sum")
    assert VGG16BNClassifier(in_channels=1).arch_kwargs["pool"] == "avg"


def test_classifier_accepts_small_and_odd_sizes() -> None:
    model = VGG16BNClassifier(in_channels=2, width_divisor=TINY).eval()
    assert model(torch.rand(1, 2, 32, 32)).shape == (1, 1)
    assert model(torch.rand(1, 2, 48, 40)).shape == (1, 1)


def test_schedule_has_six_blocks_for_each_size() -> None:
    for size in (8, 16, 32, 64, 128):
        assert len(middle_schedule(size)) == 5
    for bad in (48, 100, 256, 4):
        with pytest.raises(ValueError):
            middle_schedule(bad)


@pytest.mark.parametrize("size", [64, 128])
def test_dcgan_shapes_and_ranges(size: int) -> None:
    g = Generator(size=size, width_divisor=TINY)
    d = Discriminator(size=size, width_divisor=TINY)
    assert len(g.blocks) == 6 and len(d.blocks) == 6
    img = g(torch.randn(3, 100))
    assert img.shape == (3, 1, size, size)
    assert img.min() >= 0 and img.max() <= 1
    prob = d(img)
    assert prob.shape == (3, 1)
    assert prob.min() >= 0 and prob.max() <= 1
    # first and last D blocks have no BN; the last G block has no BN and ends in a sigmoid
    bn = torch.nn.BatchNorm2d
    assert not any(isinstance(m, bn) for m in d.blocks[0]) and not any(
        isinstance(m, bn) for m in d.blocks[-1])
    assert all(any(isinstance(m, bn) for m in blk) for blk in d.blocks[1:-1])
    assert isinstance(g.blocks[-1][-1], torch.nn.Sigmoid)
    assert not any(isinstance(m, bn) for m in g.blocks[-1])


def test_dcgan_init_statistics() -> None:
    g = Generator(size=64, width_divisor=4)
    w = g.blocks[1][0].weight
    assert abs(w.mean().item()) < 0.005 and abs(w.std().item() - 0.02) < 0.003


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("size", [64, 128])
def test_unet_shapes(channels: int, size: int) -> None:
    net = UNet(size=size, in_channels=channels, width_divisor=TINY)
    x = torch.rand(2, channels, size, size)
    out = net.forward_full(x)
    assert out.image.shape == (2, 1, size, size)
    assert out.mu.shape == (2, 100) and out.logvar.shape == (2, 100)
    assert out.image.min() >= 0 and out.image.max() <= 1
    net.eval()
    assert torch.equal(net(x), net(x))                 # eval uses μ: deterministic


def test_unet_without_activation_gives_logits() -> None:
    net = UNet(size=64, in_channels=2, width_divisor=TINY, out_activation="none").eval()
    assert isinstance(net.decoder.blocks[-1][-1], torch.nn.Identity)
    assert net(torch.rand(2, 2, 64, 64)).shape == (2, 1, 64, 64)


def _trained_like_dcgan(size: int) -> tuple[Generator, Discriminator]:
    g, d = Generator(size=size, width_divisor=TINY), Discriminator(size=size, width_divisor=TINY)
    g(torch.randn(4, 100))                              # move BN running stats off defaults
    d(torch.rand(4, 1, size, size))
    return g, d


def test_init_from_dcgan_copies_weights_and_starts_as_g_of_mu() -> None:
    g, d = _trained_like_dcgan(64)
    net = UNet(size=64, in_channels=1, width_divisor=TINY)
    net.init_from_dcgan(g, d)
    for key, value in g.state_dict().items():
        assert torch.equal(net.decoder.state_dict()[key], value), key
    for i in range(5):
        for key, value in d.blocks[i].state_dict().items():
            assert torch.equal(net.encoder.blocks[i].state_dict()[key], value), (i, key)
    net.eval()
    g.eval()
    x = torch.rand(2, 1, 64, 64)
    mu, _, _ = net.encode(x)
    assert torch.allclose(net(x), g(mu), atol=1e-6)


def test_init_from_dcgan_with_more_input_channels_uses_channel_zero() -> None:
    g, d = _trained_like_dcgan(64)
    net = UNet(size=64, in_channels=4, width_divisor=TINY)
    net.init_from_dcgan(g, d)
    first = net.encoder.blocks[0][0].weight
    assert torch.equal(first[:, :1], d.blocks[0][0].weight)
    assert torch.count_nonzero(first[:, 1:]) == 0


def test_init_from_dcgan_rejects_other_size() -> None:
    g, d = _trained_like_dcgan(128)
    net = UNet(size=64, width_divisor=TINY)
    with pytest.raises(ValueError, match="generator"):
        net.init_from_dcgan(g, d)


# ---------------------------------------------------------------- weight files

def test_save_load_round_trip(tmp_path) -> None:
    model = VGG16BNClassifier(in_channels=2, width_divisor=TINY)
    path = save_model(tmp_path / "classifier" / "model.pt", model,
                      {"channels": ["flair", "t2"], "val_auc": 0.9})
    state, meta = load_model_state(path, "vgg16bn_classifier")
    assert meta["format"] == "weakseg-model" and meta["version"] == 1
    assert meta["arch_kwargs"]["in_channels"] == 2 and meta["channels"] == ["flair", "t2"]
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value)
    rebuilt, _ = load_model(path, "vgg16bn_classifier")
    x = torch.rand(1, 2, 32, 32)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))


def test_save_rejects_non_plain_metadata(tmp_path) -> None:
    with pytest.raises(TypeError):
        save_model(tmp_path / "m.pt", Generator(size=64, width_divisor=TINY),
                   {"bad": object()})


def _assert_refused(path, expected: str = "dcgan_generator", match: str | None = None) -> None:
    with pytest.raises(ValueError) as info:
        load_model_state(path, expected)
    assert str(path) in str(info.value)
    if match:
        assert match in str(info.value)


def test_corrupted_file_refused(tmp_path) -> None:
    path = save_model(tmp_path / "m.pt", Generator(size=64, width_divisor=TINY), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path)


def test_random_bytes_refused(tmp_path) -> None:
    path = tmp_path / "random.pt"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    _assert_refused(path)


def test_plain_state_dict_refused(tmp_path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(Generator(size=64, width_divisor=TINY).state_dict(), path)
    _assert_refused(path, match="not a WeakSeg model file")
    torch.save({"state_dict": {}, "metadata": {"format": "other"}}, path)
    _assert_refused(path, match="format")


def test_wrong_architecture_refused(tmp_path) -> None:
    path = save_model(tmp_path / "d.pt", Discriminator(size=64, width_divisor=TINY), {})
    _assert_refused(path, expected="dcgan_generator", match="architecture")


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_not_executed(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": {}, "metadata": _Boom()}, fh, protocol=2)
    _assert_refused(path)
    torch.save({"state_dict": {}, "metadata": _Boom()}, path)
    _assert_refused(path, match="weights-only")
    assert "must never run" not in capsys.readouterr().out


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model_state(tmp_path / "absent.pt", "dcgan_generator")

"""The compact shipped bundle: fp16, only the networks asked for, opens like the run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from WeakSegLib.cli import main
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.reader import read_case
from WeakSegLib.export.bundle import export_bundle
from WeakSegLib.inference.bundle import load_bundle
from WeakSegLib.inference.volume import segment_case


def test_export_keeps_only_the_needed_networks_in_float16(tiny_run: Path, tmp_path: Path,
                                                          tiny_flair_t1_phantom: Path) -> None:
    out = tmp_path / "default"
    summary = export_bundle(tiny_run, out, ["self_trained"])
    assert summary["stages"] == ["classifier", "converter", "self_train"]
    assert sorted(p.name for p in out.iterdir()) == ["classifier", "converter", "manifest.json",
                                                     "self_train"]
    payload = torch.load(out / "self_train" / "model.pt", weights_only=True)
    assert {v.dtype for v in payload["state_dict"].values() if v.is_floating_point()} == {
        torch.float16}
    size = sum(p.stat().st_size for p in out.rglob("*.pt"))
    full = sum((tiny_run / s / "model.pt").stat().st_size for s in summary["stages"])
    assert size < 0.6 * full
    bundle = load_bundle(out, "cpu")
    assert bundle.methods == ["self_trained", "l1_baseline"]
    case = read_case(discover_cohort(tiny_flair_t1_phantom).cases[0])
    full_result = segment_case(load_bundle(tiny_run, "cpu"), case, ["self_trained"])
    half_result = segment_case(bundle, case, ["self_trained"])
    a, b = full_result.labels["self_trained"] > 0, half_result.labels["self_trained"] > 0
    agreement = (2 * (a & b).sum() + 1) / (a.sum() + b.sum() + 1)
    assert agreement > 0.98                         # fp16 storage changes (almost) nothing
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exported_from"]["methods"] == ["self_trained"]
    with pytest.raises(InputError, match="not empty"):
        export_bundle(tiny_run, out, ["self_trained"])


def test_model_default_reads_the_shipped_bundle(tiny_run: Path, tmp_path: Path,
                                                tiny_flair_t1_phantom: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "shipped"
    assert main(["export-model", "--model", str(tiny_run), "--out", str(out),
                 "--methods", "self_trained", "--quiet"]) == 0
    monkeypatch.setenv("WEAKSEG_DEFAULT_MODEL", str(out))
    case = sorted(tiny_flair_t1_phantom.iterdir())[0]
    assert main(["segment", "--model", "default", "--input", str(case), "--out",
                 str(tmp_path / "seg"), "--quiet"]) == 0
    written = list((tmp_path / "seg" / case.name).glob("*_self_trained.nii.gz"))
    assert len(written) == 1
    monkeypatch.setenv("WEAKSEG_DEFAULT_MODEL", str(tmp_path / "nowhere"))
    assert main(["segment", "--model", "default", "--input", str(case), "--out",
                 str(tmp_path / "seg2"), "--quiet"]) == 2


def test_export_keeps_in_float32_what_float16_cannot_hold(tiny_run: Path, tmp_path: Path) -> None:
    """A BatchNorm running variance beyond float16's range (the default model had 5·10⁵) would
    become inf and empty its layer: such a tensor stays float32, the others are halved, and the
    exported network computes what the run's computes."""
    from WeakSegLib.export.bundle import half_weights
    from WeakSegLib.models.unet import UNet
    from WeakSegLib.models.weights import load_model

    source = tmp_path / "big.pt"
    payload = torch.load(tiny_run / "self_train" / "model.pt", weights_only=True)
    name = next(k for k in payload["state_dict"] if k.endswith("running_var"))
    payload["state_dict"][name] = payload["state_dict"][name] * 0 + 5e5
    torch.save(payload, source)
    target = half_weights(source, tmp_path / "half.pt")
    state = torch.load(target, weights_only=True)["state_dict"]
    assert state[name].dtype == torch.float32 and torch.isfinite(state[name]).all()
    assert sum(v.dtype == torch.float16 for v in state.values()) > 1
    full, _ = load_model(source, UNet.architecture)
    half, _ = load_model(target, UNet.architecture)
    x = torch.rand(2, len(payload["metadata"].get("channels", [])) or 2, 64, 64)
    with torch.no_grad():
        a, b = torch.sigmoid(full.eval()(x)), torch.sigmoid(half.eval()(x))
    assert torch.isfinite(b).all() and (a - b).abs().max() < 0.05


def test_export_in_float32_writes_every_stage(tiny_run: Path, tmp_path: Path) -> None:
    summary = export_bundle(tiny_run, tmp_path / "full", ["self_trained"], half=False)
    payload = torch.load(tmp_path / "full" / "self_train" / "model.pt", weights_only=True)
    assert {v.dtype for v in payload["state_dict"].values() if v.is_floating_point()} == {
        torch.float32}
    assert load_bundle(tmp_path / "full", "cpu").methods[0] == "self_trained"
    assert summary["stages"] == ["classifier", "converter", "self_train"]

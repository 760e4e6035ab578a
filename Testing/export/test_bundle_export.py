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

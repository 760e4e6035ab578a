"""Opening a run for inference: the methods it offers and the classifier gate it uses."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.config import get_profile
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.slices import SliceSet
from WeakSegLib.inference.bundle import check_methods, gate_threshold, load_bundle


def _fake_run(tmp_path: Path, scores: np.ndarray, labels: np.ndarray) -> Path:
    run = tmp_path / "run"
    (run / "classifier").mkdir(parents=True)
    (run / "data").mkdir()
    np.savez(run / "classifier" / "scores.npz", train=scores, val=scores[:0])
    n = len(labels)
    SliceSet(images=np.zeros((n, 1, 4, 4), np.float32), labels=labels.astype(np.uint8),
             case_index=np.zeros(n, int), slice_index=np.arange(n), cases=["A"],
             channels=["flair"]).save(run / "data" / "slices.npz")
    return run


def test_gate_keeps_the_asked_fraction_of_training_tumour_slices(tmp_path: Path) -> None:
    scores = np.linspace(0.0, 1.0, 101).astype(np.float32)
    labels = np.ones(101)
    run = _fake_run(tmp_path, scores, labels)
    profile = get_profile("fast")
    split = {"train": ["A"]}
    gate = gate_threshold(run, profile, split)
    assert gate == pytest.approx(0.01, abs=1e-3)
    assert (scores[labels == 1] >= gate).mean() >= 0.99
    fixed = replace(profile, inference=replace(profile.inference, gate_sensitivity=None))
    assert gate_threshold(run, fixed, split) == 0.5
    confident = _fake_run(tmp_path / "b", np.full(101, 0.9, np.float32), labels)
    assert gate_threshold(confident, profile, split) == 0.5     # lowered, never raised


def test_a_run_without_later_stages_offers_fewer_methods(tiny_run: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    for stage in ("refinement", "under", "over", "seed_only", "self_train"):
        manifest["stages"].pop(stage)
    (partial / "manifest.json").write_text(json.dumps(manifest))
    bundle = load_bundle(partial, "cpu")
    assert bundle.methods == ["initial", "l1_baseline"]
    with pytest.raises(InputError, match="cannot segment with"):
        check_methods(bundle, ["combined"])
    manifest["stages"]["converter"]["status"] = "failed"
    (partial / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="has not finished"):
        load_bundle(partial, "cpu")


def test_gate_is_set_on_the_validation_patients_when_they_have_tumour(tmp_path: Path) -> None:
    """Training scores are over-confident; the gate must keep the validation patients' tumour
    slices, which the classifier did not train on."""
    run = tmp_path / "run"
    (run / "classifier").mkdir(parents=True)
    (run / "data").mkdir()
    train_scores = np.full(50, 0.95, np.float32)          # memorised training patient
    val_scores = np.linspace(0.0, 1.0, 50).astype(np.float32)
    np.savez(run / "classifier" / "scores.npz", train=train_scores, val=val_scores)
    SliceSet(images=np.zeros((100, 1, 4, 4), np.float32), labels=np.ones(100, np.uint8),
             case_index=np.repeat([0, 1], 50), slice_index=np.tile(np.arange(50), 2),
             cases=["A", "B"], channels=["flair"]).save(run / "data" / "slices.npz")
    profile = get_profile("fast")
    gate = gate_threshold(run, profile, {"train": ["A"], "val": ["B"]})
    assert (val_scores >= gate).mean() >= 0.98 and gate < 0.05
    assert gate_threshold(run, profile, {"train": ["A"], "val": []}) == 0.5


def test_the_demo_reports_the_default_model_only_on_patients_it_never_saw(
        tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path, monkeypatch,
        capsys) -> None:
    """``weakseg demo``'s real part: the shipped model is evaluated on the cases of the folder
    outside its recorded split, and says so when there are none."""
    import argparse

    from WeakSegLib.cli import _demo_real_cases
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.events import EventWriter
    from WeakSegLib.inference.bundle import unseen_cases
    from WeakSegLib.paths import DEFAULT_MODEL_ENV

    cohort = discover_cohort(tiny_flair_t1_phantom).with_masks()
    assert unseen_cases(load_bundle(tiny_run, "cpu"), cohort) == []
    model = tmp_path / "model"
    shutil.copytree(tiny_run, model)
    manifest = json.loads((model / "manifest.json").read_text())
    left_out = cohort.names[0]
    manifest["split"] = {k: [n for n in v if n != left_out] for k, v in manifest["split"].items()}
    (model / "manifest.json").write_text(json.dumps(manifest))
    assert unseen_cases(load_bundle(model, "cpu"), cohort) == [left_out]

    args = argparse.Namespace(real=tiny_flair_t1_phantom, no_real=False, device="cpu",
                              quiet=False, events=None)
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tiny_run))
    _demo_real_cases(args, tmp_path / "demo_seen", EventWriter())
    assert "was seen by the default model" in capsys.readouterr().out
    assert not (tmp_path / "demo_seen" / "real_report").exists()
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(model))
    _demo_real_cases(args, tmp_path / "demo", EventWriter())
    said = capsys.readouterr().out
    assert f"never saw: {left_out}" in said and "flair_threshold" in said
    report = json.loads((tmp_path / "demo" / "real_report" / "metrics.json").read_text())
    assert list(report["methods"]["flair_threshold"]["per_case"]) == [left_out]

"""Stage ``mixed`` end to end on a synthetic cohort: artefacts, events, resume, the CLI.
(Was Testing/mixed/test_train.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.cli import EXIT_BAD_INPUT, main
from WeakSegLib.config import apply_overrides, get_profile
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.events import EventWriter, parse_events
from WeakSegLib.manifest import Manifest
from WeakSegLib.models.mixed_unet import MixedUNet
from WeakSegLib.models.weights import load_model
from WeakSegLib.pipeline import train_mixed_cohort

TINY = ["data.size=16", "data.inplane_scale=1.0", "data.trim_fraction=0.05", "mixed.width_divisor=16",
        "mixed.epochs=2", "mixed.iterations_per_epoch=2", "mixed.batches_per_iteration=2",
        "mixed.time_budget_s=none", "runtime.channels_last=false"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # as in Testing/mixed


def tiny_profile():
    return apply_overrides(get_profile("fast"), TINY)


class KillAfterFirstEpoch(EventWriter):
    """A client that kills the run when it sees the first epoch's progress event."""

    def emit(self, event: str, stage: str | None = None, **fields):
        record = super().emit(event, stage, **fields)
        if event == "progress" and stage == "mixed" and fields["done"] == 1:
            raise KeyboardInterrupt
        return record


def events_of(run: Path) -> list[dict]:
    return list(parse_events((run / "events.jsonl").read_text().splitlines(), strict=True))


def test_train_mixed_writes_the_bundle_and_resumes(synthetic_cohort: Path, tmp_path: Path
                                                   ) -> None:
    cohort, run = discover_cohort(synthetic_cohort), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_mixed_cohort(cohort, run, tiny_profile(), full_cases=["Case0"], device="cpu",
                           events=KillAfterFirstEpoch(), show_progress=False)
    assert Manifest.load(run).status("mixed") == "failed"
    assert (run / "mixed" / "checkpoint.pt").is_file() and not (run / "mixed" / "model.pt").exists()
    with pytest.raises(InputError, match="already holds a run; pass --resume"):
        train_mixed_cohort(cohort, run, tiny_profile(), full_cases=["Case0"], device="cpu",
                           show_progress=False)

    result = train_mixed_cohort(cohort, run, tiny_profile(), full_cases=["Case0"],
                                device="cpu", resume=True, show_progress=False)
    assert Manifest.load(run).status("mixed") == "done"
    metrics = json.loads((run / "mixed" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]       # epoch 1 was not redone
    assert metrics["batch"] == {"masked tumour": 4, "unmasked tumour": 4, "healthy": 2}
    assert metrics["composition"]["cases_with_masks"] == 1
    assert metrics["iterations"] == 4 and metrics["final_lr"] == 0.25
    assert set(metrics["history"][0]) >= {"loss", "seg_loss", "cls_loss", "grad_norm", "lr"}
    events = events_of(run)
    assert any(e["event"] == "log" and "resuming after epoch 1" in e["message"] for e in events)
    assert {e["path"] for e in events if e["event"] == "artefact"} == {
        str(run / "mixed" / "model.pt"), str(run / "mixed" / "metrics.json")}
    assert events[-1] == {**events[-1], "event": "run_end", "status": "done"}

    model, meta = load_model(result.model_path, MixedUNet.architecture)   # weights-only + check
    model.eval()
    assert isinstance(model, MixedUNet) and meta["channels"] == ["flair", "t1"]
    x = np.random.default_rng(0).random((3, 2, 16, 16), dtype=np.float32)
    import torch
    assert model(torch.from_numpy(x)).shape == (3, 2, 16, 16)

    again = train_mixed_cohort(cohort, run, tiny_profile(), full_cases=["Case0"], device="cpu",
                               resume=True, show_progress=False)
    assert again.metrics["history"] == metrics["history"]      # done: nothing retrained


def test_cli_mixed_mode(synthetic_cohort: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    sets = [a for item in TINY for a in ("--set", item)]
    run = tmp_path / "cli_run"
    base = ["train", "--mode", "mixed", "--data", str(synthetic_cohort), "--device", "cpu",
            "--quiet", *sets]
    assert main([*base, "--out", str(run)]) == EXIT_BAD_INPUT
    assert "needs some full annotations" in capsys.readouterr().err
    bad = tmp_path / "records.json"
    bad.write_text("[{]")
    assert main([*base, "--out", str(run), "--review", str(bad)]) == EXIT_BAD_INPUT
    assert f"{bad}: is not valid JSON" in capsys.readouterr().err
    assert main([*base, "--out", str(run), "--full-cases", "Case9"]) == EXIT_BAD_INPUT
    assert "--full-cases not in the cohort: Case9" in capsys.readouterr().err
    assert main(["train", "--data", str(synthetic_cohort), "--out", str(run),
                 "--full-cases", "Case0"]) == EXIT_BAD_INPUT
    assert "need --mode mixed" in capsys.readouterr().err

    records = tmp_path / "review.json"
    records.write_text(json.dumps([
        {"case": "Case1", "slice": 10, "status": "corrected", "reviewer": "r",
         "time": "2024-01-01T00:00:00Z",
         "mask_path": str(synthetic_cohort / "Case1" / "Case1_seg.nii.gz")}]))
    assert main([*base, "--out", str(run), "--full-cases", "Case0", "--review",
                 str(records)]) == 0
    assert "model: " in capsys.readouterr().out
    manifest = Manifest.load(run)
    assert manifest.data["mode"] == "mixed" and manifest.status("mixed") == "done"
    assert manifest.data["data"]["review_status"]["corrected"] == 1
    assert manifest.data["data"]["composition"]["masked_tumour"] > 0

    # the retrained model segments like any bundle: method "mixed", input geometry, no flags
    out = tmp_path / "seg"
    case = synthetic_cohort / "Case1"
    assert main(["segment", "--model", str(run), "--input", str(case), "--out", str(out),
                 "--quiet"]) == 0
    import SimpleITK as sitk
    labels = sitk.ReadImage(str(out / "Case1" / "Case1_mixed.nii.gz"))
    reference = sitk.ReadImage(str(next(case.glob("*flair*"))))
    assert labels.GetSize() == reference.GetSize()
    assert labels.GetOrigin() == pytest.approx(reference.GetOrigin())
    table = (out / "Case1" / "Case1_slices.csv").read_text().splitlines()
    assert len(table) == reference.GetSize()[2] + 1
    # no healthy variant, so no difference score; the review priority still ranks the slices
    rows = [line.split(",") for line in table[1:]]
    assert all(r[2] == "" and 0.0 <= float(r[3]) <= 1.0 for r in rows)

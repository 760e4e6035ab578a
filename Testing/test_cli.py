"""The ``weakseg`` command line: help, bad input, baseline + evaluate end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.cli import EXIT_BAD_INPUT, main
from WeakSegLib.events import parse_events

WEAKSEG = [sys.executable, "-m", "WeakSegLib.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WEAKSEG, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("phantom", "baseline", "evaluate"):
        assert command in result.stdout


def test_empty_folder_is_a_clean_error(tmp_path: Path) -> None:
    result = run_cli("baseline", "--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr
    assert f"{tmp_path}: no cases found" in result.stderr


def test_bad_map_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "--data", str(tmp_path), "--map", "flair", "--out",
                 str(tmp_path / "o")]) == EXIT_BAD_INPUT
    assert "must look like KEY=VALUE" in capsys.readouterr().err


def test_baseline_then_evaluate_on_synthetic_cohort(synthetic_cohort: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pred, report = tmp_path / "pred", tmp_path / "report"
    assert main(["baseline", "--data", str(synthetic_cohort), "--out", str(pred), "--quiet"]) == 0
    assert (pred / "Case0" / "Case0_flair_threshold.nii.gz").is_file()
    # never overwrite without being asked
    assert main(["baseline", "--data", str(synthetic_cohort), "--out", str(pred)]) == EXIT_BAD_INPUT
    assert "already exists" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(pred), "--data", str(synthetic_cohort), "--out",
                 str(report), "--quiet", "--events", str(tmp_path / "ev.jsonl")]) == 0
    table = capsys.readouterr().out
    assert "flair_threshold" in table and "volume_dice" in table
    metrics = json.loads((report / "metrics.json").read_text())
    result = metrics["methods"]["flair_threshold"]
    assert set(result["per_case"]) == {"Case0", "Case1"}
    # the synthetic tumour is the only bright blob: the baseline finds it
    assert result["volume_dice"] > 0.8
    events = list(parse_events((tmp_path / "ev.jsonl").read_text().splitlines(), strict=True))
    assert events[-1] == {**events[-1], "event": "run_end", "status": "done"}
    assert any(e["event"] == "metric" and e["name"] == "flair_threshold/volume_dice"
               for e in events)


def test_evaluate_rejects_prediction_on_another_grid(synthetic_cohort: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import write_volume
    import numpy as np

    bad = write_volume(tmp_path / "pred" / "Case0" / "Case0_mine.nii.gz",
                       np.zeros((5, 5, 5), np.uint8))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--data", str(synthetic_cohort),
                 "--out", str(tmp_path / "r"), "--quiet"]) == EXIT_BAD_INPUT
    assert f"{bad}: has shape (5, 5, 5)" in capsys.readouterr().err


def test_events_on_stdout_stay_parseable(synthetic_cohort: Path, tmp_path: Path) -> None:
    result = run_cli("baseline", "--data", str(synthetic_cohort), "--out", str(tmp_path / "p"),
                     "--events", "-", "--quiet")
    assert result.returncode == 0, result.stderr
    events = list(parse_events(result.stdout.splitlines(), strict=True))
    assert [e["event"] for e in events if e["event"] == "artefact"] == ["artefact", "artefact"]


@pytest.mark.realdata
def test_baseline_on_real_sample_reaches_reference(brats_sample: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """DESIGN.md: flair_threshold reaches ≈ 0.68 mean volume Dice (0.41–0.87) on these cases."""
    pred, report = tmp_path / "pred", tmp_path / "report"
    assert main(["baseline", "--data", str(brats_sample), "--out", str(pred), "--quiet"]) == 0
    assert main(["evaluate", "--pred", str(pred), "--data", str(brats_sample), "--out",
                 str(report), "--quiet"]) == 0
    result = json.loads((report / "metrics.json").read_text())["methods"]["flair_threshold"]
    assert result["n_cases"] == 8
    assert 0.60 < result["volume_dice"] < 0.75
    per_case = [v["volume_dice"] for v in result["per_case"].values()]
    assert 0.35 < min(per_case) and max(per_case) < 0.92
    assert all(0 < v["hd95_mm"] < 100 for v in result["per_case"].values())


def test_train_channels_and_brain_mask_are_checked_before_any_work(
        synthetic_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(synthetic_cohort), "--out", str(run), "--channels",
                 "t1", "--quiet"]) == EXIT_BAD_INPUT
    assert "--channels must include flair" in capsys.readouterr().err
    assert main(["train", "--data", str(synthetic_cohort), "--out", str(run), "--channels",
                 "flair,t2", "--quiet"]) == EXIT_BAD_INPUT
    assert "lack some of them" in capsys.readouterr().err
    assert not run.exists()
    with pytest.raises(SystemExit):
        main(["segment", "--model", "x", "--input", "y", "--out", "z", "--brain-mask", "maybe"])


def test_baseline_with_the_brain_mask_off_and_auto(synthetic_cohort: Path, tmp_path: Path
                                                   ) -> None:
    """A skull-stripped cohort: auto uses its non-zero voxels, the same as off."""
    import SimpleITK as sitk

    maps = []
    for mode in ("off", "auto"):
        out = tmp_path / mode
        assert main(["baseline", "--data", str(synthetic_cohort), "--out", str(out),
                     "--brain-mask", mode, "--quiet"]) == 0
        maps.append(sitk.GetArrayFromImage(sitk.ReadImage(
            str(out / "Case0" / "Case0_flair_threshold.nii.gz"))))
    assert maps[0].any() and np.array_equal(maps[0], maps[1])

"""Refining a weak run with review records (issue 13): the run's self-trained segmenter is
fine-tuned, every other network is kept, the result opens as a bundle."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from WeakSegLib.cli import EXIT_BAD_INPUT, main
from WeakSegLib.config import apply_overrides, get_profile
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.inference.bundle import load_bundle
from WeakSegLib.manifest import Manifest, file_hash
from WeakSegLib.pipeline import train_mixed_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFINE = ["selftrain.review_epochs=2", "selftrain.time_budget_s=none"]


def _records(cohort_dir: Path, folder: Path) -> tuple[Path, str, list[int]]:
    """Review records correcting two tumour slices of the first case with tumour (its mask)."""
    for case in discover_cohort(cohort_dir):
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(case.mask)))
        tumour = np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))
        if len(tumour) >= 2:
            break
    slices = [int(tumour[len(tumour) // 2]), int(tumour[len(tumour) // 2 + 1])]
    path = folder / "records.json"
    path.write_text(json.dumps([{"case": case.name, "slice": z, "status": "corrected",
                                 "reviewer": "r", "time": "2026-11-30T00:00:00Z",
                                 "mask_path": str(case.mask)} for z in slices]))
    return path, case.name, slices


def test_refine_fine_tunes_the_self_trained_segmenter_only(tiny_run: Path,
                                                           tiny_flair_t1_phantom: Path,
                                                           tmp_path: Path) -> None:
    records, name, _ = _records(tiny_flair_t1_phantom, tmp_path)
    cohort = discover_cohort(tiny_flair_t1_phantom).select([name])
    out = tmp_path / "refined"
    profile = apply_overrides(get_profile("fast"), REFINE)
    run = train_mixed_cohort(cohort, out, profile, review_records=records, device="cpu",
                             base=tiny_run, show_progress=False)
    manifest = Manifest.load(out)
    assert manifest.status("self_train") == "done"
    assert manifest.data["refined_from"]["run"] == str(tiny_run.resolve())
    assert manifest.data["refined_from"]["manifest_sha256"] == file_hash(tiny_run /
                                                                         "manifest.json")
    assert run.model_path == out / "self_train" / "model.pt"
    composition = run.metrics["composition"]
    assert composition["reviewed_slices"] == 2 and composition["known_slices"] > 0
    repeat = profile.selftrain.review_repeat
    assert composition["trained_rows_per_epoch"] == (
        composition["known_slices"] + composition["reviewed_case_slices"] + 2 * (repeat - 1))
    assert run.metrics["epochs_run"] == 2
    assert np.isfinite(run.metrics["reviewed_tumour_slice_dice_after"])
    # the other networks are the base run's, byte for byte; the self-trained one has moved
    for stage in ("classifier", "converter", "segmenter"):
        assert file_hash(out / stage / "model.pt") == file_hash(tiny_run / stage / "model.pt")
    assert file_hash(out / "self_train" / "model.pt") != file_hash(tiny_run / "self_train" /
                                                                   "model.pt")
    assert not (out / "self_train" / "checkpoint.pt").exists()
    bundle = load_bundle(out, "cpu")                      # a complete weak bundle
    assert "self_trained" in bundle.methods and "combined" in bundle.methods
    with pytest.raises(InputError, match="already holds a run"):
        train_mixed_cohort(cohort, out, profile, review_records=records, device="cpu",
                           base=tiny_run, show_progress=False)
    again = train_mixed_cohort(cohort, out, profile, review_records=records, device="cpu",
                               base=tiny_run, resume=True, show_progress=False)
    assert again.metrics["epochs_run"] == 2


def test_refine_without_own_output_trains_on_no_unreviewed_slice_of_a_reviewed_case(
        tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path) -> None:
    """selftrain.review_own_output=false: the reviewed case's other slices do not train (their
    base-network targets would repeat the error next to a corrected slice)."""
    records, name, _ = _records(tiny_flair_t1_phantom, tmp_path)
    cohort = discover_cohort(tiny_flair_t1_phantom).select([name])
    profile = apply_overrides(get_profile("fast"), [*REFINE, "selftrain.review_own_output=false"])
    run = train_mixed_cohort(cohort, tmp_path / "refined", profile, review_records=records,
                             device="cpu", base=tiny_run, show_progress=False)
    composition = run.metrics["composition"]
    assert composition["reviewed_case_slices"] > composition["reviewed_slices"] == 2
    assert composition["trained_rows_per_epoch"] == (
        composition["known_slices"] + 2 * profile.selftrain.review_repeat)


def test_refine_refuses_a_base_that_is_not_a_weak_run(tiny_flair_t1_phantom: Path,
                                                      tmp_path: Path) -> None:
    records, name, _ = _records(tiny_flair_t1_phantom, tmp_path)
    cohort = discover_cohort(tiny_flair_t1_phantom).select([name])
    with pytest.raises(InputError, match="no manifest.json"):
        train_mixed_cohort(cohort, tmp_path / "out", get_profile("fast"),
                           review_records=records, base=tmp_path / "nothing",
                           show_progress=False)
    mixed = tmp_path / "mixed_run"
    mixed.mkdir()
    (mixed / "manifest.json").write_text(json.dumps({"mode": "mixed", "stages": {
        "mixed": {"status": "done"}}}))
    with pytest.raises(InputError, match="self_train stage is done"):
        train_mixed_cohort(cohort, tmp_path / "out", get_profile("fast"),
                           review_records=records, base=mixed, show_progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_base(tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    records, name, _ = _records(tiny_flair_t1_phantom, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / name).symlink_to(tiny_flair_t1_phantom / name)
    sets = [a for item in REFINE for a in ("--set", item)]
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "x"), "--base",
                 str(tiny_run)]) == EXIT_BAD_INPUT
    assert "need --mode mixed" in capsys.readouterr().err
    out = tmp_path / "refined"
    assert main(["train", "--mode", "mixed", "--data", str(data), "--review", str(records),
                 "--base", str(tiny_run), "--out", str(out), "--device", "cpu", "--quiet",
                 *sets]) == 0
    said = capsys.readouterr().out
    assert f"refined from {tiny_run}" in said and str(out / "self_train" / "model.pt") in said
    seg = tmp_path / "seg"
    assert main(["segment", "--model", str(out), "--input", str(data / name), "--out",
                 str(seg), "--device", "cpu", "--quiet"]) == 0
    assert (seg / name / f"{name}_self_trained.nii.gz").is_file()
    exported = tmp_path / "exported"                    # and exports like any weak run
    assert main(["export-model", "--model", str(out), "--out", str(exported), "--quiet"]) == 0
    assert (exported / "self_train" / "model.pt").is_file()


def test_a_reviewed_training_case_trains_once_as_reviewed(tiny_run: Path,
                                                         tiny_flair_t1_phantom: Path,
                                                         tmp_path: Path) -> None:
    """A radiologist reviewing a case the base run trained on: its slices leave the known set
    (the base network's output on them) and come back once, with the reviewer's corrections."""
    from WeakSegLib.data.slices import SliceSet

    manifest = Manifest.load(tiny_run)
    known = SliceSet.load(tiny_run / "data" / "slices.npz").for_cases(
        manifest.data["split"]["train"])
    name = manifest.data["split"]["train"][0]
    case_slices = int((np.asarray(known.cases)[known.case_index] == name).sum())
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(
        discover_cohort(tiny_flair_t1_phantom).select([name]).cases[0].mask)))
    z = int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0]) if mask.any() else 0
    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"case": name, "slice": z, "status": "corrected",
                                    "reviewer": "r", "time": "2026-11-30T00:00:00Z",
                                    "mask_path": str(discover_cohort(tiny_flair_t1_phantom)
                                                     .select([name]).cases[0].mask)}]))
    run = train_mixed_cohort(discover_cohort(tiny_flair_t1_phantom).select([name]),
                             tmp_path / "refined", apply_overrides(get_profile("fast"), REFINE),
                             review_records=records, device="cpu", base=tiny_run,
                             show_progress=False)
    composition = run.metrics["composition"]
    assert case_slices > 0
    assert composition["known_slices"] == len(known) - case_slices
    assert composition["reviewed_slices"] == 1


def test_refine_with_validation_patients_keeps_their_best_epoch(tiny_run: Path,
                                                                tiny_flair_t1_phantom: Path,
                                                                tmp_path: Path) -> None:
    """selftrain.review_validation_fraction: ⌊share × n⌋ reviewed patients leave the fine-tuning
    and choose the epoch kept (0 = the base network) by volume Dice on their reviewed slices."""
    cases = discover_cohort(tiny_flair_t1_phantom).with_masks()
    records = []
    for case in cases:
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(case.mask)))
        for z in np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[:2]:
            records.append({"case": case.name, "slice": int(z), "status": "corrected",
                            "reviewer": "r", "time": "2026-11-30T00:00:00Z",
                            "mask_path": str(case.mask)})
    reviewed = sorted({r["case"] for r in records})
    assert len(reviewed) >= 2
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records))
    profile = apply_overrides(get_profile("fast"), [*REFINE,
                                                    "selftrain.review_validation_fraction=0.5"])
    run = train_mixed_cohort(cases.select(reviewed), tmp_path / "refined", profile,
                             review_records=path, device="cpu", base=tiny_run,
                             show_progress=False)
    metrics = run.metrics
    validation = metrics["validation_cases"]
    assert len(validation) == len(reviewed) // 2 and set(validation) <= set(reviewed)
    scores = [metrics["validation_dice_base"], *(h["validation_dice"] for h in
                                                 metrics["history"])]
    assert metrics["kept_epoch"] == int(np.argmax(scores))
    # the validation patients' slices did not train: fewer rows than without validation
    held_slices = sum(1 for r in records if r["case"] in validation)
    composition = metrics["composition"]
    assert composition["trained_rows_per_epoch"] < (
        composition["known_slices"] + composition["reviewed_case_slices"]
        + (composition["reviewed_slices"] - held_slices) * (profile.selftrain.review_repeat - 1))
    kept_base = metrics["kept_epoch"] == 0
    same = file_hash(tmp_path / "refined" / "self_train" / "model.pt") == file_hash(
        tiny_run / "self_train" / "model.pt")
    assert not (tmp_path / "refined" / "self_train" / "best.pt").exists()
    if kept_base:      # the base network itself, weights unchanged (the file's metadata differs)
        import torch

        from WeakSegLib.models.unet import UNet
        from WeakSegLib.models.weights import load_model_state
        a = load_model_state(tmp_path / "refined" / "self_train" / "model.pt", UNet.architecture)[0]
        b = load_model_state(tiny_run / "self_train" / "model.pt", UNet.architecture)[0]
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:
        assert not same

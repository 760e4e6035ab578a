"""The whole pipeline on a tiny phantom (every artefact), then ``segment`` and ``evaluate``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from WeakSegLib.config import get_profile
from WeakSegLib.cli import main
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.reader import read_case
from WeakSegLib.inference.bundle import load_bundle

STAGE_ARTEFACTS = {
    "classifier": ["model.pt", "scores.npz", "metrics.json", "figures/history.png"],
    "seeds": ["metrics.json"],
    "converter": ["model.pt", "metrics.json"],
    "segmenter": ["model.pt", "probabilities.npz", "metrics.json", "figures/segmentations.png"],
    "refinement": ["metrics.json", "figures/refined_seeds.png"],
    "under": ["model.pt", "probabilities.npz", "metrics.json"],
    "over": ["model.pt", "probabilities.npz", "metrics.json"],
    "seed_only": ["model.pt", "probabilities.npz", "metrics.json"],
}


def test_every_stage_is_done_with_its_artefacts(tiny_run: Path) -> None:
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert {s: e["status"] for s, e in manifest["stages"].items()} == {
        s: "done" for s in ["classifier", "seeds", "dcgan", "converter", "segmenter",
                            "refinement", "under", "over", "seed_only", "self_train"]}
    for stage, files in STAGE_ARTEFACTS.items():
        for name in files:
            assert (tiny_run / stage / name).is_file(), f"{stage}/{name}"
    refinement = json.loads((tiny_run / "refinement" / "metrics.json").read_text())
    assert 0 <= refinement["n_reliable"] <= refinement["n_tumour_slices"]
    assert refinement["n_accepted"] <= refinement["n_components"]
    under = json.loads((tiny_run / "under" / "metrics.json").read_text())
    # a 2-epoch classifier may trust no component; the over/under stages then say so
    assert under["fallback_to_initial_seeds"] == (refinement["n_reliable"] == 0)
    assert load_bundle(tiny_run, "cpu").methods == [
        "combined", "combined_score_weight", "initial", "under", "over", "seed_only",
        "self_trained", "l1_baseline"]


@pytest.mark.slow          # ~2 min on 2 cores: a full-resolution 240×240×155 volume
def test_segment_keeps_the_real_input_geometry_and_writes_a_readable_seg_nrrd(
        tiny_run: Path, brats_sample: Path, tmp_path: Path) -> None:
    case_dir = brats_sample / "Brats18_CBICA_AAB_1"
    out = tmp_path / "seg"
    assert main(["segment", "--model", str(tiny_run), "--input", str(case_dir), "--out",
                 str(out), "--quiet"]) == 0
    name = case_dir.name
    reference = sitk.ReadImage(str(next(case_dir.glob("*_flair.nii*"))))
    for suffix in ("_self_trained.nii.gz", "_self_trained.seg.nrrd"):   # the default method
        image = sitk.ReadImage(str(out / name / f"{name}{suffix}"))
        assert image.GetSize() == reference.GetSize()
        np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing())
        np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
    seg = sitk.ReadImage(str(out / name / f"{name}_self_trained.seg.nrrd"))
    assert seg.GetMetaData("Segment0_Name") == "Tumor"
    assert seg.GetMetaData("Segment0_LabelValue") == "1"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / name /
                                                        f"{name}_self_trained.nii.gz")))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seg), labels)
    # the brain mask (auto: a skull-stripped scan's non-zero voxels) beside the outputs. The
    # tiny model works at 2 mm in-plane: the non-zero voxels of the resampled (smoothed) scan
    # reach about one 2 mm voxel further, so the mask written back holds all of the brain and
    # a rim (Dice 0.938 here; exact when the scan is at the model's spacing)
    brain = sitk.ReadImage(str(out / name / f"{name}_brain.nii.gz"))
    assert brain.GetSize() == reference.GetSize()
    written = sitk.GetArrayFromImage(brain) > 0
    nonzero = sitk.GetArrayFromImage(reference) != 0
    assert (written & nonzero).sum() == nonzero.sum()
    assert 2 * (written & nonzero).sum() / (written.sum() + nonzero.sum()) > 0.9
    with (out / name / f"{name}_slices.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == reference.GetSize()[2]
    assert list(rows[0]) == ["slice", "classifier_score", "difference_score", "review_priority",
                             "flagged", "slice_axis"]
    assert {row["slice_axis"] for row in rows} == {"k"}          # an axial scan
    threshold = get_profile("fast").inference.review_threshold
    for row, z in zip(rows, range(len(rows))):
        assert int(row["slice"]) == z and 0.0 <= float(row["classifier_score"]) <= 1.0
        segmented = labels[z].any()
        assert (row["difference_score"] != "") == bool(segmented)
        priority = float(row["review_priority"])
        assert 0.0 <= priority <= 1.0
        assert row["flagged"] == str(int(priority >= threshold))


def test_segment_works_without_a_mask_and_refuses_to_overwrite(
        tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "nomask" / "Case"
    case.mkdir(parents=True)
    source = sorted(tiny_flair_t1_phantom.iterdir())[0]
    for path in source.iterdir():
        if "_seg" not in path.name:
            (case / path.name.replace(source.name, "Case")).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    args = ["segment", "--model", str(tiny_run), "--input", str(case), "--out", str(out),
            "--method", "combined,l1_baseline", "--quiet"]
    assert main(args) == 0
    assert (out / "Case" / "Case_l1_baseline.nii.gz").is_file()
    before = (out / "Case" / "Case_combined.nii.gz").stat().st_mtime_ns
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "Case" / "Case_combined.nii.gz").stat().st_mtime_ns == before
    assert main(args + ["--overwrite", "--postprocess", "tumour:2"]) == 0
    provenance = json.loads((out / "weakseg_segment.json").read_text())["runs"]
    assert len(provenance) == 2 and provenance[-1]["postprocess"] == "tumour:2"
    assert provenance[0]["methods"] == ["combined", "l1_baseline"]
    assert provenance[0]["run"] == str(tiny_run.resolve()) and provenance[0]["manifest_sha256"]


def test_segment_names_the_problem_with_a_bad_model_or_method(
        tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    case = str(sorted(tiny_flair_t1_phantom.iterdir())[0])
    assert main(["segment", "--model", str(tmp_path), "--input", case, "--out",
                 str(tmp_path / "o")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["segment", "--model", str(tiny_run), "--input", case, "--out",
                 str(tmp_path / "o"), "--method", "magic"]) == 2
    assert "unknown method" in capsys.readouterr().err
    bad = tmp_path / "bad_run"
    bad.mkdir()
    for item in tiny_run.iterdir():
        target = bad / item.name
        (target.symlink_to(item, target_is_directory=item.is_dir()))
    (bad / "classifier").unlink()
    (bad / "classifier").mkdir()
    (bad / "classifier" / "model.pt").write_bytes(b"import os; os.system('echo pwned')")
    assert main(["segment", "--model", str(bad), "--input", case, "--out",
                 str(tmp_path / "o2"), "--quiet"]) == 2
    assert "model.pt" in capsys.readouterr().err


def test_evaluate_model_writes_metrics_filtering_and_report(
        tiny_run: Path, tiny_flair_t1_phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(tiny_flair_t1_phantom),
                 "--out", str(out), "--quiet", "--summary"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"combined", "combined_score_weight", "initial", "under",
                                       "over", "seed_only", "l1_baseline", "flair_threshold",
                                       "combined_pp", "self_trained", "self_trained_pp"}
    for result in metrics["methods"].values():
        assert result["n_cases"] == 3
        assert {"slice_dice", "tumour_slice_dice", "volume_dice", "hd95_mm"} <= set(result)
    rows = metrics["filtering"]["combined"]
    assert [r["threshold"] for r in rows] == pytest.approx([0.1 * i for i in range(10)])
    removed = [r["removed_fraction"] for r in rows]
    assert removed[0] == 0 and removed == sorted(removed)
    assert {"auc", "sensitivity", "specificity"} <= set(metrics["classifier"])
    assert metrics["cohorts"]["training"] and "held-out" in metrics["cohorts"]
    html = (out / "report.html").read_text()
    assert "combined" in html and "Table 6" in html and "Review priority" in html
    review = metrics["review"]
    assert review["method"] == "self_trained_pp" and metrics["default_method"] == "self_trained"
    assert {"review_priority", "difference", "disagreement", "oracle", "random"} <= set(
        review["curves"])
    assert review["curves"]["oracle"][-1] >= review["curves"]["oracle"][0]
    assert list((out / "figures").glob("*.png"))
    case = metrics["cohorts"]["training"][0]
    files = discover_cohort(tiny_flair_t1_phantom).select([case]).cases[0]
    shape = read_case(files).geometry.shape
    pred = sitk.ReadImage(str(out / "predictions" / case / f"{case}_combined.nii.gz"))
    assert sitk.GetArrayFromImage(pred).shape == shape
    # the slice table follows the post-processed default: a slice it segments has its D (the
    # table was blank there when D was looked up under "<method>_pp")
    segmented = sitk.GetArrayFromImage(sitk.ReadImage(str(
        out / "predictions" / case / f"{case}_self_trained_pp.nii.gz"))).any(axis=(1, 2))
    with (out / "predictions" / case / f"{case}_slices.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["difference_score"] != "" for row in table] == segmented.tolist()

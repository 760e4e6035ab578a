"""The module's logic on real MRML and real data: volumes in, CLI files out, results back in.

Fast tests use the real BraTS 2018 sample (volume nodes, auto-mapping, the files the CLI gets,
slice positions, importing a label map and slice scores as ``segment`` writes them). The
end-to-end tests run the real CLI through the job runner: training cancelled and resumed on the
tiny phantom, and segmentation with the session's tiny bundle (``tiny_run``).
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer.util", reason="slicer-core is not installed: real MRML needed")
import SimpleITK as sitk

import slicer
from WeakSegLib.data.reader import Geometry
from WeakSegLib.postprocess.ops import apply_ops
from WeakSegLib.slicer import logic, nodes
from WeakSegLib.slicer.controller import HeadlessView, PanelController
from WeakSegLib.slicer.jobs import group_members
from WeakSegLib.slicer.review import ACCEPTED, REJECTED

CASE = "Brats18_CBICA_AAB_1"
TINY_CLASSIFIER = ("data.inplane_scale=1.0", "data.inplane_spacing=2.0",   # the 2 mm phantom
                   "data.trim_fraction=0.1", "classifier.epochs=40",
                   "classifier.time_budget_s=none", "classifier.batch_size=16")


def _same_geometry(a: Geometry, b: Geometry) -> None:
    assert a.size == b.size
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-5)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-4)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)


def _load_case(scene, folder: Path) -> dict[str, object]:
    """Every image of a case folder as a volume node named after its file (masks excluded)."""
    loaded = {}
    for path in sorted(folder.glob("*.nii.gz")):
        if not path.name.endswith("_seg.nii.gz"):
            node = nodes.load_volume_node(scene, path)
            loaded[node.GetName()] = node
    return loaded


def _reference_geometry_matches(segmentation, reference) -> None:
    """The segmentation's reference image geometry is the reference volume's grid."""
    import vtk

    geometry_string = segmentation.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    image = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(geometry_string, image)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    found = nodes.geometry_from_ras_matrix(nodes._numpy_matrix(matrix),
                                           tuple(image.GetDimensions()))
    _same_geometry(found, nodes.geometry_of_volume_node(reference))


# ------------------------------------------------------------------ real case, fast

@pytest.mark.realdata
def test_real_case_modalities_as_nodes_and_auto_mapping(scene, brats_sample, tmp_path) -> None:
    folder = brats_sample / CASE
    loaded = _load_case(scene, folder)
    # the sample ships FLAIR and T1 (README of ../shared/data): every modality present is loaded
    assert set(loaded) == {f"{CASE}_flair", f"{CASE}_t1"}
    controller = PanelController(scene, HeadlessView(), work_root=tmp_path)
    mapping = controller.auto_map()
    assert list(mapping) == ["flair", "t1"]
    p = controller.params
    assert p.flair is loaded[f"{CASE}_flair"] and p.t1 is loaded[f"{CASE}_t1"]
    assert p.reference is p.flair and p.t1ce is None and p.t2 is None
    assert logic.case_name(p.flair.GetName()) == CASE

    # what the CLI is given: the nodes' voxels on the nodes' grids, exactly
    written = logic.write_case(p.inputs, tmp_path / "input", CASE)
    assert sorted(path.name for path in written.values()) == [f"{CASE}_flair.nii",
                                                              f"{CASE}_t1.nii"]
    for key, path in written.items():
        original = sitk.ReadImage(str(folder / f"{CASE}_{key}.nii.gz"))
        copy = sitk.ReadImage(str(path))
        assert np.array_equal(sitk.GetArrayFromImage(copy), sitk.GetArrayFromImage(original))
        _same_geometry(Geometry.of(copy), Geometry.of(original))


@pytest.mark.parametrize("name, case", [
    ("Brats18_CBICA_AAB_1_flair", "Brats18_CBICA_AAB_1"), ("BraTS-GLI-00001-000-t2f",
                                                           "BraTS-GLI-00001-000"),
    ("FLAIR", "case"), ("my scan (2)", "my_scan_2"), ("flair_1", "flair_1")])
def test_case_name(name: str, case: str) -> None:
    assert logic.case_name(name) == case


@pytest.mark.realdata
def test_slice_positions_follow_the_real_grid(scene, brats_sample, red_view) -> None:
    reference = nodes.load_volume_node(scene, brats_sample / CASE / f"{CASE}_flair.nii.gz")
    depth = reference.GetImageData().GetDimensions()[2]
    for z in (0, 1, 77, depth - 1):
        assert logic.slice_index_at(reference, logic.slice_center_ras(reference, z)) == z
        logic.jump_to_slice(scene, reference, z)
        assert logic.current_slice_index(scene, reference) == z
    far = logic.slice_center_ras(reference, depth + 40)
    assert logic.slice_index_at(reference, far) == depth - 1           # clamped


@pytest.mark.realdata
def test_result_import_on_the_reference_grid_and_seg_nrrd_reload(scene, brats_sample,
                                                                  tmp_path) -> None:
    """A label map and slices.csv laid out as ``segment`` writes them, taken in as nodes."""
    folder = brats_sample / CASE
    reference = nodes.load_volume_node(scene, folder / f"{CASE}_flair.nii.gz")
    truth = sitk.ReadImage(str(folder / f"{CASE}_seg.nii.gz"))
    mask = (sitk.GetArrayFromImage(truth) > 0).astype(np.uint8)
    out = tmp_path / "out"
    paths = logic.result_paths(out, CASE, "combined")
    paths["labels"].parent.mkdir(parents=True)
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(truth)
    sitk.WriteImage(image, str(paths["labels"]))
    with paths["slices"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slice", "classifier_score", "difference_score", "flagged"])
        for z in range(mask.shape[0]):
            d = f"{0.05 + 0.004 * z:.4f}" if mask[z].any() else ""
            writer.writerow([z, 0.9 if mask[z].any() else 0.1, d, int(bool(d) and float(d) < 0.2)])

    result = logic.import_result(scene, out, CASE, reference)
    assert result.segmentation.GetSegmentation().GetNthSegment(0).GetName() == "Tumor"
    _reference_geometry_matches(result.segmentation, reference)
    assert np.array_equal(nodes.labelmap_from_segmentation_node(result.segmentation, reference),
                          mask)
    assert len(result.rows) == mask.shape[0]

    saved = logic.export_segmentation(result.segmentation, tmp_path / "x.seg.nrrd")
    other = nodes.new_scene()
    other_reference = nodes.load_volume_node(other, folder / f"{CASE}_flair.nii.gz")
    nodes.ensure_segmentation_converters()
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(other)
    loaded = segmentations.LoadSegmentationFromFile(str(saved), True)
    assert loaded is not None and loaded.GetSegmentation().GetNthSegment(0).GetName() == "Tumor"
    assert np.array_equal(nodes.labelmap_from_segmentation_node(loaded, other_reference), mask)
    other.Clear(1)

    processed = logic.import_result(scene, out, CASE, reference, postprocess_ops="largest")
    expected = apply_ops(mask > 0, "largest").astype(np.uint8)
    assert np.array_equal(processed.labels, expected)
    assert np.array_equal(
        nodes.labelmap_from_segmentation_node(processed.segmentation, reference), expected)

    shifted = sitk.GetImageFromArray(mask)
    shifted.CopyInformation(truth)
    shifted.SetOrigin([o + 5 for o in truth.GetOrigin()])
    sitk.WriteImage(shifted, str(paths["labels"]))
    with pytest.raises(ValueError, match="not on the grid"):
        logic.import_result(scene, out, CASE, reference)


@pytest.mark.realdata
def test_the_brain_mask_segment_wrote_is_shown_beside_the_result(scene, brats_sample,
                                                                tmp_path) -> None:
    """``<case>_brain.nii.gz`` (where segment looked) comes in as its own segmentation node,
    segment "Brain", outlined; it is not taken for a method's label map."""
    folder = brats_sample / CASE
    reference = nodes.load_volume_node(scene, folder / f"{CASE}_flair.nii.gz")
    flair = sitk.ReadImage(str(folder / f"{CASE}_flair.nii.gz"))
    truth = sitk.ReadImage(str(folder / f"{CASE}_seg.nii.gz"))
    paths = logic.result_paths(tmp_path, CASE, "self_trained")
    paths["labels"].parent.mkdir(parents=True)
    for key, array in (("labels", sitk.GetArrayFromImage(truth) > 0),
                       ("brain", sitk.GetArrayFromImage(flair) != 0)):
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(flair)
        sitk.WriteImage(image, str(paths[key]))
    with paths["slices"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slice", "classifier_score", "difference_score", "flagged"])
        writer.writerows([z, 0.5, "", 0] for z in range(flair.GetSize()[2]))

    result = logic.import_result(scene, tmp_path, CASE, reference)     # method: the one written
    assert result.segmentation.GetSegmentation().GetNthSegment(0).GetName() == "Tumor"
    assert result.brain is not None and result.brain is not result.segmentation
    assert result.brain.GetSegmentation().GetNumberOfSegments() == 1
    assert result.brain.GetSegmentation().GetNthSegment(0).GetName() == "Brain"
    assert not result.brain.GetDisplayNode().GetVisibility2DFill()
    assert np.array_equal(nodes.labelmap_from_segmentation_node(result.brain, reference),
                          (sitk.GetArrayFromImage(flair) != 0).astype(np.uint8))
    paths["brain"].unlink()                         # an older run wrote none: no brain node
    assert logic.import_result(scene, tmp_path, CASE, reference).brain is None


# ------------------------------------------------------------------ end to end: real jobs

def test_cancel_during_training_then_resume(scene, tiny_phantom, tmp_path) -> None:
    """Train (classifier only) via the panel; Cancel after the first progress event leaves no
    process and a resumable run; Resume finishes it and the run becomes the model."""
    view = HeadlessView()
    controller = PanelController(scene, view, work_root=tmp_path / "work",
                                 train_overrides=TINY_CLASSIFIER,
                                 train_extra=("--stages", "classifier"))
    run = tmp_path / "run"
    controller.update(train_source="cohort", cohort_dir=tiny_phantom, run_dir=run, device="cpu")
    job = controller.train()
    assert job is not None and controller.enabled()["trainCancelButton"]
    deadline = time.monotonic() + 300
    while not any(e["event"] == "progress" and e.get("stage") == "classifier"
                  for e in job.events):
        assert controller.poll(), job.error_message()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    controller.cancel(wait=True)
    assert job.status == "cancelled" and group_members(job.pgid) == []
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["classifier"]["status"] != "done"
    state = controller.enabled()
    assert state["resumeButton"] and not state["trainButton"] and not state["trainCancelButton"]
    assert "Resume" in view.messages[-1]

    resumed = controller.resume()
    assert "--resume" in resumed.command
    assert controller.wait(timeout=600) == "done", resumed.error_message()
    manifest = json.loads((run / "manifest.json").read_text())
    assert {e["status"] for e in manifest["stages"].values()} == {"done"}
    assert controller.params.model_dir == run and not controller.enabled()["resumeButton"]
    assert (run.with_name("run-logs") / "resume.log").is_file()


@pytest.mark.slow
def test_segment_review_and_export_end_to_end(scene, tiny_run, tiny_flair_t1_phantom,
                                              red_view, tmp_path) -> None:
    """Apply with the tiny bundle through the real job runner, then review and export."""
    case_dir = sorted(tiny_flair_t1_phantom.iterdir())[0]
    case = case_dir.name
    _load_case(scene, case_dir)
    view = HeadlessView()
    controller = PanelController(scene, view, work_root=tmp_path / "work")
    controller.auto_map()
    controller.update(model_dir=tiny_run, device="cpu", export_dir=tmp_path / "export",
                      reviewer="dr who", postprocess=False)   # the tiny model's specks stay
    assert controller.enabled()["applyButton"]
    job = controller.apply()
    assert controller.apply_text() == "Cancel" and not controller.enabled()["trainButton"]
    assert controller.wait(timeout=900) == "done", job.error_message()
    assert job.progress.percent == 100 and not view.errors

    p = controller.params
    reference, segmentation = p.reference, p.segmentation
    assert view.shown == [segmentation]
    # the segmentation sits on the reference's grid and equals the CLI's label map
    _reference_geometry_matches(segmentation, reference)
    cli_labels = sitk.ReadImage(str(controller.last_result.label_path))
    _same_geometry(Geometry.of(cli_labels), nodes.geometry_of_volume_node(reference))
    labels = nodes.labelmap_from_segmentation_node(segmentation, reference)
    assert np.array_equal(labels, sitk.GetArrayFromImage(cli_labels).astype(np.uint8))
    assert segmentation.GetSegmentation().GetNthSegment(0).GetName() == "Tumor"

    # the review table is filled from the CLI's slices.csv
    table = p.review_table
    with (controller.last_result.slices_path).open() as handle:
        cli_rows = list(csv.DictReader(handle))
    assert table.GetNumberOfRows() == len(cli_rows) == reference.GetImageData().GetDimensions()[2]
    rows = nodes.rows_from_review_table(table)
    # highest review priority first, the CLI's priorities and flags as they were written
    assert sorted(r["slice"] for r in rows) == [int(r["slice"]) for r in cli_rows]
    priorities = [r["review_priority"] for r in rows]
    assert None not in priorities and priorities == sorted(priorities, reverse=True)
    cli_flags = {int(r["slice"]): r["flagged"] == "1" for r in cli_rows}
    threshold = controller.params.threshold                         # config's, as the CLI's
    assert all(r["flagged"] == cli_flags[r["slice"]] for r in rows    # (the CSV rounds to 4 d.p.)
               if abs(r["review_priority"] - threshold) > 1e-3)
    scored = [r for r in rows if r["difference_score"] is not None]
    assert scored, "the tiny model segmented nothing: no difference scores to review"
    # moving the threshold changes the flags (on the review priority)
    controller.set_threshold(1.01)
    assert not any(r["flagged"] for r in nodes.rows_from_review_table(table))
    controller.set_threshold(0.0)
    assert all(r["flagged"] for r in nodes.rows_from_review_table(table))

    # accept / reject update the table and the exports
    first, second = (rows.index(r) for r in scored[:2]) if len(scored) > 1 else (0, 1)
    assert controller.select_row(first) == rows[first]["slice"]
    assert logic.current_slice_index(scene, reference) == rows[first]["slice"]
    controller.accept()
    controller.select_row(second)
    controller.reject()
    statuses = [r["status"] for r in nodes.rows_from_review_table(table)]
    assert statuses[first] == ACCEPTED and statuses[second] == REJECTED
    seg_path, nifti, csv_path, json_path = (controller.export_segmentation(),
                                            controller.export_labelmap(),
                                            controller.export_csv(), controller.export_json())
    with csv_path.open() as handle:          # the export is in slice order, the table in
        exported = {int(r["slice"]): r for r in csv.DictReader(handle)}   # priority order
    accepted, rejected = exported[rows[first]["slice"]], exported[rows[second]["slice"]]
    assert accepted["status"] == ACCEPTED and accepted["who"] == "dr who"
    assert rejected["status"] == REJECTED and rejected["when"]
    records = json.loads(json_path.read_text())["records"]
    assert [(r["slice"], r["status"], r["who"]) for r in records] == sorted([   # slice order
        (rows[first]["slice"], ACCEPTED, "dr who"), (rows[second]["slice"], REJECTED, "dr who")])
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(nifti))), labels)
    assert controller.enabled()["retrainButton"]

    # the module's .seg.nrrd loads back through Slicer's segmentation logic
    other = nodes.new_scene()
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(other)
    loaded = segmentations.LoadSegmentationFromFile(str(seg_path), True)
    other_reference = nodes.load_volume_node(other, next(case_dir.glob("*_flair.nii.gz")))
    assert np.array_equal(nodes.labelmap_from_segmentation_node(loaded, other_reference), labels)
    other.Clear(1)
    assert case in seg_path.name

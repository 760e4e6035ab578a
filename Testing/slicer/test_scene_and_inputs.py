"""Issue 15 #5, #8 and the smaller items of the controller: grids checked before any work,
parent transforms, temporary files, and a scene closed under the panel."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer.util", reason="slicer-core is not installed: real MRML needed")
import SimpleITK as sitk

import slicer
from WeakSegLib.data.reader import Geometry
from WeakSegLib.slicer import logic, nodes
from WeakSegLib.slicer.controller import HeadlessView, PanelController
from WeakSegLib.slicer.jobs import Job
from WeakSegLib.slicer.review import ReviewRow, ReviewSession

SMALL = Geometry((12, 10, 8), (2.0, 2.0, 2.5), (-11.0, 9.0, -8.0),
                 (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))        # conftest's grid
SHIFTED = Geometry(SMALL.size, (2.0, 2.0, 2.5), (-9.0, 11.0, -5.5), SMALL.direction)
FINER = Geometry((16, 14, 10), (1.5, 1.5, 2.0), (-12.0, 8.0, -8.0), SMALL.direction)
FAR = Geometry(SMALL.size, SMALL.spacing, (500.0, 500.0, 500.0), SMALL.direction)


@pytest.fixture()
def view() -> HeadlessView:
    return HeadlessView()


@pytest.fixture()
def controller(scene, view, tmp_path, bundle_dir, fake_segment_python):
    c = PanelController(scene, view, work_root=tmp_path / "work", python=fake_segment_python)
    c.update(model_dir=bundle_dir, postprocess=False)
    yield c
    if c.busy:
        c.cancel(wait=True)


def _translation(scene, offset) -> object:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for axis, value in enumerate(offset):
        matrix.SetElement(axis, 3, value)
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "moved")
    node.SetMatrixTransformToParent(matrix)
    return node


# ------------------------------------------------------------------ #5: grids, before any work

def test_a_reference_that_does_not_overlap_is_refused_before_any_work(
        controller, scene, add_volume, view, tmp_path) -> None:
    flair = add_volume(scene, "caseA_flair")
    other = add_volume(scene, "caseB_t2", FAR)
    controller.update(flair=flair, reference=other)
    problem = controller.segment_problem()
    assert "reference volume 'caseB_t2' does not overlap the FLAIR volume" in problem
    assert not controller.enabled()["applyButton"]
    assert controller.apply() is None and view.errors == [problem]
    assert not (tmp_path / "work").exists()                    # nothing was written or started


def test_a_reference_on_another_grid_gets_the_result_resampled_onto_it(
        controller, scene, add_volume, view) -> None:
    """Issue 14: as the CLI resamples another series onto the FLAIR grid, the panel puts the
    result (on the FLAIR grid) onto a reference volume of another grid."""
    flair = add_volume(scene, "caseA_flair")
    other = add_volume(scene, "caseA_t2", FINER, seed=1)
    controller.update(flair=flair, reference=other)
    assert controller.segment_problem() is None
    job = controller.apply()
    assert any("reference volume 'caseA_t2' is not on the FLAIR volume's grid" in m
               for m in view.messages)
    assert controller.wait(60) == "done", job.error_message()
    result = controller.last_result
    assert result is not None, view.errors
    assert result.labels.shape == FINER.shape and result.labels.any()
    # the same labels as the FLAIR-grid label map, put on the reference grid in physical space
    written = sitk.ReadImage(str(result.label_path))
    expected = sitk.GetArrayFromImage(sitk.Resample(
        written, FINER.image_from_array(np.zeros(FINER.shape, np.uint8)), sitk.Transform(),
        sitk.sitkNearestNeighbor, 0))
    assert np.array_equal(result.labels, expected)
    exported = nodes.labelmap_from_segmentation_node(result.segmentation, other)
    assert np.array_equal(exported, expected)


def test_t1_on_another_grid_is_resampled_onto_the_flair_grid(controller, scene, add_volume,
                                                             view) -> None:
    flair = add_volume(scene, "caseA_flair")
    t1 = add_volume(scene, "caseA_t1", FINER, seed=1)
    controller.update(flair=flair, t1=t1, reference=flair)
    assert controller.segment_problem() is None
    job = controller.apply()
    assert "t1 is not on the FLAIR volume's grid: resampled" in view.messages[0]
    written = {key: Geometry.of(sitk.ReadImage(str(path)))
               for key, path in controller._segment_run.inputs.items()}
    assert not written["t1"].differences(written["flair"])
    assert controller.wait(60) == "done", job.error_message()


def test_volumes_that_do_not_overlap_are_refused(controller, scene, add_volume) -> None:
    controller.update(flair=add_volume(scene, "caseA_flair"),
                      t1=add_volume(scene, "caseB_t1", FAR))
    assert "does not overlap the FLAIR volume" in controller.segment_problem()


# ------------------------------------------------------------------ parent transforms

def test_a_linear_parent_transform_moves_the_grid_the_cli_gets(controller, scene, add_volume,
                                                               red_view) -> None:
    flair = add_volume(scene, "caseA_flair")
    moved = _translation(scene, (10.0, 0.0, 5.0))                # RAS: +10 R, +5 S
    flair.SetAndObserveTransformNodeID(moved.GetID())
    controller.update(flair=flair, reference=flair)
    job = controller.apply()
    written = Geometry.of(sitk.ReadImage(str(controller._segment_run.inputs["flair"])))
    np.testing.assert_allclose(written.origin, np.add(SMALL.origin, (-10.0, 0.0, 5.0)))
    assert controller.wait(60) == "done", job.error_message()
    segmentation = controller.params.segmentation
    assert segmentation.GetTransformNodeID() == moved.GetID()   # drawn where the volume is
    ras = logic.jump_to_slice(scene, flair, 3)
    assert ras[2] == pytest.approx(SMALL.origin[2] + 3 * 2.5 + 5.0)
    assert logic.current_slice_index(scene, flair) == 3


def test_a_non_linear_parent_transform_is_refused(controller, scene, add_volume) -> None:
    flair = add_volume(scene, "caseA_flair")
    warp = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    flair.SetAndObserveTransformNodeID(warp.GetID())
    controller.update(flair=flair, reference=flair)
    assert "non-linear transform 'warp': harden it first" in controller.segment_problem()


# ------------------------------------------------------------------ temporary files

def test_apply_leaves_no_temporary_volumes_behind(controller, scene, add_volume, view) -> None:
    flair = add_volume(scene, "caseA_flair")
    controller.update(flair=flair, t1=add_volume(scene, "caseA_t1", seed=1), reference=flair)
    job = controller.apply()
    assert controller.wait(60) == "done", job.error_message()
    assert controller.params.segmentation is not None and not view.errors
    assert list(controller.work_root.rglob("*.nii")) == []      # the inputs went
    assert list(controller.work_root.rglob("*.log")) and list(controller.work_root.rglob("*.csv"))


# ------------------------------------------------------------------ #8: scene closed

def test_closing_the_scene_forgets_its_nodes_and_cancels_segmenting(controller, scene,
                                                                    add_volume, view) -> None:
    flair = add_volume(scene, "caseA_flair")
    controller.update(flair=flair, reference=flair)
    controller.review = ReviewSession([ReviewRow(1, 0.5, 0.1)], case="caseA")
    controller.selected_row = 0
    controller.mark_slice("first", 1)
    controller.mark_slice("last", 3)
    job = Job([sys.executable, "-c", "import time; time.sleep(60)"], name="segment").start()
    controller.job, controller.job_kind = job, "segment"
    controller.scene_closing()
    scene.Clear(0)
    controller.scene_closed()
    assert controller.review is None and controller.selected_row is None
    assert controller.training_cases == {} and controller.last_result is None
    assert controller.wait(30) == "cancelled" and "scene was closed" in " ".join(view.messages)
    assert controller.params.flair is None and not view.errors
    assert controller.parameter_node.GetScene() is scene


def test_review_rows_of_a_sagittal_scan_jump_along_its_axial_axis(scene, add_volume,
                                                                  tmp_path) -> None:
    """Issue 14: for a FLAIR stored sagittally, ``segment``'s table counts axial slices along
    the FLAIR's j axis (its slice_axis column); a row click moves along that axis."""
    probe = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    direction = sitk.DICOMOrient(probe, "PIR").GetDirection()    # i → P, j → I, k → R
    sagittal = Geometry((12, 10, 8), (2.0, 2.0, 2.5), (5.0, -3.0, 7.0), direction)
    flair = add_volume(scene, "sag_flair", sagittal)
    to_ijk = np.linalg.inv(logic.ijk_to_world(flair))
    first = np.asarray(logic.slice_center_ras(flair, 3, "j"))
    second = np.asarray(logic.slice_center_ras(flair, 4, "j"))
    assert (to_ijk @ np.append(first, 1.0))[1] == pytest.approx(3.0)
    step = second - first                                        # one slice: 2 mm inferior
    assert step == pytest.approx([0.0, 0.0, -2.0])
    table = tmp_path / "c_slices.csv"
    table.write_text("slice,classifier_score,difference_score,review_priority,flagged,"
                     "slice_axis\n0,0.1,,0.2,0,j\n")
    assert logic.slices_axis(table) == "j"
    table.write_text("slice,classifier_score,difference_score,flagged\n0,0.1,,0\n")
    assert logic.slices_axis(table) == "k"                       # a table from before

"""The panel controller on a real MRML scene: one test per enabled/disabled rule, then the clicks.

Jobs here are real subprocesses that only sleep (a training or segment job's place in the state
machine is what matters); the real CLI jobs are in test_module_logic.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.config import get_profile
from WeakSegLib.slicer import bundle, defaults, logic, nodes
from WeakSegLib.slicer.controller import BUTTONS, WIDGETS, HeadlessView, PanelController
from WeakSegLib.slicer.jobs import Job, group_members
from WeakSegLib.slicer.review import (ACCEPTED, CORRECTED, LEGACY_NOTE, REJECTED, ReviewRow,
                                      ReviewSession)

FREE_WHEN_IDLE = ("flairSelector", "t1Selector", "t1ceSelector", "t2Selector",
                  "referenceSelector", "autoMapButton", "modelPathLineEdit", "deviceComboBox",
                  "installButton", "postprocessCheckBox", "trainCohortRadioButton",
                  "trainVolumesRadioButton", "trainRunPathLineEdit")


@pytest.fixture()
def view() -> HeadlessView:
    return HeadlessView()


@pytest.fixture()
def controller(scene, view, tmp_path) -> PanelController:
    c = PanelController(scene, view, work_root=tmp_path / "work")
    yield c
    if c.busy:
        c.cancel(wait=True)


@pytest.fixture()
def case(scene, add_volume):
    """flair + t1 volume nodes of one small case, mapped into the controller by name."""
    return {"flair": add_volume(scene, "caseA_flair"), "t1": add_volume(scene, "caseA_t1", seed=1)}


def _sleeping(controller: PanelController, kind: str) -> Job:
    job = Job([sys.executable, "-c", "import time; time.sleep(60)"], name=kind).start()
    controller.job, controller.job_kind = job, kind
    return job


def _review(controller: PanelController, scene, reference, with_segmentation=True,
            rows=None) -> None:
    """A review of slices 2, 3, 4 (in that priority order) at the panel's threshold (0.5:
    slice 2 flagged), as a finished segment run leaves it."""
    rows = rows or [ReviewRow(2, 0.9, 0.1, review_priority=0.9),
                    ReviewRow(3, 0.8, 0.5, review_priority=0.45),
                    ReviewRow(4, 0.2, None, review_priority=0.2)]
    controller.update(threshold=0.5)            # fixed here, whatever config's default is
    controller.review = ReviewSession(rows, controller.params.threshold, case="caseA")
    table = logic.review_table(scene, controller.review)
    changes = {"review_table": table, "reference": reference}
    if with_segmentation:
        labels = np.zeros(nodes.geometry_of_volume_node(reference).shape, np.uint8)
        labels[2:4, 3:6, 4:7] = 1
        changes["segmentation"] = nodes.segmentation_node_from_labelmap(scene, labels, reference)
    controller.update(**changes)


# ------------------------------------------------------------------ the rule table itself

def test_rules_cover_every_button(controller) -> None:
    assert set(controller.enabled()) == set(BUTTONS)
    assert set(BUTTONS) < set(WIDGETS)


# ------------------------------------------------------------------ one test per rule

@pytest.mark.parametrize("kind", ["segment", "train"])
def test_inputs_model_and_train_settings_lock_while_a_job_runs(controller, kind) -> None:
    assert all(controller.enabled()[name] for name in FREE_WHEN_IDLE)
    job = _sleeping(controller, kind)
    assert not any(controller.enabled()[name] for name in FREE_WHEN_IDLE)
    controller.cancel(wait=True)
    assert job.status == "cancelled" and group_members(job.pgid) == []
    assert all(controller.enabled()[name] for name in FREE_WHEN_IDLE)


def test_postprocess_ops_need_the_checkbox(controller) -> None:
    assert controller.enabled()["postprocessOpsLineEdit"]       # on by default
    controller.update(postprocess=False)
    assert not controller.enabled()["postprocessOpsLineEdit"]
    controller.update(postprocess=True)
    assert controller.enabled()["postprocessOpsLineEdit"]
    _sleeping(controller, "segment")
    assert not controller.enabled()["postprocessOpsLineEdit"]


def test_apply_needs_flair_and_a_finished_bundle_with_its_channels(controller, case, tmp_path,
                                                                   write_bundle) -> None:
    assert not controller.enabled()["applyButton"]
    assert controller.segment_problem() == "select a FLAIR volume"
    controller.update(flair=case["flair"])
    assert "model bundle" in controller.segment_problem()
    unfinished = write_bundle(tmp_path / "half", statuses={"classifier": "done",
                                                           "seeds": "running"})
    controller.update(model_dir=unfinished)
    assert "seeds (running)" in controller.segment_problem()
    assert not controller.enabled()["applyButton"]
    needs_t1 = write_bundle(tmp_path / "two", channels=("flair", "t1"))
    controller.update(model_dir=needs_t1)
    assert "t1" in controller.segment_problem() and not controller.enabled()["applyButton"]
    controller.update(t1=case["t1"])
    assert controller.segment_problem() is None and controller.enabled()["applyButton"]
    controller.update(model_dir=tmp_path / "missing")
    assert not controller.enabled()["applyButton"]


def test_apply_becomes_cancel_while_segmenting(controller, case, bundle_dir) -> None:
    controller.update(flair=case["flair"], model_dir=bundle_dir)
    assert controller.apply_text() == "Apply"
    _sleeping(controller, "segment")
    assert controller.enabled()["applyButton"] and controller.apply_text() == "Cancel"
    controller.apply()                                  # the same button now cancels
    controller.wait(timeout=20)
    assert controller.job.status == "cancelled" and controller.apply_text() == "Apply"


def test_apply_is_off_while_training(controller, case, bundle_dir) -> None:
    controller.update(flair=case["flair"], model_dir=bundle_dir)
    _sleeping(controller, "train")
    assert not controller.enabled()["applyButton"] and controller.apply_text() == "Apply"


def test_review_table_and_threshold_need_rows(controller, scene, case) -> None:
    assert not controller.enabled()["reviewTableView"]
    assert not controller.enabled()["thresholdSliderWidget"]
    _review(controller, scene, case["flair"])
    assert controller.enabled()["reviewTableView"] and controller.enabled()["thresholdSliderWidget"]


def test_next_flagged_needs_a_flagged_slice_still_to_review(controller, scene, case) -> None:
    assert not controller.enabled()["nextFlaggedButton"]            # no review yet
    _review(controller, scene, case["flair"])
    controller.set_threshold(0.5)                                   # not the config's default
    assert controller.enabled()["nextFlaggedButton"]                # slice 2 is flagged
    controller.select_row(0)
    controller.accept()
    assert not controller.enabled()["nextFlaggedButton"]            # none left to review
    controller.set_threshold(0.4)                                   # slice 3 joins
    assert controller.enabled()["nextFlaggedButton"]
    _sleeping(controller, "segment")                                # a new result is coming
    assert not controller.enabled()["nextFlaggedButton"]


def test_accept_and_reject_need_a_selected_row(controller, scene, case) -> None:
    _review(controller, scene, case["flair"])
    assert not controller.enabled()["acceptButton"] and not controller.enabled()["rejectButton"]
    controller.select_row(0)
    assert controller.enabled()["acceptButton"] and controller.enabled()["rejectButton"]
    _sleeping(controller, "segment")                    # a new result is on its way
    assert not controller.enabled()["acceptButton"] and not controller.enabled()["rejectButton"]


def test_correct_needs_a_selected_row_and_a_segmentation(controller, scene, case) -> None:
    _review(controller, scene, case["flair"], with_segmentation=False)
    controller.select_row(1)
    assert controller.enabled()["acceptButton"] and not controller.enabled()["correctButton"]
    _review(controller, scene, case["flair"])
    controller.select_row(1)
    assert controller.enabled()["correctButton"]


def test_cohort_path_only_for_the_cohort_source(controller) -> None:
    assert controller.enabled()["cohortPathLineEdit"]
    controller.update(train_source="volumes")
    assert not controller.enabled()["cohortPathLineEdit"]


def test_slice_buttons_need_volumes_source_and_a_reference(controller, case) -> None:
    controller.update(train_source="volumes")
    assert not controller.enabled()["firstSliceButton"]
    controller.update(flair=case["flair"])             # the reference defaults to the FLAIR
    assert controller.enabled()["firstSliceButton"] and controller.enabled()["lastSliceButton"]
    controller.update(train_source="cohort")
    assert not controller.enabled()["firstSliceButton"] and not controller.enabled()["lastSliceButton"]


def test_clear_ranges_needs_marked_cases(controller, case) -> None:
    controller.update(train_source="volumes", flair=case["flair"])
    assert not controller.enabled()["clearRangesButton"]
    controller.mark_slice("first", 2)
    assert controller.enabled()["clearRangesButton"]
    controller.clear_ranges()
    assert not controller.enabled()["clearRangesButton"] and controller.params.ranges == {}


def test_train_needs_data_and_a_new_run_folder(controller, case, tmp_path) -> None:
    assert not controller.enabled()["trainButton"]     # no cohort chosen
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    controller.update(cohort_dir=cohort)
    assert controller.enabled()["trainButton"]          # run folder: a default on click
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "manifest.json").write_text("{}")
    controller.update(run_dir=tmp_path / "used")
    assert "not empty" in controller.train_problem() and not controller.enabled()["trainButton"]
    controller.update(run_dir=tmp_path / "new", train_source="volumes", flair=case["flair"])
    assert not controller.enabled()["trainButton"]     # no range marked yet
    controller.mark_slice("first", 2)
    assert not controller.enabled()["trainButton"]     # half a range
    controller.mark_slice("last", 5)
    assert controller.enabled()["trainButton"]
    _sleeping(controller, "segment")
    assert not controller.enabled()["trainButton"]


def test_train_cancel_only_while_training(controller) -> None:
    assert not controller.enabled()["trainCancelButton"]
    _sleeping(controller, "segment")
    assert not controller.enabled()["trainCancelButton"]
    controller.cancel(wait=True)
    _sleeping(controller, "resume")
    assert controller.enabled()["trainCancelButton"]


def test_resume_needs_an_unfinished_run_and_its_data(controller, tmp_path, write_bundle) -> None:
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    run = write_bundle(tmp_path / "run", statuses={"classifier": "done", "seeds": "failed"})
    controller.update(run_dir=run)
    assert not controller.enabled()["resumeButton"]    # data unknown
    controller.update(cohort_dir=cohort)
    assert controller.enabled()["resumeButton"]
    write_bundle(run, statuses={"classifier": "done", "seeds": "done"})
    assert not controller.enabled()["resumeButton"]    # finished
    controller.failed_runs.add(str(run))               # ... but its last job was cancelled
    assert controller.enabled()["resumeButton"]
    _sleeping(controller, "train")
    assert not controller.enabled()["resumeButton"]


def test_retrain_needs_reviewed_annotations_and_a_bundle(controller, scene, case,
                                                         bundle_dir) -> None:
    controller.update(model_dir=bundle_dir)
    _review(controller, scene, case["flair"])
    controller.select_row(0)
    assert not controller.enabled()["retrainButton"]
    controller.reject()                                 # a rejected slice teaches nothing
    assert not controller.enabled()["retrainButton"]
    controller.select_row(1)
    controller.accept()
    assert controller.enabled()["retrainButton"]
    controller.update(model_dir=None)
    assert not controller.enabled()["retrainButton"]


def test_export_buttons_need_a_folder_and_their_content(controller, scene, case,
                                                        tmp_path) -> None:
    names = ("exportSegmentationButton", "exportLabelmapButton", "exportCsvButton",
             "exportJsonButton")
    assert controller.enabled()["exportPathLineEdit"] and controller.enabled()["reviewerLineEdit"]
    assert not any(controller.enabled()[n] for n in names)
    controller.update(export_dir=tmp_path / "export")
    assert not any(controller.enabled()[n] for n in names)
    _review(controller, scene, case["flair"], with_segmentation=False)
    assert [controller.enabled()[n] for n in names] == [False, False, True, False]
    _review(controller, scene, case["flair"])
    assert all(controller.enabled()[n] for n in names)


# ------------------------------------------------------------------ what the clicks do

def test_auto_map_fills_selectors_and_reference(controller, scene, case, add_volume) -> None:
    add_volume(scene, "something else")
    found = controller.auto_map()
    p = controller.params
    assert set(found) == {"flair", "t1"} and p.flair is case["flair"] and p.t1 is case["t1"]
    assert p.reference is case["flair"] and p.t2 is None
    other = add_volume(scene, "caseB_flair")
    controller.set_input("flair", other)
    controller.auto_map(only_empty=True)                # what entering the module does
    assert controller.params.flair is other


def test_threshold_row_click_and_decisions(controller, scene, case, red_view, view,
                                           tmp_path) -> None:
    reference = case["flair"]
    _review(controller, scene, reference)
    table = controller.params.review_table
    assert [r["flagged"] for r in nodes.rows_from_review_table(table)] == [True, False, False]
    assert controller.set_threshold(0.4) == 1                       # priority 0.45 ≥ 0.4
    assert [r["flagged"] for r in nodes.rows_from_review_table(table)] == [True, True, False]
    assert controller.params.threshold == 0.4 and controller.threshold_value() == 0.4
    assert controller.params.difference_threshold == defaults.DIFFERENCE_THRESHOLD

    assert controller.select_row(1) == 3                # row 1 is slice 3
    assert logic.current_slice_index(scene, reference) == 3
    assert controller.select_row(99) is None and controller.selected_row is None

    controller.update(reviewer="dr who")
    controller.select_row(0)
    controller.accept()
    controller.select_row(1)
    controller.correct()
    assert view.edited == [controller.params.segmentation]
    controller.select_row(2)
    controller.reject()
    rows = nodes.rows_from_review_table(table)
    assert [r["status"] for r in rows] == [ACCEPTED, CORRECTED, REJECTED]
    assert {r.who for r in controller.review.rows} == {"dr who"}
    assert controller.status_texts()["reviewCountsLabel"].startswith(
        "2 flagged · 0 still to review · 3 reviewed")


def test_exports_ask_before_overwriting(controller, scene, case, view, tmp_path) -> None:
    import SimpleITK as sitk

    _review(controller, scene, case["flair"])
    controller.update(export_dir=tmp_path / "export", reviewer="dr who")
    controller.select_row(0)
    controller.accept()
    written = [controller.export_segmentation(), controller.export_labelmap(),
               controller.export_csv(), controller.export_json()]
    assert [p.name for p in written] == ["caseA_weakseg.seg.nrrd", "caseA_weakseg.nii.gz",
                                         "caseA_review.csv", "caseA_review.json"]
    assert not view.questions
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(written[1])))
    assert labels.sum() == 2 * 3 * 3
    assert "accepted,dr who" in written[2].read_text()
    document = json.loads(written[3].read_text())
    assert document["records"][0]["status"] == ACCEPTED and document["reviewer"] == "dr who"
    assert Path(document["labels"]).is_file()

    controller.select_row(1)
    controller.reject()
    view.answer = False                                  # "Overwrite?" → no
    assert controller.export_csv() is None
    assert "rejected" not in written[2].read_text() and len(view.questions) == 1
    view.answer = True
    assert controller.export_csv() == written[2] and "rejected" in written[2].read_text()


def test_marked_ranges_and_training_inputs(controller, scene, case, red_view, tmp_path) -> None:
    controller.update(train_source="volumes", flair=case["flair"], t1=case["t1"],
                      run_dir=tmp_path / "run")
    logic.jump_to_slice(scene, case["flair"], 5)         # the user scrolls the Red view
    controller.mark_slice("last")
    logic.jump_to_slice(scene, case["flair"], 2)
    controller.mark_slice("first")
    assert controller.params.ranges == {"caseA": (2, 5)}
    assert controller.status_texts()["rangesLabel"] == "caseA: 2–5"
    controller.python = sys.executable                   # start, check the command, stop
    controller.train_extra = ("--stages", "classifier")
    job = controller.train()
    try:
        inputs = controller.training_inputs_dir(tmp_path / "run")
        assert (inputs / "ranges.csv").read_text().splitlines() == ["case,first_slice,last_slice",
                                                                    "caseA,2,5"]
        assert sorted(p.name for p in (inputs / "cohort" / "caseA").iterdir()) == \
            ["caseA_flair.nii", "caseA_t1.nii"]
        assert job.command[4:6] == ["train", "--data"] and "--ranges" in job.command
        assert job.command[job.command.index("--stages") + 1] == "classifier"
    finally:
        controller.cancel(wait=True)
    assert group_members(job.pgid) == []


def test_errors_reach_the_view(controller, view) -> None:
    assert controller.apply() is None and view.errors == ["select a FLAIR volume"]
    assert controller.train() is None and "cohort" in view.errors[-1]
    assert controller.resume() is None and controller.retrain() is None
    assert len(view.errors) == 4


def test_retrain_exports_the_records_and_runs_mixed_training(controller, scene, case,
                                                             bundle_dir) -> None:
    controller.python = sys.executable
    controller.update(model_dir=bundle_dir)
    _review(controller, scene, case["flair"])
    controller.select_row(1)
    controller.correct()
    assert controller.retrain() is None and "FLAIR" in controller.view.errors[-1]
    controller.update(flair=case["flair"])
    job = controller.retrain()
    try:
        command = job.command
        assert command[4:7] == ["train", "--mode", "mixed"]
        data = Path(command[command.index("--data") + 1])
        assert sorted(p.name for p in (data / "caseA").iterdir()) == ["caseA_flair.nii"]
        records = Path(command[command.index("--review") + 1])
        assert Path(command[command.index("--out") + 1]).name.startswith("bundle-mixed-")
        document = json.loads(records.read_text())
        record, = document["records"]
        assert (record["case"], record["slice"], record["status"]) == ("caseA", 3, CORRECTED)
        assert record["reviewer"] and record["time"]
        assert (records.parent / record["mask_path"]).is_file()
        labels = Path(command[command.index("--labels") + 1]).read_text().splitlines()
        assert labels[0] == "case,slice,label" and labels[3] == "caseA,2,1"   # segmented slice
        assert labels[1] == "caseA,0,0"
        assert controller.training and controller.enabled()["trainCancelButton"]
    finally:
        controller.cancel(wait=True)


def test_retrain_refines_a_weak_run_with_a_self_trained_segmenter(controller, scene, case,
                                                                  tmp_path, write_bundle
                                                                  ) -> None:
    """A weak run's own segmenter learns from the corrections (``--base``, issue 13)."""
    weak = write_bundle(tmp_path / "weak", statuses={"classifier": "done",
                                                      "self_train": "done"})
    controller.python = sys.executable
    controller.update(model_dir=weak, flair=case["flair"])
    _review(controller, scene, case["flair"])
    controller.select_row(1)
    controller.correct()
    job = controller.retrain()
    try:
        command = job.command
        assert command[command.index("--base") + 1] == str(weak)
        assert Path(command[command.index("--out") + 1]).name.startswith("weak-reviewed-")
    finally:
        controller.cancel(wait=True)
    assert not bundle.refinable(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    assert not bundle.refinable(tmp_path / "broken")


def test_review_records_read_by_mixed_supervision(controller, scene, case, tmp_path) -> None:
    """The JSON the Export section writes is what ``train --mode mixed --review`` reads."""
    records = pytest.importorskip("WeakSegLib.mixed.records")
    _review(controller, scene, case["flair"])
    controller.update(export_dir=tmp_path / "export")
    controller.select_row(0)
    controller.accept()
    controller.select_row(2)
    controller.reject()
    path = controller.export_json()
    loaded = records.load_review_records(path)
    assert [(r.case, r.slice, r.status) for r in loaded] == [("caseA", 2, ACCEPTED),
                                                              ("caseA", 4, REJECTED)]
    shape = nodes.geometry_of_volume_node(case["flair"]).shape
    reviewed = records.review_annotations(loaded, {"caseA": shape}, source=path)["caseA"]
    assert reviewed.annotated.nonzero()[0].tolist() == [2]
    assert reviewed.mask[2].sum() == 9                  # slice 2 of the segmentation


def test_review_comes_back_from_the_table_of_a_loaded_scene(controller, scene, case,
                                                            view, tmp_path) -> None:
    _review(controller, scene, case["flair"])
    controller.select_row(0)
    controller.accept()
    reopened = PanelController(scene, view, work_root=tmp_path)   # e.g. after a scene load
    assert reopened.review is None and not reopened.enabled()["acceptButton"]
    assert reopened.restore_review() and not reopened.restore_review()
    assert [r.status for r in reopened.review.rows] == [ACCEPTED, "pending", "pending"]
    assert reopened.review.case == "caseA" and reopened.enabled()["thresholdSliderWidget"]


def test_a_job_that_cannot_start_leaves_the_panel_free(controller, view, tmp_path) -> None:
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    controller.update(cohort_dir=cohort, run_dir=tmp_path / "run")
    controller.python = str(tmp_path / "no-such-python")
    assert controller.train() is None and "could not start train" in view.errors[-1]
    assert not controller.busy and controller.enabled()["trainButton"]


# ------------------------------------------------------------------ issue 13: review priority

def test_panel_defaults_are_configs(controller) -> None:
    inference = get_profile(defaults.PROFILE).inference
    p = controller.params
    assert p.method == inference.default_method
    assert p.threshold == inference.review_threshold
    assert p.difference_threshold == inference.difference_threshold
    assert p.postprocess_ops == inference.postprocess
    assert controller.threshold_value() == inference.review_threshold


def test_next_flagged_moves_the_views_in_priority_order_and_wraps(controller, scene, case,
                                                                  red_view) -> None:
    reference = case["flair"]
    rows = [ReviewRow(z, 0.5, 0.3, review_priority=p)
            for z, p in enumerate([0.1, 0.7, 0.2, 0.95, 0.6, 0.8, 0.3, 0.55])]
    _review(controller, scene, reference, rows=rows)
    assert [r.slice for r in controller.review.rows] == [3, 5, 1, 4, 7, 6, 2, 0]
    assert [r["slice"] for r in nodes.rows_from_review_table(controller.params.review_table)] \
        == [3, 5, 1, 4, 7, 6, 2, 0]                                  # the table shows that order
    assert controller.review.counts()["flagged"] == 5               # priority ≥ 0.5
    assert controller.next_flagged() == 3                           # the highest priority
    assert controller.selected_row == 0 and logic.current_slice_index(scene, reference) == 3
    controller.accept()
    assert controller.next_flagged() == 5
    controller.select_row(3)                                        # a click on slice 4's row
    assert controller.next_flagged() == 7                           # goes on from there
    assert logic.current_slice_index(scene, reference) == 7
    assert controller.next_flagged() == 5                           # wraps, skips reviewed 3
    controller.reject()
    assert "5 flagged · 3 still to review" in controller.status_texts()["reviewCountsLabel"]
    for _ in range(3):
        controller.next_flagged()
        controller.accept()
    assert controller.next_flagged() is None and controller.selected_row == 4   # stays
    assert not controller.enabled()["nextFlaggedButton"]
    assert controller.status_texts()["reviewCountsLabel"].startswith(
        "5 flagged · 0 still to review · 5 reviewed")


def _segment(controller, scene, add_volume, fake_segment_python, bundle_dir):
    flair = add_volume(scene, "caseA_flair")
    controller.python = fake_segment_python
    controller.update(model_dir=bundle_dir, flair=flair, reference=flair, postprocess=False)
    job = controller.apply()
    assert controller.wait(60) == "done", job.error_message()
    return job


def test_a_segment_run_is_reviewed_by_priority(controller, scene, add_volume, view,
                                               fake_segment_python, bundle_dir) -> None:
    job = _segment(controller, scene, add_volume, fake_segment_python, bundle_dir)
    assert "--method" not in job.command          # config's default: segment picks for the run
    assert controller.last_result.label_path.name == f"caseA_{defaults.METHOD}.nii.gz"
    review = controller.review
    assert review.by_priority and LEGACY_NOTE not in view.messages
    priorities = [r.review_priority for r in review.rows]
    assert priorities == sorted(priorities, reverse=True) and len(priorities) == 8
    table = nodes.rows_from_review_table(controller.params.review_table)
    assert [r["review_priority"] for r in table] == priorities
    threshold = defaults.REVIEW_THRESHOLD
    assert [r["flagged"] for r in table] == [p >= threshold for p in priorities]
    controller.set_threshold(0.0)
    assert all(r["flagged"] for r in nodes.rows_from_review_table(controller.params.review_table))
    assert controller.params.threshold == 0.0


def test_an_older_result_without_priority_is_flagged_by_difference_score(
        controller, scene, add_volume, view, fake_segment_python, bundle_dir,
        monkeypatch) -> None:
    monkeypatch.setenv("WEAKSEG_FAKE_OLD_CSV", "1")
    _segment(controller, scene, add_volume, fake_segment_python, bundle_dir)
    review = controller.review
    assert not review.by_priority and review.threshold == defaults.DIFFERENCE_THRESHOLD
    assert view.messages.count(LEGACY_NOTE) == 1                    # said once
    scored = [r for r in review.rows if r.difference_score is not None]
    assert scored and [r.difference_score for r in scored] == \
        sorted(r.difference_score for r in scored)                  # lowest D first
    assert [r.flagged for r in review.rows] == [
        r.difference_score is not None and r.difference_score < defaults.DIFFERENCE_THRESHOLD
        for r in review.rows]
    assert controller.threshold_value() == defaults.DIFFERENCE_THRESHOLD
    assert "flagged by difference score" in controller.status_texts()["reviewCountsLabel"]
    # the slider moves the difference-score threshold, not the priority one
    controller.set_threshold(1.0)
    assert controller.params.difference_threshold == 1.0
    assert controller.params.threshold == defaults.REVIEW_THRESHOLD
    assert [r.flagged for r in review.rows] == [r.difference_score is not None
                                                for r in review.rows]
    assert view.messages.count(LEGACY_NOTE) == 1                    # not again on re-flagging
    table = nodes.rows_from_review_table(controller.params.review_table)
    assert all(r["review_priority"] is None for r in table)


def test_an_older_review_table_in_a_saved_scene_comes_back(controller, scene, case, view,
                                                           tmp_path) -> None:
    _review(controller, scene, case["flair"], rows=[ReviewRow(2, 0.9, 0.1),
                                                    ReviewRow(3, 0.8, 0.5)])
    table = controller.params.review_table
    table.RemoveColumn(table.GetColumnIndex("priority"))           # as an older WeakSeg saved it
    reopened = PanelController(scene, view, work_root=tmp_path)
    assert reopened.restore_review() and not reopened.review.by_priority
    assert [r.flagged for r in reopened.review.rows] == [True, False]
    assert view.messages.count(LEGACY_NOTE) == 1
    assert table.GetColumnIndex("priority") == 1                   # refilled with today's columns

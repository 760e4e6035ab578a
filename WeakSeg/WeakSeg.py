"""WeakSeg: weakly supervised brain-tumour segmentation in 3D Slicer.

A thin module. The panel's rules live in ``WeakSegLib.slicer.controller`` (tested headless on
real MRML), node I/O in ``WeakSegLib.slicer.nodes``/``logic``, background jobs in
``WeakSegLib.slicer.jobs``. This file loads the .ui, forwards every click to the controller and
copies the controller's state back onto the widgets — nothing else.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import ctk
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest,
                                           ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


def _add_library_path() -> None:
    """Make ``WeakSegLib`` importable: beside this file once installed, the repository's root
    when the module is used from a checkout (Additional module paths)."""
    here = Path(__file__).resolve().parent
    for candidate in (here, here.parent):
        if (candidate / "WeakSegLib" / "__init__.py").is_file():
            if str(candidate) not in sys.path:
                sys.path.insert(0, str(candidate))
            return


_add_library_path()

from WeakSegLib.slicer import defaults, install  # noqa: E402
from WeakSegLib.slicer.controller import SELECTORS, PanelController  # noqa: E402
from WeakSegLib.slicer.nodes import column_titles_as_header  # noqa: E402
from WeakSegLib.slicer.parameters import get_parameter_node  # noqa: E402

README = "https://github.com/weakseg/WeakSeg#use-in-3d-slicer"
POLL_MS = 250


def _child(widget, class_name: str):
    """The first child widget of a class (e.g. the QLineEdit inside a ctkPathLineEdit), or None."""
    found = slicer.util.findChildren(widget, className=class_name)
    return found[0] if found else None


def _setNode(selector, node) -> None:
    if selector.currentNode() is not node:
        selector.setCurrentNode(node)


#
# Module
#

class WeakSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "WeakSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["WeakSeg contributors (https://github.com/weakseg/WeakSeg)"]
        self.parent.helpText = (
            "Segments brain tumours in MR volumes with a model trained from slice-level labels "
            "only (tumour / no tumour per axial slice), flags the slices it is unsure of for "
            "review, and retrains from the reviewed slices. "
            f'See the <a href="{README}">README</a> for installation and a walk-through.')
        self.parent.acknowledgementText = (
            "WeakSeg implements the pipeline of <i>A novel GAN-based paradigm for weakly "
            "supervised brain tumor segmentation of MR images</i>; mixed supervision follows "
            "Mlynarski, Delingette, Criminisi and Ayache, <i>Deep Learning with Mixed Supervision "
            "for Brain Tumor Segmentation</i> (J. Med. Imaging 2019) and P. Mlynarski's thesis "
            "<i>Deep Learning for Segmentation of Brain Tumors and Organs at Risk in Radiotherapy "
            "Planning</i> (Université Côte d'Azur, 2019); Grad-CAM++ seeds follow Viniavskyi, "
            "Dobko and Dobosevych, <i>Weakly-Supervised Segmentation for Disease Localization in "
            "Chest X-Ray Images</i> (AIME 2020). BraTS data © the BraTS organisers.")


#
# Widget
#

class SlicerView:
    """The controller's way to the user: Slicer dialogs, slice views and the Segment Editor."""

    def __init__(self, widget: "WeakSegWidget"):
        self.widget = widget

    def ask(self, question: str) -> bool:
        return slicer.util.confirmYesNoDisplay(question, windowTitle="WeakSeg")

    def error(self, message: str) -> None:
        text, _, details = message.partition("\n\nLast lines of the log:\n")
        logging.error(message)
        extra = {"detailedText": details} if details else {}   # None would show as "None"
        slicer.util.errorDisplay(text, windowTitle="WeakSeg", **extra)

    def info(self, message: str) -> None:
        logging.info(message)
        slicer.util.showStatusMessage(message, 5000)

    def show_result(self, segmentation, reference) -> None:
        slicer.util.setSliceViewerLayers(background=reference, fit=True)
        display = segmentation.GetDisplayNode()
        if display is not None:
            display.SetVisibility(True)

    def open_segment_editor(self, segmentation, reference) -> None:
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        if hasattr(editor, "setSourceVolumeNode"):
            editor.setSourceVolumeNode(reference)
        else:                                     # Slicer < 5.4
            editor.setMasterVolumeNode(reference)


class WeakSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.controller = None
        self._updating = False
        self._timer = None
        self._probe = None
        self._observed_parameter_node = None
        self._shownRow = None              # the review row the table view last selected
        self._shownTable = None            # (node, MTime) the table's columns were sized for

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/WeakSeg.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        for name in ("modelPathLineEdit", "cohortPathLineEdit", "trainRunPathLineEdit",
                     "exportPathLineEdit"):
            getattr(self.ui, name).filters = ctk.ctkPathLineEdit.Dirs

        self.logic = WeakSegLogic()
        self.controller = self.logic.controller(SlicerView(self))
        self.controller.listeners.append(self.updateGUIFromController)
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.connect("timeout()", self.onTimer)
        self._connect()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self._observeParameterNode()
        self.updateGUIFromParameterNode()
        self.updateGUIFromController()

    def _observeParameterNode(self) -> None:
        """Follow the parameter node: a loaded scene, the console or another widget may change
        it, and the widgets must show what it holds."""
        node = self.controller.parameter_node
        if node is self._observed_parameter_node:
            return
        if self._observed_parameter_node is not None:
            self.removeObserver(self._observed_parameter_node, vtk.vtkCommand.ModifiedEvent,
                                self.onParameterNodeModified)
        self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._observed_parameter_node = node

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        self.updateGUIFromParameterNode()
        self.updateGUIFromController()

    def _connect(self) -> None:
        ui, c = self.ui, self.controller
        for key, name in SELECTORS.items():
            getattr(ui, name).connect("currentNodeChanged(vtkMRMLNode*)",
                                      lambda node, key=key: self._set(**{key: node}))
        ui.referenceSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                     lambda node: self._set(reference=node))
        ui.autoMapButton.connect("clicked(bool)", lambda _: c.auto_map())
        self._connectPath(ui.modelPathLineEdit, "model_dir")
        ui.deviceComboBox.connect("currentTextChanged(QString)",
                                  lambda text: self._set(device=text))
        ui.installButton.connect("clicked(bool)", lambda _: self.onInstall())
        ui.postprocessCheckBox.connect("toggled(bool)", lambda on: self._set(postprocess=on))
        ui.postprocessOpsLineEdit.connect(
            "editingFinished()", lambda: self._set(postprocess_ops=ui.postprocessOpsLineEdit.text))
        ui.applyButton.connect("clicked(bool)", lambda _: self._run(self.onApply))
        ui.reviewTableView.connect("clicked(QModelIndex)", self.onTableClicked)
        ui.thresholdSliderWidget.connect("valueChanged(double)", self.onThreshold)
        ui.nextFlaggedButton.connect("clicked(bool)", lambda _: c.next_flagged())
        ui.acceptButton.connect("clicked(bool)", lambda _: c.accept())
        ui.correctButton.connect("clicked(bool)", lambda _: c.correct())
        ui.rejectButton.connect("clicked(bool)", lambda _: c.reject())
        ui.trainCohortRadioButton.connect(
            "toggled(bool)", lambda on: self._set(train_source="cohort" if on else "volumes"))
        self._connectPath(ui.cohortPathLineEdit, "cohort_dir")
        ui.firstSliceButton.connect("clicked(bool)", lambda _: self._run(c.mark_slice, "first"))
        ui.lastSliceButton.connect("clicked(bool)", lambda _: self._run(c.mark_slice, "last"))
        ui.clearRangesButton.connect("clicked(bool)", lambda _: c.clear_ranges())
        self._connectPath(ui.trainRunPathLineEdit, "run_dir")
        ui.trainButton.connect("clicked(bool)", lambda _: self._run(self._startJob, c.train))
        ui.trainCancelButton.connect("clicked(bool)", lambda _: c.cancel())
        ui.resumeButton.connect("clicked(bool)", lambda _: self._run(self._startJob, c.resume))
        ui.retrainButton.connect("clicked(bool)", lambda _: self._run(self._startJob, c.retrain))
        self._connectPath(ui.exportPathLineEdit, "export_dir")
        ui.reviewerLineEdit.connect(
            "editingFinished()", lambda: self._set(reviewer=ui.reviewerLineEdit.text))
        for name, action in (("exportSegmentationButton", c.export_segmentation),
                             ("exportLabelmapButton", c.export_labelmap),
                             ("exportCsvButton", c.export_csv), ("exportJsonButton", c.export_json)):
            getattr(ui, name).connect("clicked(bool)", lambda _, a=action: self._export(a))

    def _connectPath(self, pathLineEdit, key: str) -> None:
        """Commit a path when the user is done with it, never per keystroke.

        ctkPathLineEdit emits currentPathChanged on every keystroke; writing the normalised
        path back then turns "runs/case1" into "runscase1". So the path is committed when
        its line edit finishes editing (Return, focus out), after Browse, and when it changes
        while the user is not typing in it (history, a script).
        """
        lineEdit = _child(pathLineEdit, "QLineEdit")
        commit = lambda *_: self._set(**{key: pathLineEdit.currentPath})
        if lineEdit is not None:
            lineEdit.connect("editingFinished()", commit)
        browse = _child(pathLineEdit, "QToolButton")
        if browse is not None:
            browse.connect("clicked()", commit)               # runs after ctk's browse()
        pathLineEdit.connect(
            "currentPathChanged(QString)",
            lambda _path: None if lineEdit is not None and lineEdit.hasFocus() else commit())

    # ------------------------------------------------------------ forwarding

    def _set(self, **changes) -> None:
        if not self._updating:
            self.controller.update(**changes)

    def _run(self, action, *args):
        with slicer.util.tryWithErrorDisplay("WeakSeg: the action failed.", waitCursor=True):
            return action(*args)

    def _dependencies_ready(self) -> bool:
        missing = install.ensure_dependencies(slicer.util.confirmOkCancelDisplay,
                                              slicer.util.pip_install)
        self.checkEnvironment()
        if missing:
            slicer.util.errorDisplay("WeakSeg cannot run without: " + ", ".join(missing))
        return not missing

    def onApply(self) -> None:
        """Apply, or Cancel while segmenting (the controller knows which)."""
        if self.controller.segmenting:
            self.controller.apply()
        else:
            self._startJob(self.controller.apply)

    def _startJob(self, start) -> None:
        if self._dependencies_ready() and start() is not None:
            self._timer.start()

    def _export(self, action) -> None:
        path = self._run(action)
        if path:
            slicer.util.showStatusMessage(f"WeakSeg: wrote {path}", 5000)

    def onInstall(self) -> None:
        with slicer.util.tryWithErrorDisplay("Installing WeakSeg's dependencies failed.",
                                             waitCursor=True):
            self._dependencies_ready()

    def checkEnvironment(self) -> None:
        """Find torch, CUDA and the GPU in a subprocess (never by importing torch here)."""
        if self._probe is not None and self._probe.running:
            return
        self.ui.environmentLabel.text = "checking…"
        self._probe = install.EnvironmentProbe().start()
        self._timer.start()

    def onTimer(self) -> None:
        job_running = self.controller.poll()
        probing = False
        if self._probe is not None:
            line = self._probe.poll()
            probing = line is None
            if line is not None:
                self.ui.environmentLabel.text = line
                self._probe = None
        if not job_running and not probing:
            self._timer.stop()

    def onTableClicked(self, index) -> None:
        """A row click: the view's index → its table model's → the table node's row.

        qMRMLTableModel.mrmlTableRowIndex is not callable from Python, and the model shows the
        column titles as a first row unless the node uses them as the header.
        """
        view = self.ui.reviewTableView
        proxy = view.sortFilterProxyModel() if hasattr(view, "sortFilterProxyModel") else None
        if proxy is not None and index.model() is proxy:
            index = proxy.mapToSource(index)
        self.controller.select_model_index(index.row(), index.column(),
                                           bool(getattr(view, "transposed", False)))

    def onThreshold(self, value: float) -> None:
        if not self._updating:
            self.controller.set_threshold(value)

    # ------------------------------------------------------------ back onto the widgets

    def updateGUIFromParameterNode(self) -> None:
        """The settings stored in the parameter node onto their widgets.

        A widget already showing the value is left alone, and so is a text field the user is
        typing in: a job's progress must never rewrite what is being typed.
        """
        if self._updating or self.controller is None:
            return
        self._updating = True
        try:
            ui, p = self.ui, self.controller.params
            for key, name in SELECTORS.items():
                _setNode(getattr(ui, name), getattr(p, key))
            _setNode(ui.referenceSelector, p.reference)
            for name, value in (("modelPathLineEdit", p.model_dir),
                                ("cohortPathLineEdit", p.cohort_dir),
                                ("trainRunPathLineEdit", p.run_dir),
                                ("exportPathLineEdit", p.export_dir)):
                widget = getattr(ui, name)
                lineEdit = _child(widget, "QLineEdit")
                text = str(value or "")
                shown = widget.currentPath
                same = (shown == text) or (shown and text and Path(shown) == Path(text))
                if not same and not (lineEdit and lineEdit.hasFocus()):
                    widget.currentPath = text           # "runs/" stays as typed: same path
            index = max(0, ui.deviceComboBox.findText(p.device))
            if ui.deviceComboBox.currentIndex != index:
                ui.deviceComboBox.setCurrentIndex(index)
            if ui.postprocessCheckBox.checked != p.postprocess:
                ui.postprocessCheckBox.checked = p.postprocess
            for name, text in (("postprocessOpsLineEdit", p.postprocess_ops),
                               ("reviewerLineEdit", p.reviewer)):
                widget = getattr(ui, name)
                if widget.text != text and not widget.hasFocus():
                    widget.text = text
            ui.modelPathLineEdit.toolTip = (
                f"The model shipped with WeakSeg ({defaults.default_model_summary(p.model_dir)}):"
                f" {p.model_dir}" if defaults.is_default_model(p.model_dir)
                else str(p.model_dir or "")) or \
                "A WeakSeg run folder (manifest.json and the trained stages)."
            ui.trainCohortRadioButton.checked = p.train_source == "cohort"
            ui.trainVolumesRadioButton.checked = p.train_source == "volumes"
            if ui.reviewTableView.mrmlTableNode() is not p.review_table:
                ui.reviewTableView.setMRMLTableNode(p.review_table)
        finally:
            self._updating = False

    def updateGUIFromController(self) -> None:
        """The controller's state (enabled widgets, texts, progress) onto the widgets; runs at
        every poll of a job, so it touches no field the user edits."""
        if self._updating or self.controller is None:
            return
        self._updating = True
        try:
            ui, c = self.ui, self.controller
            for name, enabled in c.enabled().items():
                getattr(ui, name).enabled = enabled
            ui.applyButton.text = c.apply_text()
            for name, text in c.status_texts().items():
                getattr(ui, name).text = text
            ui.segmentProgressBar.value = c.progress("segment")
            ui.trainProgressBar.value = c.progress("train")
            threshold = c.threshold_value()     # a result without priority: D's threshold
            if abs(ui.thresholdSliderWidget.value - threshold) > 1e-9:
                ui.thresholdSliderWidget.value = threshold
            self._showReviewTable()
        finally:
            self._updating = False

    def _showReviewTable(self) -> None:
        """Size the review table's columns when its content changed, and select the row the
        controller selected (a click, or Next flagged slice) and scroll to it."""
        view, c = self.ui.reviewTableView, self.controller
        table = view.mrmlTableNode()
        if table is None:
            self._shownTable, self._shownRow = None, None
            return
        stamp = (table.GetID(), table.GetMTime())
        if stamp != self._shownTable:           # refilled: size the columns, reselect
            self._shownTable, self._shownRow = stamp, None
            view.resizeColumnsToContents()
        if c.selected_row == self._shownRow:
            return
        self._shownRow = c.selected_row
        if c.selected_row is None:
            view.clearSelection()
            return
        index = view.tableModel().index(
            c.selected_row + (0 if column_titles_as_header(table) else 1), 0)
        proxy = view.sortFilterProxyModel() if hasattr(view, "sortFilterProxyModel") else None
        if proxy is not None:
            index = proxy.mapFromSource(index)
        view.selectRow(index.row())
        view.scrollTo(index)

    # ------------------------------------------------------------ lifecycle

    def enter(self) -> None:
        self._observeParameterNode()
        self.controller.auto_map(only_empty=True)
        self.controller.restore_review()
        if self.ui.environmentLabel.text == "not checked yet":
            self.checkEnvironment()                  # a subprocess: the GUI never imports torch
        self.updateGUIFromParameterNode()
        self.updateGUIFromController()

    def onSceneStartClose(self, caller, event) -> None:
        self.controller.scene_closing()

    def onSceneEndClose(self, caller, event) -> None:
        self.controller.scene_closed()
        self._observeParameterNode()
        self.updateGUIFromParameterNode()
        self.updateGUIFromController()

    def cleanup(self) -> None:
        self.removeObservers()
        if self._timer is not None:
            self._timer.stop()
        if self.controller is not None and self.controller.busy:
            self.controller.cancel(wait=True)       # leave no process behind


#
# Logic
#

class WeakSegLogic(ScriptedLoadableModuleLogic):
    """Delegates to ``WeakSegLib.slicer``; usable from the Python console without the panel."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return get_parameter_node(slicer.mrmlScene, "WeakSeg")

    @staticmethod
    def workRoot() -> Path:
        return Path(slicer.app.temporaryPath) / "WeakSeg"

    def controller(self, view=None) -> PanelController:
        return PanelController(slicer.mrmlScene, view, work_root=self.workRoot())

    def segment(self, flair, model_dir, device: str = "auto", timeout: float = 3600.0, **others):
        """Segment volumes with a bundle and wait: ``logic.segment(flairNode, "/runs/r1")``.

        ``others`` are more modality nodes (``t1=..., t1ce=..., t2=...``). Returns the
        segmentation node; raises with the job's log when it fails.
        """
        controller = self.controller()
        controller.update(flair=flair, reference=flair, model_dir=model_dir, device=device,
                          **others)
        job = controller.apply()
        if job is None:
            raise RuntimeError(controller.segment_problem() or "segmentation did not start")
        status = controller.wait(timeout)
        if status != "done" or controller.last_result is None:
            raise RuntimeError(job.error_message())
        return controller.last_result.segmentation


#
# Test (runs inside Slicer: Reload and Test, or ctest)
#

class WeakSegTest(ScriptedLoadableModuleTest):
    """Loads a phantom case, trains a tiny bundle (or uses $WEAKSEG_TEST_BUNDLE), segments it."""

    TINY = ("data.inplane_scale=1.0", "data.trim_fraction=0.1", "classifier.epochs=2",
            "classifier.time_budget_s=none", "classifier.batch_size=16", "seeds.rise_masks=40",
            "seeds.rise_batch=40", "gan.epochs=2", "converter.epochs=2", "segmenter.epochs=2")

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_phantom()

    def test_segment_phantom(self):
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from WeakSegLib.data.phantom import build_phantom_cohort
        from WeakSegLib.slicer import nodes

        missing = ([] if install.torch_installed() else ["torch"]) + install.missing_requirements()
        if missing:
            self.delayDisplay("WeakSeg test skipped: install its dependencies first ("
                              + ", ".join(missing) + ")")
            return
        self.delayDisplay("Building a phantom cohort")
        root = Path(tempfile.mkdtemp(prefix="WeakSegTest-"))
        build_phantom_cohort(root / "cohort", cases=3, seed=5, shape_scale=0.5,
                             show_progress=False)
        case = sorted((root / "cohort").iterdir())[0]
        volumes = {p.name.split("_")[-1].split(".")[0]: nodes.load_volume_node(slicer.mrmlScene, p)
                   for p in sorted(case.glob("*.nii.gz")) if not p.name.endswith("_seg.nii.gz")}
        controller = WeakSegLogic().controller()
        controller.auto_map()
        self.assertIs(controller.params.flair, volumes["flair"])

        bundle = os.environ.get("WEAKSEG_TEST_BUNDLE")
        if not bundle:
            self.delayDisplay("Training a tiny bundle (a few minutes on a CPU)")
            controller.train_overrides = self.TINY
            controller.update(train_source="cohort", cohort_dir=root / "cohort",
                              run_dir=root / "run", device="cpu")
            self.assertIsNotNone(controller.train())
            self.assertEqual(controller.wait(3600), "done")
            bundle = root / "run"
        controller.update(model_dir=bundle)

        self.delayDisplay("Segmenting")
        self.assertIsNotNone(controller.apply())
        self.assertEqual(controller.wait(1800), "done")
        segmentation = controller.params.segmentation
        self.assertEqual(segmentation.GetSegmentation().GetNthSegment(0).GetName(), "Tumor")
        reference = volumes["flair"]
        labels = nodes.labelmap_from_segmentation_node(segmentation, reference)
        written = sitk.GetArrayFromImage(sitk.ReadImage(str(controller.last_result.label_path)))
        self.assertTrue(np.array_equal(labels, written.astype(np.uint8)))
        self.assertGreater(controller.params.review_table.GetNumberOfRows(), 0)
        self.delayDisplay("Test passed")

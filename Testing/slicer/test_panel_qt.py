"""The panel in real Qt: WeakSeg.ui loaded with PyQt5 (Qt 5, as Slicer 5.x) offscreen, driven by
typing, clicking and sliding on real widgets, and rendered before and after a segmentation.

Slicer's Python talks to Qt through PythonQt (``widget.connect("clicked(bool)", slot)``,
properties as attributes); :class:`PythonQt` gives PyQt5 widgets that face, so ``WeakSeg.py``
runs unchanged. Slicer's own widgets are not in PyQt5, so the .ui's custom widgets are mapped to
stand-ins built from real Qt widgets that behave as the originals do where the panel depends on
it: ctkPathLineEdit emits ``currentPathChanged`` on every keystroke, qMRMLTableView lays a
vtkMRMLTableNode out as qMRMLTableModel does (column titles as a first row unless the node uses
them as the header, a column's title where it has one) behind a QSortFilterProxyModel, qMRMLNodeComboBox lists the scene's nodes.

``WEAKSEG_SCREENSHOTS=1`` writes the renders to ``WeakSeg/Resources/Screenshots/`` (the files the
extension's CMakeLists.txt names) instead of the test's temporary folder.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer.util", reason="slicer-core is not installed: real MRML needed")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtCore = pytest.importorskip("PyQt5.QtCore", reason="PyQt5 is not installed (pip install PyQt5)")
from PyQt5 import QtGui, QtWidgets, uic  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

import slicer  # noqa: E402
import slicer.util  # noqa: E402
from WeakSegLib.data.reader import Geometry  # noqa: E402
from WeakSegLib.slicer import defaults, nodes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "WeakSeg" / "WeakSeg.py"
UI = REPO / "WeakSeg" / "Resources" / "UI" / "WeakSeg.ui"
SCREENSHOTS = REPO / "WeakSeg" / "Resources" / "Screenshots"
CASE_GRID = Geometry((40, 36, 24), (1.0, 1.0, 2.0), (-20.0, 18.0, -24.0),
                     (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


# ------------------------------------------------------------------ PythonQt's face on PyQt5

def _unwrap(value):
    return value._obj if isinstance(value, PythonQt) else value


class PythonQt:
    """A PyQt5 object as PythonQt shows it to Slicer modules: Qt properties as attributes,
    ``connect("signal(args)", slot)``."""

    def __init__(self, obj):
        object.__setattr__(self, "_obj", obj)

    def _is_property(self, name: str) -> bool:
        return self._obj.metaObject().indexOfProperty(name) >= 0

    def __getattr__(self, name):
        if self._is_property(name):
            return self._obj.property(name)
        attribute = getattr(self._obj, name)
        if callable(attribute):
            return lambda *args: attribute(*[_unwrap(a) for a in args])
        return attribute

    def __setattr__(self, name, value):
        if self._is_property(name):
            if not self._obj.setProperty(name, value):
                raise AttributeError(f"{type(self._obj).__name__}.{name} rejected {value!r}")
        else:
            setattr(self._obj, name, value)

    def connect(self, signature: str, slot) -> None:
        name, _, rest = signature.partition("(")
        count = len([a for a in rest.rstrip(")").split(",") if a.strip()])
        getattr(self._obj, name).connect(lambda *args: slot(*args[:count]))

    def __eq__(self, other):
        return _unwrap(other) is self._obj

    __hash__ = object.__hash__


# ------------------------------------------------------------------ Slicer's widgets, stood in

class qMRMLWidget(QtWidgets.QWidget):
    mrmlSceneChanged = QtCore.pyqtSignal(object)

    def setMRMLScene(self, scene) -> None:
        self.scene = scene
        self.mrmlSceneChanged.emit(scene)


class qMRMLNodeComboBox(QtWidgets.QComboBox):
    """Lists the scene's nodes of ``nodeTypes`` (and "None"); emits currentNodeChanged."""

    currentNodeChanged = QtCore.pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.scene, self.types, self._nodes = None, [], [None]
        self.currentIndexChanged.connect(self._picked)

    def setNodeTypes(self, types_) -> None:
        self.types = list(types_)

    def setNoneEnabled(self, on: bool) -> None:        # the stand-in always offers "None"
        self.noneEnabled = on

    def setAddEnabled(self, on: bool) -> None:
        self.addEnabled = on

    def setRemoveEnabled(self, on: bool) -> None:
        self.removeEnabled = on

    def setShowChildNodeTypes(self, on: bool) -> None:
        self.showChildNodeTypes = on

    def setMRMLScene(self, scene) -> None:
        self.scene = scene
        self._refresh()

    def _refresh(self) -> None:
        current = self.currentNode()
        found = [None]
        if self.scene is not None:
            for cls in self.types:
                for i in range(self.scene.GetNumberOfNodesByClass(cls)):
                    node = self.scene.GetNthNodeByClass(i, cls)
                    if node.IsA("vtkMRMLLabelMapVolumeNode") or node in found:
                        continue
                    found.append(node)
        blocked = self.blockSignals(True)
        self.clear()
        self._nodes = found
        self.addItems(["None"] + [n.GetName() for n in found[1:]])
        self.setCurrentIndex(found.index(current) if current in found else 0)
        self.blockSignals(blocked)

    def showPopup(self) -> None:
        self._refresh()
        super().showPopup()

    def currentNode(self):
        index = self.currentIndex()
        return self._nodes[index] if 0 <= index < len(self._nodes) else None

    def setCurrentNode(self, node) -> None:
        self._refresh()
        if node is not None and node not in self._nodes:
            return
        self.setCurrentIndex(self._nodes.index(node))

    def _picked(self, index: int) -> None:
        self.currentNodeChanged.emit(self.currentNode())


class ctkPathLineEdit(QtWidgets.QWidget):
    """An editable combo box and a browse button; currentPathChanged on every keystroke."""

    Dirs, Files = 1, 2
    currentPathChanged = QtCore.pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.comboBox = QtWidgets.QComboBox(self)
        self.comboBox.setEditable(True)
        self.comboBox.setSizePolicy(QtWidgets.QSizePolicy.Expanding,
                                    QtWidgets.QSizePolicy.Fixed)
        self.button = QtWidgets.QToolButton(self)
        self.button.setText("…")
        layout.addWidget(self.comboBox)
        layout.addWidget(self.button)
        self.comboBox.editTextChanged.connect(self.currentPathChanged.emit)
        self.button.clicked.connect(self.browse)           # CTK connects before the module
        self.browse_answer = ""                            # what the file dialog "returns"
        self._filters = 0

    def browse(self) -> None:
        if self.browse_answer:
            self.setCurrentPath(self.browse_answer)

    def getCurrentPath(self) -> str:
        return self.comboBox.currentText()

    def setCurrentPath(self, path: str) -> None:
        self.comboBox.setEditText(path)

    currentPath = QtCore.pyqtProperty(str, getCurrentPath, setCurrentPath)
    filters = QtCore.pyqtProperty(int, lambda self: self._filters,
                                  lambda self, value: setattr(self, "_filters", value))


class ctkCollapsibleButton(QtWidgets.QGroupBox):
    def setText(self, text: str) -> None:
        self.setTitle(text)

    def setCollapsed(self, collapsed: bool) -> None:
        for child in self.findChildren(QtWidgets.QWidget):
            child.setVisible(not collapsed)


class ctkSliderWidget(QtWidgets.QWidget):
    """A slider and a spin box on one double value."""

    valueChanged = QtCore.pyqtSignal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal, self)
        self.spinBox = QtWidgets.QDoubleSpinBox(self)
        layout.addWidget(self.slider)
        layout.addWidget(self.spinBox)
        self._step = 0.01
        self.slider.valueChanged.connect(lambda v: self.spinBox.setValue(v * self._step))
        self.spinBox.valueChanged.connect(self._spun)

    def _spun(self, value: float) -> None:
        blocked = self.slider.blockSignals(True)
        self.slider.setValue(int(round(value / self._step)))
        self.slider.blockSignals(blocked)
        self.valueChanged.emit(value)

    def setMinimum(self, value: float) -> None:
        self.spinBox.setMinimum(value)
        self.slider.setMinimum(int(round(value / self._step)))

    def setMaximum(self, value: float) -> None:
        self.spinBox.setMaximum(value)
        self.slider.setMaximum(int(round(value / self._step)))

    def setSingleStep(self, value: float) -> None:
        self._step = value
        self.spinBox.setSingleStep(value)
        self.slider.setRange(int(round(self.spinBox.minimum() / value)),
                             int(round(self.spinBox.maximum() / value)))

    def setPageStep(self, value: float) -> None:
        self.slider.setPageStep(int(round(value / self._step)))

    def setDecimals(self, value: int) -> None:
        self.spinBox.setDecimals(value)

    value = QtCore.pyqtProperty(float, lambda self: self.spinBox.value(),
                                lambda self, v: self.spinBox.setValue(v))


class qMRMLTableView(QtWidgets.QTableView):
    """A vtkMRMLTableNode laid out as qMRMLTableModel does, behind a sort/filter proxy."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_ = QtGui.QStandardItemModel(self)
        self.proxy = QtCore.QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model_)
        self.setModel(self.proxy)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.node, self._observer = None, None
        self._transposed = False

    def setMRMLScene(self, scene) -> None:
        self.scene = scene

    def mrmlTableNode(self):
        return self.node

    def tableModel(self):
        return self.model_

    def sortFilterProxyModel(self):
        return self.proxy

    def setMRMLTableNode(self, node) -> None:
        if self.node is not None and self._observer is not None:
            self.node.RemoveObserver(self._observer)
        self.node, self._observer = node, None
        if node is not None:
            self._observer = node.AddObserver("ModifiedEvent", lambda *_: self._update())
        self._update()

    def _update(self) -> None:
        """qMRMLTableModel::updateModelFromMRML (not transposed, no row-header column)."""
        model = self.model_
        if self.node is None:
            model.clear()
            return
        table = self.node.GetTable()
        header = nodes.column_titles_as_header(self.node)
        offset = 0 if header else 1
        columns = table.GetNumberOfColumns()
        if (model.rowCount(), model.columnCount()) != (table.GetNumberOfRows() + offset, columns):
            model.clear()                     # same shape: items are updated in place (as the
            model.setRowCount(table.GetNumberOfRows() + offset)   # real model), so the view
            model.setColumnCount(columns)                         # keeps scroll and selection
        for c in range(columns):
            name = table.GetColumnName(c)
            title = self.node.GetColumnTitle(name) or name
            model.setHeaderData(c, QtCore.Qt.Horizontal, title if header else chr(65 + c))
            if not header:
                item = QtGui.QStandardItem(title)
                font = item.font()
                font.setBold(True)
                item.setFont(font)
                model.setItem(0, c, item)
            for r in range(table.GetNumberOfRows()):
                value = table.GetValue(r, c)
                text = f"{value.ToDouble():.3g}" if table.GetColumn(c).IsA("vtkDoubleArray") \
                    else value.ToString()
                item = model.item(r + offset, c)
                if item is None:
                    item = QtGui.QStandardItem()
                    model.setItem(r + offset, c, item)
                item.setText(text)
                if self.node.GetLocked():
                    item.setFlags(item.flags() & ~QtCore.Qt.ItemIsEditable)
        self.resizeColumnsToContents()

    transposed = QtCore.pyqtProperty(bool, lambda self: self._transposed)


STAND_INS = {cls.__name__: cls for cls in (qMRMLWidget, qMRMLNodeComboBox, ctkPathLineEdit,
                                           ctkCollapsibleButton, ctkSliderWidget, qMRMLTableView)}


# ------------------------------------------------------------------ loading the module

def _scene_connections() -> list[tuple[str, str]]:
    """(sender, receiver) of the .ui's mrmlSceneChanged → setMRMLScene connections."""
    root = ET.parse(UI).getroot()
    return [(c.findtext("sender"), c.findtext("receiver")) for c in root.iter("connection")
            if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"]


def load_ui(tmp_path: Path) -> qMRMLWidget:
    """WeakSeg.ui through PyQt5's uic, custom widgets resolved to the stand-ins; the scene
    connections (vtkMRMLScene* is no PyQt type) are made as the .ui lists them."""
    tree = ET.parse(UI)
    root = tree.getroot()
    for connections in root.findall("connections"):
        root.remove(connections)
    for custom in root.iter("customwidget"):
        custom.find("header").text = f"weakseg_standin_{custom.findtext('class')}.h"
    path = tmp_path / "WeakSeg.ui"
    tree.write(path)
    for name, cls in STAND_INS.items():
        module = types.ModuleType(f"weakseg_standin_{name}")
        setattr(module, name, cls)
        sys.modules[module.__name__] = module
    widget = uic.loadUi(str(path))
    children = {w.objectName(): w for w in widget.findChildren(QtWidgets.QWidget)}
    children[widget.objectName()] = widget
    for sender, receiver in _scene_connections():
        children[sender].mrmlSceneChanged.connect(children[receiver].setMRMLScene)
    return widget


class _ModuleWidget:
    def __init__(self, parent=None):
        self.parent = QtWidgets.QWidget()
        self.parent.setWindowTitle("WeakSeg")
        self.layout = PythonQt(QtWidgets.QVBoxLayout(self.parent))

    def setup(self):
        pass

    def resourcePath(self, filename):
        return str(MODULE.parent / "Resources" / filename)


@pytest.fixture()
def panel(monkeypatch, tmp_path, fake_segment_python):
    """The module's widget, set up on real Qt widgets and a real MRML scene."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["weakseg-test"])
    app.setStyle("Fusion")
    scene = nodes.new_scene()
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    slm.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {
        "__init__": lambda self, parent: setattr(self, "parent", parent)})
    slm.ScriptedLoadableModuleWidget = _ModuleWidget
    slm.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (), {
        "__init__": lambda self, parent=None: None})
    import unittest

    slm.ScriptedLoadableModuleTest = unittest.TestCase
    qt = types.ModuleType("qt")
    qt.QTimer = lambda: PythonQt(QtCore.QTimer())
    ctk = types.ModuleType("ctk")
    ctk.ctkPathLineEdit = ctkPathLineEdit
    for name, module in (("qt", qt), ("ctk", ctk), ("slicer.ScriptedLoadableModule", slm)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "ScriptedLoadableModule", slm, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path)),
                        raising=False)
    said = {"errors": [], "status": [], "shown": []}
    util = {
        "loadUI": lambda path: PythonQt(load_ui(tmp_path)),
        "childWidgetVariables": lambda root: types.SimpleNamespace(**{
            w.objectName(): PythonQt(w) for w in root._obj.findChildren(QtWidgets.QWidget)
            if w.objectName()}),
        "findChildren": lambda widget=None, className=None, **kw: [
            PythonQt(w) for w in _unwrap(widget).findChildren(QtWidgets.QWidget)
            if w.metaObject().className() == className],
        "errorDisplay": lambda text, **kw: said["errors"].append(text),
        "showStatusMessage": lambda text, *a: said["status"].append(text),
        "setSliceViewerLayers": lambda **kw: said["shown"].append(kw),
        "confirmOkCancelDisplay": lambda *a, **kw: True,
        "confirmYesNoDisplay": lambda *a, **kw: True,
        "pip_install": lambda *a: pytest.fail("nothing should be installed here"),
        "tryWithErrorDisplay": _try_with_error_display(said),
    }
    for name, value in util.items():
        monkeypatch.setattr(slicer.util, name, value, raising=False)
    spec = importlib.util.spec_from_file_location("WeakSeg", MODULE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "WeakSeg", module)
    spec.loader.exec_module(module)
    widget = module.WeakSegWidget()
    widget.setup()
    widget.controller.python = fake_segment_python      # a stand-in `segment` job (fast)
    widget.controller.work_root = tmp_path / "work"
    ui_root = widget.parent
    ui_root.resize(440, ui_root.sizeHint().height())
    ui_root.show()
    yield types.SimpleNamespace(widget=widget, ui=widget.ui, scene=scene, root=ui_root,
                                said=said, app=app)
    widget.cleanup()
    ui_root.close()
    scene.Clear(1)


def _try_with_error_display(said):
    @contextlib.contextmanager
    def try_with_error_display(message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as error:
            said["errors"].append(f"{message} {error}")
            raise

    return try_with_error_display


def _case_volume(scene, name: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    array = rng.normal(100, 10, CASE_GRID.shape).astype(np.float32)
    zz, yy, xx = np.mgrid[:24, :36, :40]
    array[(zz - 12) ** 2 / 36 + ((yy - 18) ** 2 + (xx - 22) ** 2) / 64 < 1] += 300   # the tumour
    return nodes.array_to_volume_node(scene, array, CASE_GRID, name)


def _wait(panel, condition, timeout: float = 60.0) -> None:
    """Let Qt's event loop (and the widget's poll timer) run until ``condition()``."""
    deadline = QtCore.QDeadlineTimer(int(timeout * 1000))
    while not condition():
        assert not deadline.hasExpired(), "timed out waiting for the panel"
        panel.app.processEvents(QtCore.QEventLoop.AllEvents, 50)
        QTest.qWait(20)


def _render(panel, path: Path) -> Path:
    panel.app.processEvents()
    root = panel.root
    root.resize(440, root.sizeHint().height())
    panel.app.processEvents()
    path.parent.mkdir(parents=True, exist_ok=True)
    assert root.grab().save(str(path)), f"could not write {path}"
    return path


def _screenshot_dir(tmp_path: Path) -> Path:
    return SCREENSHOTS if os.environ.get("WEAKSEG_SCREENSHOTS") == "1" else tmp_path / "shots"


# ------------------------------------------------------------------ the tests

def test_typing_a_path_keeps_it_as_typed(panel, tmp_path) -> None:
    """#2: every keystroke emits currentPathChanged; the path must come out as typed."""
    line_edit = panel.ui.modelPathLineEdit._obj.comboBox.lineEdit()
    line_edit.setFocus()
    panel.app.processEvents()
    QTest.keyClicks(line_edit, "runs/case1")
    assert line_edit.text() == "runs/case1"
    # not focused (a script, a paste without focus): still not mangled
    line_edit.clearFocus()
    panel.app.processEvents()
    QTest.keyClicks(line_edit, "/")
    QTest.keyClicks(line_edit, "sub")
    assert line_edit.text() == "runs/case1/sub"
    line_edit.setFocus()
    panel.app.processEvents()
    line_edit.setText("")
    QTest.keyClicks(line_edit, "runs/case1")
    QTest.keyClick(line_edit, QtCore.Qt.Key_Return)       # editing finished: committed now
    assert panel.widget.controller.params.model_dir == Path("runs/case1")
    assert line_edit.text() == "runs/case1"
    # Browse: the dialog's answer is committed at once
    export = panel.ui.exportPathLineEdit._obj
    export.browse_answer = str(tmp_path / "export")
    QTest.mouseClick(export.button, QtCore.Qt.LeftButton)
    assert panel.widget.controller.params.export_dir == tmp_path / "export"


def test_the_panel_segments_reviews_and_renders(panel, tmp_path, write_bundle) -> None:
    """Select volumes, choose a model by typing, Apply, click a review row, go to the next
    flagged slice, move the slider."""
    import shutil
    import tempfile

    ui, c = panel.ui, panel.widget.controller
    # a path as long as a user's (~/WeakSeg/runs/brats-fast), not pytest's long temporary one
    short = Path(tempfile.mkdtemp(prefix="ws-"))
    request_cleanup = lambda: shutil.rmtree(short, ignore_errors=True)  # noqa: E731
    bundle_dir = write_bundle(short / "runs" / "brats-fast")
    shots = _screenshot_dir(tmp_path)
    flair = _case_volume(panel.scene, "BraTS-GLI-00001-000-t2f")
    t1 = _case_volume(panel.scene, "BraTS-GLI-00001-000-t1n", seed=1)
    QTest.mouseClick(ui.autoMapButton._obj, QtCore.Qt.LeftButton)
    assert ui.flairSelector._obj.currentText() == flair.GetName()
    assert c.params.flair is flair and c.params.t1 is t1 and c.params.reference is flair

    line_edit = ui.modelPathLineEdit._obj.comboBox.lineEdit()
    line_edit.setFocus()
    panel.app.processEvents()
    QTest.keyClicks(line_edit, str(bundle_dir))
    QTest.keyClick(line_edit, QtCore.Qt.Key_Return)
    reviewer = ui.reviewerLineEdit._obj
    reviewer.setFocus()
    panel.app.processEvents()
    QTest.keyClicks(reviewer, "Dr Ma")
    QTest.keyClick(reviewer, QtCore.Qt.Key_Return)
    assert c.params.model_dir == bundle_dir and c.params.reviewer == "Dr Ma"
    apply = ui.applyButton._obj
    assert apply.isEnabled() and apply.text() == "Apply"
    assert ui.segmentStatusLabel._obj.text() == "ready"
    assert ui.modelStatusLabel._obj.text() == "ready: brats-fast (flair)"
    assert ui.modelPathLineEdit._obj.toolTip() == str(bundle_dir)
    line_edit.setCursorPosition(0)
    panel.app.processEvents()
    before = _render(panel, shots / "panel-before.png")
    shown = line_edit.fontMetrics().horizontalAdvance(line_edit.text())
    assert shown < line_edit.width() - 8, "the bundle path is cut in the path field"

    QTest.mouseClick(apply, QtCore.Qt.LeftButton)
    _wait(panel, lambda: c.job is not None and c.job.finished and c.params.segmentation)
    _wait(panel, lambda: not panel.widget._timer._obj.isActive())
    assert panel.said["errors"] == [] and c.job.status == "done"
    assert apply.text() == "Apply" and ui.segmentProgressBar._obj.value() == 100
    assert panel.said["shown"] and panel.said["shown"][0]["background"] is flair

    # the review table shows one row per slice, highest review priority first, with the
    # priority in the second column; every column fits the panel (no horizontal scrolling)
    view = ui.reviewTableView._obj
    model = view.model()
    assert model.rowCount() == 24 and view.isEnabled()
    titles = [model.headerData(i, QtCore.Qt.Horizontal) for i in range(model.columnCount())]
    assert titles == ["slice", "priority", "classifier\nscore", "difference\nscore", "flagged",
                      "status"]
    priorities = [float(model.index(r, 1).data()) for r in range(model.rowCount())]
    assert priorities == sorted(priorities, reverse=True) and priorities[0] > priorities[-1]
    assert view.horizontalScrollBar().maximum() == 0, "the table is wider than the panel"
    assert not view.verticalHeader().isVisible()
    row_of_slice = {int(model.index(r, 0).data()): r for r in range(model.rowCount())}
    target = 14                                   # a slice with tumour (a difference score)
    rect = view.visualRect(model.index(row_of_slice[target], 0))
    view.scrollTo(model.index(row_of_slice[target], 0))
    rect = view.visualRect(model.index(row_of_slice[target], 0))
    QTest.mouseClick(view.viewport(), QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, rect.center())
    assert c.selected_row is not None and c.review.rows[c.selected_row].slice == target
    assert ui.acceptButton._obj.isEnabled()
    QTest.mouseClick(ui.acceptButton._obj, QtCore.Qt.LeftButton)
    status_column = [column[0] for column in nodes.REVIEW_COLUMNS].index("status")
    assert model.index(row_of_slice[target], status_column).data() == "accepted"
    assert c.review.rows[c.selected_row].who == "Dr Ma"

    # the threshold slider starts at config's review threshold and re-flags rows live
    slider_widget = ui.thresholdSliderWidget._obj
    assert slider_widget.value == pytest.approx(defaults.REVIEW_THRESHOLD)
    flagged_before = c.review.counts()["flagged"]
    slider = slider_widget.slider
    slider.setFocus()
    for _ in range(3):
        QTest.keyClick(slider, QtCore.Qt.Key_PageDown)
    assert c.params.threshold < defaults.REVIEW_THRESHOLD
    flagged = c.review.counts()["flagged"]
    assert flagged > flagged_before
    flagged_column = [column[0] for column in nodes.REVIEW_COLUMNS].index("flagged")
    shown_flags = [model.index(r, flagged_column).data() == "1" for r in range(model.rowCount())]
    assert shown_flags == [p >= c.params.threshold for p in priorities]

    # Next flagged slice: the highest-priority flagged slice not yet reviewed, selected in the
    # table; then the next one; the counts say how many are left
    next_button = ui.nextFlaggedButton._obj
    assert next_button.isEnabled()
    QTest.mouseClick(next_button, QtCore.Qt.LeftButton)
    first = c.selected_row
    assert c.review.rows[first].flagged and not c.review.rows[first].reviewed
    assert first == min(i for i, r in enumerate(c.review.rows) if r.flagged and not r.reviewed)
    assert [i.row() for i in view.selectionModel().selectedRows()] == [first]
    QTest.mouseClick(ui.acceptButton._obj, QtCore.Qt.LeftButton)
    QTest.mouseClick(next_button, QtCore.Qt.LeftButton)
    second = c.selected_row
    assert second > first and [i.row() for i in view.selectionModel().selectedRows()] == [second]
    to_review = sum(r.flagged and not r.reviewed for r in c.review.rows)
    assert ui.reviewCountsLabel._obj.text().startswith(
        f"{flagged} flagged · {to_review} still to review")
    after = _render(panel, shots / "panel.png")

    for path in (before, after):
        image = QtGui.QImage(str(path))
        assert image.width() >= 400 and image.height() > 600
    request_cleanup()


def test_a_fresh_panel_offers_the_shipped_model(shipped_model, panel, tmp_path) -> None:
    """Issue 15: with a default model shipped, load a case and click Apply, nothing else."""
    ui, c = panel.ui, panel.widget.controller
    panel.app.processEvents()                      # set up after shipped_model: as in Slicer
    assert ui.modelPathLineEdit._obj.currentPath == str(shipped_model)
    assert ui.modelStatusLabel._obj.text() == (
        "ready: default model (shipped: BraTS 2018 training cases; flair, t1, t1ce, t2)")
    assert ui.modelPathLineEdit._obj.toolTip().startswith("The model shipped with WeakSeg")
    assert not ui.applyButton._obj.isEnabled()     # no volumes yet
    for seed, suffix in enumerate(("t2f", "t1n", "t1c", "t2w")):
        _case_volume(panel.scene, f"BraTS-GLI-00001-000-{suffix}", seed=seed)
    QTest.mouseClick(ui.autoMapButton._obj, QtCore.Qt.LeftButton)
    apply = ui.applyButton._obj
    assert apply.isEnabled() and ui.segmentStatusLabel._obj.text() == "ready"
    _render(panel, tmp_path / "shots" / "panel-default-model.png")
    QTest.mouseClick(apply, QtCore.Qt.LeftButton)
    _wait(panel, lambda: c.job is not None and c.job.finished and c.params.segmentation)
    assert panel.said["errors"] == [] and c.job.status == "done"
    command = c.job.command
    assert command[command.index("--model") + 1] == str(shipped_model)

"""WeakSeg/WeakSeg.py and its .ui without Slicer's GUI: names, import, and the widget's bindings.

Qt and CTK cannot exist here, so stand-in ``qt``, ``ctk`` and ``slicer.ScriptedLoadableModule``
modules are injected; widgets are stand-ins built from the .ui file's own names, so a name the
module uses that the .ui lacks fails exactly as it would in Slicer (AttributeError in setup).
"""
from __future__ import annotations

import importlib.util
import re
import sys
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("slicer.util", reason="slicer-core is not installed: real MRML needed")  # noqa: E402

import slicer
import slicer.util
from WeakSegLib.slicer import nodes
from WeakSegLib.slicer.controller import BUTTONS, SELECTORS, WIDGETS

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "WeakSeg" / "WeakSeg.py"
UI = REPO / "WeakSeg" / "Resources" / "UI" / "WeakSeg.ui"
ICON = REPO / "WeakSeg" / "Resources" / "Icons" / "WeakSeg.png"


def ui_widgets() -> dict[str, str]:
    """objectName → class of every widget in the .ui file."""
    return {w.get("name"): w.get("class") for w in ET.parse(UI).getroot().iter("widget")}


# ------------------------------------------------------------------ static checks

def test_every_widget_name_used_exists_in_the_ui() -> None:
    widgets = ui_widgets()
    assert not set(WIDGETS) - set(widgets), "controller names missing from the .ui"
    source = MODULE.read_text()
    used = set(re.findall(r"\bui\.(\w+)", source))
    used |= set(re.findall(r'"([a-z]\w+(?:Button|LineEdit|Selector|ComboBox|Label|CheckBox|'
                           r'SliderWidget|TableView|ProgressBar))"', source))
    assert used and not used - set(widgets), f"missing from the .ui: {used - set(widgets)}"


def test_widget_classes() -> None:
    widgets = ui_widgets()
    assert widgets["WeakSeg"] == "qMRMLWidget"
    for name in (*SELECTORS.values(), "referenceSelector"):
        assert widgets[name] == "qMRMLNodeComboBox"
    expected = {"reviewTableView": "qMRMLTableView", "thresholdSliderWidget": "ctkSliderWidget",
                "deviceComboBox": "QComboBox", "postprocessCheckBox": "QCheckBox",
                "trainCohortRadioButton": "QRadioButton", "applyButton": "QPushButton",
                "segmentProgressBar": "QProgressBar", "modelPathLineEdit": "ctkPathLineEdit",
                "exportPathLineEdit": "ctkPathLineEdit", "reviewerLineEdit": "QLineEdit",
                "nextFlaggedButton": "QPushButton"}
    assert {k: widgets[k] for k in expected} == expected
    sections = [w for w, c in widgets.items() if c == "ctkCollapsibleButton"]
    assert sections == ["inputsCollapsibleButton", "modelCollapsibleButton",
                        "segmentCollapsibleButton", "reviewCollapsibleButton",
                        "trainCollapsibleButton", "exportCollapsibleButton"]
    scene_receivers = {c.findtext("receiver") for c in ET.parse(UI).getroot().iter("connection")
                       if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert scene_receivers == {*SELECTORS.values(), "referenceSelector", "reviewTableView"}


def test_review_section_order_and_slider_range() -> None:
    """Issue 13: the slider spans the review priority's [0, 1] and holds no default of its own
    (config's comes through the parameter node); Next flagged slice sits in the Review section."""
    root = ET.parse(UI).getroot()
    slider = next(w for w in root.iter("widget") if w.get("name") == "thresholdSliderWidget")
    properties = {p.get("name"): p for p in slider.findall("property")}
    assert float(properties["minimum"].findtext("double")) == 0.0
    assert float(properties["maximum"].findtext("double")) == 1.0
    assert "value" not in properties
    review = next(w for w in root.iter("widget") if w.get("name") == "reviewCollapsibleButton")
    names = [w.get("name") for w in review.iter("widget")]
    assert names.index("thresholdSliderWidget") < names.index("nextFlaggedButton") < \
        names.index("acceptButton")
    table = next(w for w in root.iter("widget") if w.get("name") == "reviewTableView")
    attributes = {a.get("name"): a.findtext("bool") for a in table.findall("attribute")}
    assert attributes == {"verticalHeaderVisible": "false",
                          "horizontalHeaderStretchLastSection": "true"}


def test_icon_is_128_square_png() -> None:
    data = ICON.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == int.from_bytes(data[20:24], "big") == 128


# ------------------------------------------------------------------ stand-ins

class FakeWidget:
    """Any Qt widget: keeps properties, records connections, lets a test fire a signal."""

    def __init__(self, name: str, cls: str):
        self.objectName, self.cls = name, cls
        self.connections: dict[str, list] = {}
        self.enabled, self.text, self.value, self.checked = True, "", 0.0, False
        self.currentPath, self.filters, self.node, self.table = "", None, None, None
        self.items = ["auto", "cuda", "cpu"] if cls == "QComboBox" else []
        self.currentIndex = 0
        self.children: list[FakeWidget] = []

    def connect(self, signal: str, slot) -> None:
        self.connections.setdefault(signal, []).append(slot)

    def fire(self, signal: str, *args) -> None:
        for slot in self.connections[signal]:
            slot(*args)

    def setCurrentNode(self, node) -> None:
        self.node = node

    def currentNode(self):
        return self.node

    def mrmlTableNode(self):
        return self.table

    def hasFocus(self) -> bool:
        return getattr(self, "focus", False)

    def setMRMLScene(self, scene) -> None:
        self.scene = scene

    def setMRMLTableNode(self, node) -> None:
        self.table = node

    def findText(self, text: str) -> int:
        return self.items.index(text) if text in self.items else -1

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index

    def addWidget(self, widget) -> None:
        self.children.append(widget)

    def tableModel(self):
        # no mrmlTableRowIndex (row() is used); index(row, column).row() as a QModelIndex
        return types.SimpleNamespace(index=lambda row, column: types.SimpleNamespace(
            row=lambda: row, column=lambda: column))

    def resizeColumnsToContents(self) -> None:
        self.resized = getattr(self, "resized", 0) + 1

    def selectRow(self, row: int) -> None:
        self.selected = row

    def scrollTo(self, index) -> None:
        self.scrolled = index.row()

    def clearSelection(self) -> None:
        self.selected = None


class FakeTimer:
    def __init__(self):
        self.running, self.slots = False, []

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def connect(self, signal: str, slot) -> None:
        self.slots.append(slot)

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    @staticmethod
    def singleShot(ms: int, slot) -> None:
        slot()


def _fake_scripted_loadable_module() -> types.ModuleType:
    module = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent
            self.layout = FakeWidget("layout", "QVBoxLayout")

        def setup(self):
            pass

        def resourcePath(self, filename):
            return str(MODULE.parent / "Resources" / filename)

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            pass

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(module, cls.__name__, cls)
    return module


@pytest.fixture()
def weakseg(monkeypatch, tmp_path):
    """WeakSeg.py imported with only qt/ctk/ScriptedLoadableModule standing in."""
    qt = types.ModuleType("qt")
    qt.QTimer = FakeTimer
    ctk = types.ModuleType("ctk")
    ctk.ctkPathLineEdit = types.SimpleNamespace(Dirs=1)
    slm = _fake_scripted_loadable_module()
    monkeypatch.setitem(sys.modules, "qt", qt)
    monkeypatch.setitem(sys.modules, "ctk", ctk)
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", slm)
    monkeypatch.setattr(slicer, "ScriptedLoadableModule", slm, raising=False)
    scene = nodes.new_scene()
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path)),
                        raising=False)
    widgets = {name: FakeWidget(name, cls) for name, cls in ui_widgets().items()}
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: widgets["WeakSeg"])
    monkeypatch.setattr(slicer.util, "childWidgetVariables",
                        lambda root: types.SimpleNamespace(**widgets))
    monkeypatch.setattr(slicer.util, "findChildren", lambda widget=None, className=None, **kw: [],
                        raising=False)
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda *args, **kwargs: None,
                        raising=False)
    spec = importlib.util.spec_from_file_location("WeakSeg", MODULE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "WeakSeg", module)
    spec.loader.exec_module(module)
    yield module, scene, widgets
    scene.Clear(1)


def test_module_imports_and_describes_itself(weakseg) -> None:
    module, _scene, _widgets = weakseg
    parent = types.SimpleNamespace()
    module.WeakSeg(parent)
    assert parent.title == "WeakSeg" and parent.categories == ["Segmentation"]
    assert "github.com/weakseg/WeakSeg" in parent.helpText
    assert "Mixed Supervision" in parent.acknowledgementText
    assert issubclass(module.WeakSegTest, unittest.TestCase)


def test_widget_binds_the_ui_to_the_controller(weakseg, add_volume, bundle_dir) -> None:
    module, scene, ui = weakseg
    widget = module.WeakSegWidget()
    widget.setup()
    controller = widget.controller
    assert ui["WeakSeg"] in widget.layout.children and ui["WeakSeg"].scene is scene
    assert ui["modelPathLineEdit"].filters == 1
    # every button of the controller got its enabled state, Apply its text
    assert all(ui[name].enabled == state for name, state in controller.enabled().items())
    assert ui["applyButton"].text == "Apply" and not ui["applyButton"].enabled

    flair = add_volume(scene, "caseA_flair")
    ui["autoMapButton"].fire("clicked(bool)", True)
    assert controller.params.flair is flair and ui["flairSelector"].node is flair
    ui["modelPathLineEdit"].currentPath = str(bundle_dir)        # as ctkPathLineEdit holds it
    ui["modelPathLineEdit"].fire("currentPathChanged(QString)", str(bundle_dir))
    assert controller.params.model_dir == bundle_dir and ui["applyButton"].enabled
    ui["deviceComboBox"].fire("currentTextChanged(QString)", "cpu")
    assert controller.params.device == "cpu" and ui["deviceComboBox"].currentIndex == 2
    ui["postprocessCheckBox"].fire("toggled(bool)", True)
    assert ui["postprocessOpsLineEdit"].enabled
    ui["trainCohortRadioButton"].fire("toggled(bool)", False)
    assert controller.params.train_source == "volumes" and ui["firstSliceButton"].enabled
    ui["thresholdSliderWidget"].fire("valueChanged(double)", 0.4)
    assert controller.params.threshold == 0.4
    ui["reviewerLineEdit"].text = "dr who"
    ui["reviewerLineEdit"].fire("editingFinished()")
    assert controller.params.reviewer == "dr who"
    # every button the controller rules is connected to something
    clicked = {name for name, w in ui.items() if w.connections}
    assert {n for n in BUTTONS if n.endswith("Button") and not n.endswith("RadioButton")} <= clicked
    widget.cleanup()


def test_logic_uses_the_scene_and_a_temporary_work_folder(weakseg, tmp_path) -> None:
    module, scene, _ = weakseg
    logic = module.WeakSegLogic()
    assert logic.getParameterNode().GetSingletonTag() == "WeakSeg"
    controller = logic.controller()
    assert controller.scene is scene and controller.work_root == tmp_path / "WeakSeg"


# ------------------------------------------------------------------ issue 15, through the widget

def test_an_error_without_details_shows_no_none(weakseg, monkeypatch) -> None:
    module, _scene, _ui = weakseg
    shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay",
                        lambda text, **kwargs: shown.append((text, kwargs)), raising=False)
    view = module.SlicerView(None)
    view.error("select a FLAIR volume")
    view.error("segment failed\n\nLast lines of the log:\nTraceback ...")
    assert shown[0] == ("select a FLAIR volume", {"windowTitle": "WeakSeg"})
    assert shown[1][1]["detailedText"] == "Traceback ..."


def test_polls_of_a_running_job_leave_the_reviewer_field_alone(weakseg) -> None:
    """#9: the user is typing a name (not committed yet) while a job reports progress."""
    module, _scene, ui = weakseg
    widget = module.WeakSegWidget()
    widget.setup()
    from WeakSegLib.slicer.jobs import Job

    running = Job([sys.executable, "-c", "import json, time\n"
                   "for i in range(3):\n"
                   "    print(json.dumps({'event': 'progress', 'time': 't', 'stage': 'train',"
                   " 'done': i, 'total': 3}), flush=True); time.sleep(0.1)"], name="train").start()
    widget.controller.job, widget.controller.job_kind = running, "train"
    ui["reviewerLineEdit"].text, ui["reviewerLineEdit"].focus = "Dr Ma", True
    while widget.controller.poll():
        pass
    assert ui["reviewerLineEdit"].text == "Dr Ma"
    ui["reviewerLineEdit"].focus = False
    ui["reviewerLineEdit"].fire("editingFinished()")
    assert widget.controller.params.reviewer == "Dr Ma"
    widget.cleanup()


def test_widgets_follow_the_parameter_node(weakseg, add_volume, tmp_path) -> None:
    """A scene load (or the console) writes the parameter node: the widgets must show it."""
    from WeakSegLib.slicer.parameters import read_parameters, write_parameters

    module, scene, ui = weakseg
    widget = module.WeakSegWidget()
    widget.setup()
    flair = add_volume(scene, "loaded_flair")
    node = widget.controller.parameter_node
    p = read_parameters(node)
    p.flair, p.threshold, p.reviewer, p.export_dir = flair, 0.35, "Dr No", tmp_path
    write_parameters(node, p)
    assert ui["flairSelector"].node is flair and ui["thresholdSliderWidget"].value == 0.35
    assert ui["reviewerLineEdit"].text == "Dr No"
    assert ui["exportPathLineEdit"].currentPath == str(tmp_path)
    widget.cleanup()


class _NoTorch:
    """A meta-path finder that records (and refuses) every attempt to import torch."""

    def __init__(self):
        self.attempts = []

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            self.attempts.append(name)
            raise ImportError("torch imported in Slicer's GUI process")
        return None


@pytest.mark.parametrize("shipped", [False, True], ids=["no-default-model", "default-model"])
def test_entering_the_module_does_not_import_torch(weakseg, monkeypatch, request,
                                                   shipped) -> None:
    """#7: the environment line comes from a subprocess; the GUI process never imports torch,
    also when the panel starts with the shipped default model (issue 15)."""
    module, _scene, ui = weakseg
    model = request.getfixturevalue("shipped_model") if shipped else None
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    finder = _NoTorch()
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    widget = module.WeakSegWidget()
    widget.setup()
    ui["environmentLabel"].text = "not checked yet"
    widget.enter()
    assert ui["environmentLabel"].text == "checking…" and widget._timer.running
    while widget._probe is not None:
        widget.onTimer()
    assert ui["environmentLabel"].text.startswith(("torch ", "PyTorch not available"))
    assert finder.attempts == []
    assert widget.controller.params.model_dir == model
    assert ui["modelStatusLabel"].text.startswith("ready: default model" if shipped
                                                  else "choose a model bundle")
    widget.cleanup()


def test_closing_the_scene_resets_the_panel(weakseg, add_volume) -> None:
    """#8 through the real scene events: nothing keeps pointing at the removed nodes."""
    from WeakSegLib.slicer.review import ReviewRow, ReviewSession

    module, scene, ui = weakseg
    widget = module.WeakSegWidget()
    widget.setup()
    c = widget.controller
    flair = add_volume(scene, "caseA_flair")
    c.update(flair=flair, reference=flair)
    c.review, c.selected_row = ReviewSession([ReviewRow(1, 0.5, 0.1)], case="caseA"), 0
    c.mark_slice("first", 1)
    scene.Clear(0)
    assert c.review is None and c.training_cases == {} and c.last_result is None
    assert c.params.flair is None and ui["flairSelector"].node is None
    assert c.parameter_node.GetScene() is scene
    c.update(threshold=0.3)                          # the new parameter node is observed
    assert ui["thresholdSliderWidget"].value == 0.3
    widget.cleanup()


# ------------------------------------------------------------------ issue 13, through the widget

def test_next_flagged_slice_selects_its_row_in_the_table(weakseg, add_volume) -> None:
    from WeakSegLib.slicer import logic
    from WeakSegLib.slicer.review import ReviewRow, ReviewSession

    module, scene, ui = weakseg
    widget = module.WeakSegWidget()
    widget.setup()
    c = widget.controller
    flair = add_volume(scene, "caseA_flair")
    rows = [ReviewRow(z, 0.5, 0.3, review_priority=p)
            for z, p in enumerate([0.1, 0.7, 0.2, 0.95, 0.6])]
    c.review = ReviewSession(rows, c.params.threshold, case="caseA")
    c.update(flair=flair, reference=flair, review_table=logic.review_table(scene, c.review))
    view = ui["reviewTableView"]
    assert view.table is c.params.review_table and getattr(view, "resized", 0) >= 1
    assert ui["nextFlaggedButton"].enabled
    assert ui["reviewCountsLabel"].text.startswith("3 flagged · 3 still to review")
    ui["nextFlaggedButton"].fire("clicked(bool)", True)
    assert c.review.rows[c.selected_row].slice == 3 and view.selected == 0
    ui["acceptButton"].fire("clicked(bool)", True)
    assert ui["reviewCountsLabel"].text.startswith("3 flagged · 2 still to review")
    ui["nextFlaggedButton"].fire("clicked(bool)", True)
    assert c.review.rows[c.selected_row].slice == 1 and view.selected == 1
    ui["thresholdSliderWidget"].fire("valueChanged(double)", 0.9)      # only slice 3 (reviewed)
    assert not ui["nextFlaggedButton"].enabled
    assert ui["reviewCountsLabel"].text.startswith("1 flagged · 0 still to review")
    widget.cleanup()


def test_the_slider_shows_the_difference_threshold_for_an_older_result(weakseg,
                                                                       add_volume) -> None:
    from WeakSegLib.slicer import defaults, logic
    from WeakSegLib.slicer.review import ReviewRow

    module, scene, ui = weakseg
    widget = module.WeakSegWidget()
    widget.setup()
    c = widget.controller
    assert ui["thresholdSliderWidget"].value == defaults.REVIEW_THRESHOLD     # config's
    assert ui["postprocessOpsLineEdit"].text == defaults.POSTPROCESS_OPS
    c.review = c._session([ReviewRow(1, 0.5, 0.1), ReviewRow(2, 0.5, 0.4)], "caseA")
    c.update(review_table=logic.review_table(scene, c.review))
    assert ui["thresholdSliderWidget"].value == defaults.DIFFERENCE_THRESHOLD
    ui["thresholdSliderWidget"].fire("valueChanged(double)", 0.5)
    assert c.params.difference_threshold == 0.5 and c.params.threshold == defaults.REVIEW_THRESHOLD
    assert "flagged by difference score" in ui["reviewCountsLabel"].text
    widget.cleanup()

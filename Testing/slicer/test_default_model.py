"""The model shipped with the extension (issue 15): the panel starts with it, names it, runs
``segment`` with it, and finds it without torch; without one the panel asks for a model."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from WeakSegLib import paths
from WeakSegLib.slicer import defaults
from WeakSegLib.slicer.parameters import (WeakSegParameters, get_parameter_node, read_parameters,
                                          write_parameters)

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TEXT = "ready: default model (shipped: BraTS 2018 training cases; flair, t1, t1ce, t2)"


@pytest.fixture()
def controller(scene, tmp_path):
    from WeakSegLib.slicer.controller import HeadlessView, PanelController

    c = PanelController(scene, HeadlessView(), work_root=tmp_path / "work")
    yield c
    if c.busy:
        c.cancel(wait=True)


def _four_volumes(scene, add_volume, case="caseA"):
    return {key: add_volume(scene, f"{case}_{key}", seed=i)
            for i, key in enumerate(("flair", "t1", "t1ce", "t2"))}


# ------------------------------------------------------------------ where it lies, torch-free

def test_finding_the_default_model_imports_no_torch() -> None:
    """The panel's side (paths, defaults, parameters, the controller) never loads torch."""
    code = ("import sys\n"
            "import WeakSegLib.paths, WeakSegLib.slicer.defaults as d\n"
            "import WeakSegLib.slicer.parameters, WeakSegLib.slicer.commands\n"
            "d.default_model(); d.is_default_model('x'); d.default_model_summary('x')\n"
            "try:\n    import WeakSegLib.slicer.controller\nexcept ImportError:\n    pass\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_cli_and_the_panel_share_one_rule() -> None:
    pytest.importorskip("torch")
    from WeakSegLib.inference import bundle

    assert bundle.default_model_dir is paths.default_model_dir
    assert bundle.DEFAULT_MODEL == paths.DEFAULT_MODEL == "default"


def test_in_the_repository_and_installed_in_slicer(tmp_path, monkeypatch) -> None:
    """No override: WeakSeg/Resources/Models/default in the repository; in an installed
    extension Resources/Models/default beside WeakSegLib (qt-scripted-modules/)."""
    monkeypatch.delenv("WEAKSEG_DEFAULT_MODEL")
    assert paths.default_model_dir() == REPO / "WeakSeg" / "Resources" / "Models" / "default"
    installed = tmp_path / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    (installed / "WeakSegLib").mkdir(parents=True)
    (installed / "WeakSegLib" / "paths.py").write_text(
        (REPO / "WeakSegLib" / "paths.py").read_text())
    spec = importlib.util.spec_from_file_location("installed_paths",
                                                  installed / "WeakSegLib" / "paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.shipped_default_model() is None
    model = installed / "Resources" / "Models" / "default"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text("{}")
    assert module.default_model_dir() == model.resolve() == module.shipped_default_model()


def test_a_folder_without_manifest_is_no_default(tmp_path, monkeypatch) -> None:
    (tmp_path / "default").mkdir()
    monkeypatch.setenv("WEAKSEG_DEFAULT_MODEL", str(tmp_path / "default"))
    assert paths.default_model_dir() == tmp_path / "default"
    assert paths.shipped_default_model() is None and defaults.default_model() is None


# ------------------------------------------------------------------ the panel's default

def test_a_fresh_panel_starts_with_the_shipped_model(scene, shipped_model, controller) -> None:
    assert WeakSegParameters().model_dir == shipped_model
    assert read_parameters(get_parameter_node(scene)).model_dir == shipped_model
    assert controller.params.model_dir == shipped_model
    assert controller.status_texts()["modelStatusLabel"] == SHIPPED_TEXT
    # the panel's first change stores it, so the scene keeps it
    controller.update(threshold=0.4)
    node = controller.parameter_node
    assert node.GetParameter("modelPath.0") == str(shipped_model)


def test_without_a_shipped_model_the_panel_asks_for_one(scene, controller, add_volume) -> None:
    assert WeakSegParameters().model_dir is None and controller.params.model_dir is None
    assert controller.status_texts()["modelStatusLabel"] == \
        "choose a model bundle (a WeakSeg run folder)"
    flair = add_volume(scene, "caseA_flair")
    controller.update(flair=flair)
    assert controller.segment_problem() == "choose a model bundle (a WeakSeg run folder)"
    assert not controller.enabled()["applyButton"]


def test_a_chosen_or_cleared_model_is_kept(scene, shipped_model, controller, bundle_dir) -> None:
    controller.update(model_dir=bundle_dir)
    assert controller.params.model_dir == bundle_dir
    assert controller.status_texts()["modelStatusLabel"] == "ready: bundle (flair)"
    controller.update(model_dir=None)             # the user emptied the field
    assert controller.params.model_dir is None


def test_the_default_returns_with_a_new_scene(scene, shipped_model, controller,
                                              bundle_dir) -> None:
    controller.update(model_dir=bundle_dir)
    controller.scene_closing()
    scene.Clear(0)
    controller.scene_closed()
    assert controller.params.model_dir == shipped_model


def test_a_scene_saved_with_a_moved_extension_finds_today_s_model(scene, shipped_model,
                                                                  controller, tmp_path) -> None:
    """An extension update moves Resources/Models/default: the stored old path still means the
    shipped model; any other missing path stays as stored (the status line says so)."""
    node = controller.parameter_node
    p = read_parameters(node)
    p.model_dir = tmp_path / "Extensions-31000" / "WeakSeg" / "Resources" / "Models" / "default"
    write_parameters(node, p)
    assert controller.params.model_dir == shipped_model
    p.model_dir = tmp_path / "runs" / "gone"
    write_parameters(node, p)
    assert controller.params.model_dir == tmp_path / "runs" / "gone"
    assert "is not a folder" in controller.status_texts()["modelStatusLabel"]


def test_apply_with_the_shipped_model_runs_segment_with_it(scene, shipped_model, controller,
                                                           add_volume,
                                                           fake_segment_python) -> None:
    """Load a case, click Apply: no model chosen, no training; the job gets the bundle."""
    controller.python = fake_segment_python
    volumes = _four_volumes(scene, add_volume)
    controller.update(flair=volumes["flair"])
    assert controller.segment_problem() == "the model needs t1, t1ce, t2: select a volume for each"
    controller.auto_map()
    assert controller.segment_problem() is None and controller.enabled()["applyButton"]
    assert controller.status_texts()["segmentStatusLabel"] == "ready"
    job = controller.apply()
    assert controller.wait(60) == "done", job.error_message()
    command = job.command
    assert command[command.index("--model") + 1] == str(shipped_model)
    assert controller.last_result is not None and controller.review is not None


def test_retraining_the_shipped_model_writes_outside_the_extension(scene, shipped_model,
                                                                   controller,
                                                                   add_volume) -> None:
    import numpy as np

    from WeakSegLib.slicer import logic, nodes
    from WeakSegLib.slicer.review import ReviewRow, ReviewSession

    controller.python = sys.executable
    volumes = _four_volumes(scene, add_volume)
    controller.update(**volumes)
    # a finished segment run's review of slices 2 and 3
    controller.review = ReviewSession([ReviewRow(2, 0.9, 0.1, review_priority=0.9),
                                       ReviewRow(3, 0.8, 0.5, review_priority=0.45)],
                                      controller.params.threshold, case="caseA")
    labels = np.zeros(nodes.geometry_of_volume_node(volumes["flair"]).shape, np.uint8)
    labels[2:4, 3:6, 4:7] = 1
    controller.update(review_table=logic.review_table(scene, controller.review),
                      reference=volumes["flair"],
                      segmentation=nodes.segmentation_node_from_labelmap(scene, labels,
                                                                         volumes["flair"]))
    controller.select_row(1)
    controller.correct()
    job = controller.retrain()
    try:
        out = Path(job.command[job.command.index("--out") + 1])
        assert out.name.startswith("default-mixed-")
        assert shipped_model.parent not in out.parents and out.parent != shipped_model.parent
        assert controller.work_root in out.parents
    finally:
        controller.cancel(wait=True)


def test_model_card_summary(tmp_path) -> None:
    assert defaults.default_model_summary(tmp_path) == "shipped with WeakSeg"
    (tmp_path / "model_card.json").write_text(json.dumps({"name": "BraTS 2018, 4 MR"}))
    assert defaults.default_model_summary(tmp_path) == "shipped: BraTS 2018"
    (tmp_path / "model_card.json").write_text("not json")
    assert defaults.model_card(tmp_path) == {}

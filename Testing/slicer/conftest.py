"""Fixtures of the Slicer-side tests: a real MRML scene (slicer-core), small volume nodes, and a
model bundle folder that looks finished (a manifest only: enough for the panel's rules)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from WeakSegLib.data.reader import Geometry  # noqa: E402
from WeakSegLib.slicer import nodes  # noqa: E402

#: Why a test needing a real MRML scene is skipped. slicer-core has no wheel for Python 3.9
#: (Slicer 5.6-5.8's Python), so there only the tests without a scene run (.ci/run).
NO_SLICER = "slicer-core (pip install slicer-core) is not installed: this test needs real MRML"

REPO = Path(__file__).resolve().parents[2]
SMALL = Geometry((12, 10, 8), (2.0, 2.0, 2.5), (-11.0, 9.0, -8.0),
                 (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


@pytest.fixture()
def scene():
    pytest.importorskip("slicer.util", reason=NO_SLICER)
    scene = nodes.new_scene()
    yield scene
    scene.Clear(1)


def _add_volume(scene, name: str, geometry: Geometry = SMALL, seed: int = 0):
    """A scalar volume node with a bright blob, on ``geometry``."""
    rng = np.random.default_rng(seed)
    array = rng.random(geometry.shape).astype(np.float32) * 100
    array[2:5, 3:7, 4:8] += 400
    return nodes.array_to_volume_node(scene, array, geometry, name)


def _add_red_slice_view(scene):
    """An axial slice node named like Slicer's Red view (what jump/current slice use)."""
    import slicer

    node = slicer.vtkMRMLSliceNode()
    node.SetLayoutName("Red")
    node.SetName("Red")
    node.SetOrientationToAxial()
    return scene.AddNode(node)


def _write_bundle(folder: Path, channels=("flair",), statuses=None) -> Path:
    """A run folder with only a manifest: what bundle checks read (no weights needed)."""
    statuses = statuses or {"classifier": "done", "seeds": "done"}
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"version": "test", "profile": "fast", "channels": list(channels),
                "stages": {name: {"status": status} for name, status in statuses.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(autouse=True)
def no_shipped_model(tmp_path_factory, monkeypatch) -> None:
    """Every test starts without a shipped default model, whether or not the repository has
    one (WeakSeg/Resources/Models/default), so a fresh panel has no model unless a test puts a
    default in place (``shipped_model``)."""
    monkeypatch.setenv("WEAKSEG_DEFAULT_MODEL",
                       str(tmp_path_factory.mktemp("no-model") / "default"))


SHIPPED_CARD = {"data": "BraTS 2018 training cases of ../shared/data/brats2018-multimodal "
                        "(CBICA; skull-stripped, co-registered, 1 mm)",
                "channels": ["flair", "t1", "t1ce", "t2"], "weights": "float16"}


@pytest.fixture()
def shipped_model(tmp_path: Path, monkeypatch) -> Path:
    """A stand-in for the bundle shipped with the extension (a manifest and a model card, no
    weights), where ``$WEAKSEG_DEFAULT_MODEL`` points."""
    folder = _write_bundle(tmp_path / "Resources" / "Models" / "default",
                           channels=("flair", "t1", "t1ce", "t2"))
    (folder / "model_card.json").write_text(json.dumps(SHIPPED_CARD))
    monkeypatch.setenv("WEAKSEG_DEFAULT_MODEL", str(folder))
    return folder


@pytest.fixture()
def add_volume():
    return _add_volume


@pytest.fixture()
def red_view(scene):
    return _add_red_slice_view(scene)


@pytest.fixture()
def write_bundle():
    return _write_bundle


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    return _write_bundle(tmp_path / "bundle")


FAKE_SEGMENT = '''#!{python}
"""Stands in for ``python -m WeakSegLib.slicer.job_main WeakSegLib.cli segment ...``: writes what
the real command writes (label map on the FLAIR grid, slices.csv with the review priority and
its flag) from a brightness threshold, with the same events, in a fraction of a second. Without
--method it writes config's default method, as ``segment`` does; with WEAKSEG_FAKE_OLD_CSV=1 it
writes the slices.csv of a WeakSeg from before the review priority."""
import json, os, sys
from pathlib import Path
import numpy as np
import SimpleITK as sitk
from WeakSegLib.config import get_profile

args = sys.argv[1:]
assert args[:4] == ["-m", "WeakSegLib.slicer.job_main", "WeakSegLib.cli", "segment"], args
value = lambda flag: args[args.index(flag) + 1]
inference = get_profile("fast").inference
case_dir, out = Path(value("--input")), Path(value("--out"))
method = value("--method") if "--method" in args else inference.default_method
case = case_dir.name
def event(kind, **fields):
    print(json.dumps({{"event": kind, "time": "t", **fields}}), flush=True)
event("run_start", stages=["segment"])
event("stage_start", stage="segment")
flair = sitk.ReadImage(str(case_dir / f"{{case}}_flair.nii"))
array = sitk.GetArrayFromImage(flair)
labels = (array > np.percentile(array, 90)).astype(np.uint8)
result = sitk.GetImageFromArray(labels)
result.CopyInformation(flair)
(out / case).mkdir(parents=True, exist_ok=True)
sitk.WriteImage(result, str(out / case / f"{{case}}_{{method}}.nii.gz"), True)
depth = labels.shape[0]
if os.environ.get("WEAKSEG_FAKE_OLD_CSV") == "1":
    rows = ["slice,classifier_score,difference_score,flagged"]
    for z in range(depth):
        d = "" if not labels[z].any() else f"{{0.05 + 0.04 * z:.3f}}"
        rows.append(f"{{z}},{{0.95 - 0.04 * z:.3f}},{{d}},{{int(bool(d) and float(d) < 0.2)}}")
else:
    rows = ["slice,classifier_score,difference_score,review_priority,flagged"]
    for z in range(depth):
        d = "" if not labels[z].any() else f"{{0.05 + 0.04 * z:.3f}}"
        priority = round(((7 * z) % depth) / depth, 4)     # an order unlike the slices'
        flagged = int(priority >= inference.review_threshold)
        rows.append(f"{{z}},{{0.95 - 0.04 * z:.3f}},{{d}},{{priority}},{{flagged}}")
(out / case / f"{{case}}_slices.csv").write_text("\\n".join(rows) + "\\n")
event("progress", stage="segment", done=1, total=1, unit="case")
event("stage_end", stage="segment", seconds=0.1, status="done")
event("run_end", status="done")
'''


@pytest.fixture()
def fake_segment_python(tmp_path: Path) -> str:
    """An executable standing in for the job's Python on ``segment`` (see FAKE_SEGMENT)."""
    import os
    import sys

    path = tmp_path / "fake-python"
    path.write_text(FAKE_SEGMENT.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)

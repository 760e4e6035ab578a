"""Fixtures of the Slicer-side tests: a real MRML scene (slicer-core), small volume nodes, and a
model bundle folder that looks finished (a manifest only: enough for the panel's rules)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed: "
                    "the Slicer-side tests need a real MRML scene")

from WeakSegLib.data.reader import Geometry  # noqa: E402
from WeakSegLib.slicer import nodes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SMALL = Geometry((12, 10, 8), (2.0, 2.0, 2.5), (-11.0, 9.0, -8.0),
                 (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


@pytest.fixture()
def scene():
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

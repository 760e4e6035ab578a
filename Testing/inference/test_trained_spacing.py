"""The in-plane spacing a bundle was trained at: recorded with the run's config, 1 mm (the BraTS
training spacing) for a bundle from before it was recorded; and the slice table's numbers."""
from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import SimpleITK as sitk

from WeakSegLib.config import get_profile, profile_from_dict
from WeakSegLib.data.frame import InputFrame
from WeakSegLib.data.geometry import Geometry
from WeakSegLib.inference.outputs import input_slice_rows, slice_rows
from WeakSegLib.paths import default_model_dir


def test_an_old_bundle_is_taken_as_trained_at_1_mm() -> None:
    recorded = json.loads(json.dumps(asdict(get_profile("fast"))))
    del recorded["data"]["inplane_spacing"]           # a manifest from before it was recorded
    assert profile_from_dict(recorded).data.inplane_spacing == 1.0


def test_the_shipped_bundle_was_trained_at_1_mm() -> None:
    manifest = json.loads((default_model_dir() / "manifest.json").read_text())
    assert profile_from_dict(manifest["config"]).data.inplane_spacing == 1.0


def test_the_trained_spacing_travels_with_the_recorded_config() -> None:
    profile = get_profile("fast")
    profile = replace(profile, data=replace(profile.data, inplane_spacing=0.8))
    recorded = json.loads(json.dumps(asdict(profile)))              # as the manifest holds it
    assert profile_from_dict(recorded).data.inplane_spacing == 0.8


def test_slice_table_counts_the_input_slices() -> None:
    """An axial scan stored top to bottom: the model's slice 0 is the input's last slice."""
    image = sitk.GetImageFromArray(np.zeros((5, 4, 3), np.float32))
    frame = InputFrame.of(Geometry.of(sitk.DICOMOrient(image, "LPI")))
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.4], np.float32)
    rows = input_slice_rows(slice_rows(scores, np.full(5, np.nan), scores, 0.5), frame)
    assert [r["slice"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[4]["classifier_score"] == 0.9 and rows[4]["flagged"]
    assert {r["slice_axis"] for r in rows} == {"k"}

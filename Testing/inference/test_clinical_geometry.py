"""Issue 14 "Must show": a BraTS case stored as a clinic would store it segments like the original.

One brats2018-multimodal case with the default model (FLAIR, T1, T1ce, T2): (a) reoriented to a
sagittal array layout, (b) resampled to 0.5 × 0.5 × 3 mm with its T1 on a third grid (another
series). Each derived segmentation is written on its input's own grid, then resampled back to
the original case grid with SimpleITK and compared with the original's segmentation there.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.geometry import Geometry
from WeakSegLib.events import EventWriter, parse_events
from WeakSegLib.inference.bundle import default_method, load_bundle
from WeakSegLib.inference.segment import segment_cohort

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brats2018-multimodal"
CASE = "Brats18_CBICA_AMH_1"
KEYS = ("flair", "t1", "t1ce", "t2", "seg")


@pytest.fixture(scope="module")
def original() -> Path:
    folder = DATA / CASE
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the issue-14 geometry tests need the real data")
    return folder


@pytest.fixture(scope="module")
def bundle():
    import torch

    torch.set_num_threads(1)
    return load_bundle("default", "cpu")


def _segment(bundle, folder: Path, out: Path) -> tuple[Path, list[dict]]:
    """The default method's label map of the case in ``folder``, and the events."""
    method = default_method(bundle)
    events = out / "events.jsonl"
    with EventWriter(events) as writer:
        segment_cohort(bundle, discover_cohort(folder), out, [method], events=writer,
                       show_progress=False)
    return out / folder.name / f"{folder.name}_{method}.nii.gz", \
        list(parse_events(events.read_text().splitlines()))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def _on_grid(image: sitk.Image, reference: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(),
                                                sitk.sitkNearestNeighbor, 0))


def _grid(reference: sitk.Image, spacing: tuple[float, float, float],
          shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> sitk.Image:
    """A grid covering ``reference``'s extent at ``spacing``, its origin moved by ``shift`` mm."""
    extent = np.array(reference.GetSize()) * np.array(reference.GetSpacing())
    size = [int(round(e / s)) for e, s in zip(extent, spacing)]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetDirection(reference.GetDirection())
    start = np.array(reference.GetOrigin()) - np.array(reference.GetSpacing()) / 2 \
        + np.array(spacing) / 2 + np.array(shift)
    grid.SetOrigin(tuple(float(v) for v in start))
    return grid


@pytest.fixture(scope="module")
def reference_labels(original: Path, bundle, tmp_path_factory) -> tuple[sitk.Image, np.ndarray]:
    out = tmp_path_factory.mktemp("original")
    path, _ = _segment(bundle, original, out)
    image = sitk.ReadImage(str(path))
    labels = sitk.GetArrayFromImage(image)
    assert labels.sum() > 1000, "the original case must have a segmentation to compare with"
    return image, labels


def test_sagittal_layout_segments_like_the_original(original: Path, bundle, reference_labels,
                                                     tmp_path: Path) -> None:
    reference, labels = reference_labels
    folder = tmp_path / "in" / f"{CASE}_sag"
    folder.mkdir(parents=True)
    for key in KEYS:
        image = sitk.ReadImage(str(original / f"{CASE}_{key}.nii.gz"))
        sitk.WriteImage(sitk.DICOMOrient(image, "PIR"), str(folder / f"{CASE}_sag_{key}.nii.gz"))
    path, _ = _segment(bundle, folder, tmp_path / "out")
    written = sitk.ReadImage(str(path))
    flair = sitk.ReadImage(str(folder / f"{CASE}_sag_flair.nii.gz"))
    assert Geometry.of(written).differences(Geometry.of(flair)) == []   # the input's own grid
    dice = _dice(_on_grid(written, reference), labels)
    print(f"\nsagittal layout: Dice vs the original's segmentation = {dice:.4f}")
    assert dice >= 0.95
    provenance = json.loads((tmp_path / "out" / "weakseg_segment.json").read_text())
    frame = provenance["runs"][-1]["frames"][f"{CASE}_sag"]
    assert frame["acquisition"] == "sagittal" and frame["slice_axis"] != "k"
    table = (path.parent / f"{CASE}_sag_slices.csv").read_text().splitlines()
    assert table[0].endswith(",slice_axis") and table[1].endswith(f",{frame['slice_axis']}")


def test_resampled_case_with_t1_on_a_third_grid_segments_like_the_original(
        original: Path, bundle, reference_labels, tmp_path: Path) -> None:
    reference, labels = reference_labels
    folder = tmp_path / "in" / f"{CASE}_fine"
    folder.mkdir(parents=True)
    flair_grid = _grid(reference, (0.5, 0.5, 3.0))
    t1_grid = _grid(reference, (0.9, 0.9, 4.0), shift=(0.3, -0.4, 1.1))
    for key in KEYS:
        image = sitk.ReadImage(str(original / f"{CASE}_{key}.nii.gz"))
        grid = t1_grid if key == "t1" else flair_grid
        kind = sitk.sitkNearestNeighbor if key == "seg" else sitk.sitkLinear
        resampled = sitk.Resample(image, grid, sitk.Transform(), kind, 0, image.GetPixelID())
        sitk.WriteImage(resampled, str(folder / f"{CASE}_fine_{key}.nii.gz"))
    path, events = _segment(bundle, folder, tmp_path / "out")
    written = sitk.ReadImage(str(path))
    assert Geometry.of(written).differences(Geometry.of(flair_grid)) == []
    warnings = [e["message"] for e in events if e["event"] == "log" and e["level"] == "warning"]
    assert len(warnings) == 1 and f"{CASE}_fine_t1.nii.gz" in warnings[0]
    dice = _dice(_on_grid(written, reference), labels)
    print(f"\n0.5 x 0.5 x 3 mm, T1 on a third grid: Dice vs the original's = {dice:.4f}")
    assert dice >= 0.85

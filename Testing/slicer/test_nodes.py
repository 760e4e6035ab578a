"""MRML node I/O against the real MRML of the slicer-core wheel and a real BraTS 2018 case.

Skipped as a whole when ``slicer`` (the slicer-core wheel, or Slicer's own Python) is absent.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer.util", reason="slicer-core (pip install slicer-core) is not "
                    "installed: the MRML node I/O tests need a real MRML scene")
import slicer  # noqa: E402  (slicer-core's; Testing/slicer alone would be a namespace package)
sitk = pytest.importorskip("SimpleITK")

from WeakSegLib.data.reader import Geometry  # noqa: E402
from WeakSegLib.slicer import nodes  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CASE = DATA / "brats2018-sample" / "Brats18_CBICA_AAB_1"
FLAIR = CASE / "Brats18_CBICA_AAB_1_flair.nii.gz"
T1 = CASE / "Brats18_CBICA_AAB_1_t1.nii.gz"
SEG = CASE / "Brats18_CBICA_AAB_1_seg.nii.gz"


@pytest.fixture(scope="module")
def case() -> Path:
    if not FLAIR.exists():
        pytest.skip(f"real data not found at {CASE} (expected ../shared/data beside the repo)")
    return CASE


@pytest.fixture()
def scene():
    scene = nodes.new_scene()
    yield scene
    scene.Clear(1)


def _assert_same_geometry(a: Geometry, b: Geometry) -> None:
    assert a.size == b.size
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-6)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-6)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)


# ------------------------------------------------------------------ pure geometry

def test_ras_matrix_round_trip_oblique() -> None:
    angle = 0.3
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0],
                         [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    geometry = Geometry((5, 6, 7), (0.5, 0.75, 2.0), (10.0, -20.0, 30.0),
                        tuple(rotation.ravel()))
    matrix = nodes.ras_matrix_from_geometry(geometry)
    # origin in RAS: x and y flip sign
    np.testing.assert_allclose(matrix[:3, 3], [-10.0, 20.0, 30.0])
    _assert_same_geometry(nodes.geometry_from_ras_matrix(matrix, geometry.size), geometry)


def test_array_to_volume_node_round_trip(scene) -> None:
    rng = np.random.default_rng(0)
    array = rng.random((4, 5, 6)).astype(np.float32)
    geometry = Geometry((6, 5, 4), (0.9, 1.1, 3.0), (-12.5, 40.0, 7.25),
                        (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    node = nodes.array_to_volume_node(scene, array, geometry, "synthetic")
    back, back_geometry = nodes.volume_node_to_array(node)
    assert back.dtype == np.float32 and np.array_equal(back, array)
    _assert_same_geometry(back_geometry, geometry)
    with pytest.raises(ValueError):
        nodes.array_to_volume_node(scene, array[:2], geometry, "wrong")


# ------------------------------------------------------------------ real case

@pytest.mark.realdata
def test_volume_nodes_match_simpleitk(case, scene) -> None:
    for path in (FLAIR, T1):
        node = nodes.load_volume_node(scene, path)
        image = sitk.ReadImage(str(path))
        array, geometry = nodes.volume_node_to_array(node)
        expected = sitk.GetArrayFromImage(image).astype(np.float32)
        assert array.shape == expected.shape and array.dtype == np.float32
        assert np.array_equal(array, expected)
        _assert_same_geometry(geometry, Geometry.of(image))
        # and the RAS side is what Slicer itself shows: LPS origin with x, y negated
        np.testing.assert_allclose(node.GetOrigin(),
                                   nodes.LPS_TO_RAS @ np.asarray(image.GetOrigin()), atol=1e-6)
        # a node made from the array sits exactly where the file's node sits
        copy = nodes.array_to_volume_node(scene, array, geometry, node.GetName() + "_copy")
        _assert_same_geometry(nodes.geometry_of_volume_node(copy), geometry)
        assert np.array_equal(nodes.volume_node_to_array(copy)[0], expected)


@pytest.mark.realdata
def test_segmentation_round_trip_and_seg_nrrd(case, scene, tmp_path) -> None:
    reference = nodes.load_volume_node(scene, FLAIR)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(SEG))) > 0
    assert mask.any()
    count_before = scene.GetNumberOfNodes()
    segmentation = nodes.segmentation_node_from_labelmap(scene, mask.astype(np.uint8), reference,
                                                         color=(1.0, 0.5, 0.0))
    seg = segmentation.GetSegmentation()
    assert seg.GetNumberOfSegments() == 1
    segment = seg.GetNthSegment(0)
    assert segment.GetName() == "Tumor"
    np.testing.assert_allclose(segment.GetColor(), (1.0, 0.5, 0.0))
    # the temporary labelmap is gone: only the segmentation and its display node were added
    assert scene.GetNumberOfNodes() == count_before + 2

    labels = nodes.labelmap_from_segmentation_node(segmentation, reference)
    assert labels.dtype == np.uint8 and labels.shape == mask.shape
    assert np.array_equal(labels, mask.astype(np.uint8))
    assert np.array_equal(nodes.labelmap_from_segmentation_node(segmentation, reference,
                                                                ["Tumor"]), labels)
    with pytest.raises(KeyError):
        nodes.labelmap_from_segmentation_node(segmentation, reference, ["Edema"])

    # .seg.nrrd written by Slicer's storage node, read by SimpleITK: same voxels, same grid
    path = nodes.save_segmentation_node(segmentation, tmp_path / "case.seg.nrrd")
    image = sitk.ReadImage(str(path))
    _assert_same_geometry(Geometry.of(image), Geometry.of(sitk.ReadImage(str(FLAIR))))
    assert np.array_equal(sitk.GetArrayFromImage(image) > 0, mask)
    assert image.GetMetaData("Segment0_Name") == "Tumor"
    # ... and back into Slicer
    reread = nodes.load_segmentation_node(scene, path)
    assert reread.GetSegmentation().GetNthSegment(0).GetName() == "Tumor"
    assert np.array_equal(nodes.labelmap_from_segmentation_node(reread, reference), labels)

    nifti = nodes.save_labelmap_nifti(segmentation, reference, tmp_path / "case.nii.gz")
    written = sitk.ReadImage(str(nifti))
    _assert_same_geometry(Geometry.of(written), Geometry.of(sitk.ReadImage(str(FLAIR))))
    assert np.array_equal(sitk.GetArrayFromImage(written), mask.astype(np.uint8))


@pytest.mark.realdata
def test_empty_mask_gives_empty_named_segment(case, scene) -> None:
    reference = nodes.load_volume_node(scene, T1)
    shape = nodes.geometry_of_volume_node(reference).shape
    segmentation = nodes.segmentation_node_from_labelmap(scene, np.zeros(shape, np.uint8),
                                                         reference)
    assert segmentation.GetSegmentation().GetNthSegment(0).GetName() == "Tumor"
    assert not nodes.labelmap_from_segmentation_node(segmentation, reference).any()
    with pytest.raises(ValueError):
        nodes.segmentation_node_from_labelmap(scene, np.zeros((2, 2, 2), np.uint8), reference)


# ------------------------------------------------------------------ modalities

@pytest.mark.parametrize("name, key", [
    ("Brats18_CBICA_AAB_1_flair", "flair"),
    ("Brats18_CBICA_AAB_1_t1", "t1"),
    ("Brats18_CBICA_AAB_1_t1ce", "t1ce"),
    ("BraTS-GLI-00001-000-t2f", "flair"),
    ("BraTS-GLI-00001-000-t1n", "t1"),
    ("BraTS-GLI-00001-000-t2w", "t2"),
    ("FLAIR", "flair"),
    ("t1gd", "t1ce"),
    ("flair_1", "flair"),
    ("Brats18_CBICA_AAB_1_flair.nii.gz", "flair"),
    ("Brats18_CBICA_AAB_1_seg", "seg"),
    ("Volume", None),
    ("", None),
])
def test_modality_from_node_name(name: str, key: str | None) -> None:
    assert nodes.modality_from_node_name(name) == key


def test_auto_map_modalities(scene) -> None:
    geometry = Geometry((2, 2, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    zeros = np.zeros(geometry.shape, np.float32)
    made = {n: nodes.array_to_volume_node(scene, zeros, geometry, n) for n in
            ("BraTS-GLI-00001-000-t2w", "Brats18_CBICA_AAB_1_flair", "something", "T1GD",
             "Brats18_CBICA_AAB_1_seg", "flair_1")}
    label = nodes.array_to_volume_node(scene, zeros.astype(np.uint8), geometry, "t1",
                                       labelmap=True)
    mapping = nodes.auto_map_modalities([*made.values(), label])
    assert list(mapping) == ["flair", "t1ce", "t2"]
    assert mapping["flair"] is made["Brats18_CBICA_AAB_1_flair"]      # first one wins
    assert mapping["t1ce"] is made["T1GD"]
    assert mapping["t2"] is made["BraTS-GLI-00001-000-t2w"]
    # all scalar volumes of a scene, as the panel would pass them
    volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    assert nodes.auto_map_modalities(volumes) == mapping


# ------------------------------------------------------------------ review table

def test_review_table_round_trip(scene) -> None:
    rows = [
        {"slice": 71, "review_priority": 0.9, "classifier_score": 0.12, "difference_score": None,
         "flagged": True, "status": "pending"},
        {"slice": 70, "review_priority": 0.3, "classifier_score": 0.93, "difference_score": 0.41,
         "flagged": False, "status": "accepted"},
        {"slice": 72, "priority": 0.1, "classifier score": 0.5, "difference score": 0.0,
         "flagged": 1, "status": "rejected"},
    ]
    node = nodes.review_table_node(scene, rows, "review")
    assert node.IsA("vtkMRMLTableNode") and node.GetName() == "review"
    assert [node.GetColumnName(i) for i in range(node.GetNumberOfColumns())] == \
        ["slice", "priority", "classifier score", "difference score", "flagged", "status"]
    # two-line headers keep the table narrow in the panel; the names stay for reading back
    assert node.GetColumnTitle("classifier score") == "classifier\nscore"
    assert "look first" in node.GetColumnDescription("priority")
    assert node.GetNumberOfRows() == 3
    back = nodes.rows_from_review_table(node)
    assert [r["slice"] for r in back] == [71, 70, 72]                 # the rows' own order
    assert back[0] == rows[0]
    assert back[1] == rows[1]
    assert back[2] == {"slice": 72, "review_priority": 0.1, "classifier_score": 0.5,
                       "difference_score": 0.0, "flagged": True, "status": "rejected"}
    # refill in place (threshold slider re-flags): same node, new rows
    same = nodes.review_table_node(scene, rows[:1], node=node)
    assert same is node and node.GetNumberOfRows() == 1 and node.GetNumberOfColumns() == 6
    assert nodes.rows_from_review_table(node) == rows[:1]


def test_a_review_table_saved_before_the_priority_column_reads_back(scene) -> None:
    node = nodes.review_table_node(scene, [
        {"slice": 3, "classifier_score": 0.8, "difference_score": 0.1, "flagged": True,
         "status": "pending"}])
    node.RemoveColumn(node.GetColumnIndex("priority"))      # as an older WeakSeg saved it
    assert nodes.rows_from_review_table(node) == [
        {"slice": 3, "review_priority": None, "classifier_score": 0.8, "difference_score": 0.1,
         "flagged": True, "status": "pending"}]
    node.RemoveColumn(node.GetColumnIndex("status"))        # a required column is still required
    with pytest.raises(KeyError, match="status"):
        nodes.rows_from_review_table(node)

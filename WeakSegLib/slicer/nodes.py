"""MRML node I/O: arrays and grids in and out of a Slicer scene.

WeakSegLib works on (z, y, x) numpy arrays and a ``Geometry`` in LPS (the ITK/SimpleITK/NIfTI
convention); Slicer's nodes live in RAS. Everything crossing that border goes through this
module, so the sign flip of the first two axes happens in one place only.

Nothing here imports ``slicer`` or ``vtk`` at module level: ``WeakSegLib`` must import without
Slicer. The functions take a scene (``slicer.mrmlScene`` inside Slicer, ``new_scene()`` in
tests) instead of reaching for the application, which also lets them run on the ``slicer-core``
wheel (real MRML, no GUI, no ``slicer.app``), where ``slicer.util.loadVolume``/``saveNode``/
``addVolumeFromArray`` are unusable because they need ``slicer.app`` or ``slicer.mrmlScene``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..config import MASK_KEY, MODALITIES
from ..data.modalities import recognise_modality
from ..data.reader import Geometry

#: Multiplying LPS coordinates by this gives RAS ones (and back): the first two axes flip.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

#: Default segment colour (r, g, b in 0..1): a warm yellow that reads on grey MR.
TUMOR_COLOR: tuple[float, float, float] = (0.95, 0.84, 0.22)


# ---------------------------------------------------------------- geometry (pure numpy)

def ras_matrix_from_geometry(geometry: Geometry) -> np.ndarray:
    """4x4 IJK→RAS matrix of an LPS ``Geometry``: what a volume node needs to sit on the grid."""
    direction = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(geometry.spacing)
    matrix[:3, 3] = LPS_TO_RAS @ np.asarray(geometry.origin, dtype=float)
    return matrix


def geometry_from_ras_matrix(matrix: np.ndarray, size: tuple[int, int, int]) -> Geometry:
    """LPS ``Geometry`` of a 4x4 IJK→RAS matrix and an (x, y, z) size."""
    matrix = np.asarray(matrix, dtype=float)
    lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = LPS_TO_RAS @ matrix[:3, 3]
    return Geometry(tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                    tuple(float(o) + 0.0 for o in origin),          # + 0.0: no "-0.0"
                    tuple(float(d) + 0.0 for d in direction.ravel()))


# ---------------------------------------------------------------- scene and volumes

def new_scene() -> Any:
    """A bare MRML scene with Slicer's default colour tables (what display nodes look up).

    Inside Slicer use ``slicer.mrmlScene``; this is for headless use and tests.
    """
    import slicer

    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)          # adds the "Labels", "Grey", ... colour nodes
    colors.SetMRMLScene(None)           # the nodes stay; the logic need not outlive this call
    return scene


def _vtk_matrix(array: np.ndarray) -> Any:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _numpy_matrix(matrix: Any) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def geometry_of_volume_node(node: Any) -> Geometry:
    """LPS ``Geometry`` of a volume node (its IJK→RAS matrix and image dimensions)."""
    import vtk

    image = node.GetImageData()
    if image is None:
        raise ValueError(f"volume node {node.GetName()!r} has no image data")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return geometry_from_ras_matrix(_numpy_matrix(matrix), tuple(image.GetDimensions()))


def set_volume_node_geometry(node: Any, geometry: Geometry) -> None:
    """Place a volume node on an LPS ``Geometry`` (origin, spacing, directions)."""
    node.SetIJKToRASMatrix(_vtk_matrix(ras_matrix_from_geometry(geometry)))


def volume_node_to_array(node: Any) -> tuple[np.ndarray, Geometry]:
    """(z, y, x) float32 copy of a volume node's voxels and its LPS grid: the model's input."""
    import slicer.util

    array = np.array(slicer.util.arrayFromVolume(node), dtype=np.float32, copy=True)
    return array, geometry_of_volume_node(node)


def array_to_volume_node(scene: Any, array: np.ndarray, geometry: Geometry, name: str,
                         labelmap: bool = False) -> Any:
    """New volume node holding a (z, y, x) array on ``geometry``; a labelmap node if asked."""
    import slicer.util

    array = np.ascontiguousarray(array)
    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"array of shape {array.shape} does not fit the grid {geometry.shape}")
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name)
    set_volume_node_geometry(node, geometry)
    slicer.util.updateVolumeFromArray(node, array)
    node.CreateDefaultDisplayNodes()
    return node


def _read_into(scene: Any, node: Any, storage_class: str, path: Path) -> Any:
    """Read ``path`` into ``node`` through a new storage node; on failure leave nothing behind."""
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise OSError(f"Slicer could not read {path}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node


def load_volume_node(scene: Any, path: str | Path, name: str | None = None,
                     labelmap: bool = False) -> Any:
    """Read an image file (NIfTI, NRRD, ...) into a new volume node with Slicer's own reader.

    ``slicer.util.loadVolume`` needs the application; this needs only a scene, so the same
    code path reads files inside Slicer and headless.
    """
    path = Path(path)
    if name is None:
        name = path.name
        for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name)
    return _read_into(scene, node, "vtkMRMLVolumeArchetypeStorageNode", path)


# ---------------------------------------------------------------- segmentations

def segmentation_node_from_labelmap(scene: Any, labels: np.ndarray, reference_volume_node: Any,
                                    name: str = "WeakSeg", segment_name: str = "Tumor",
                                    color: tuple[float, float, float] = TUMOR_COLOR) -> Any:
    """Segmentation node with one named, coloured segment: the voxels where ``labels > 0``.

    Goes through a temporary labelmap volume node and the Segmentations logic's
    ``ImportLabelmapToSegmentationNode``, exactly what Slicer's own "import labelmap" does,
    so the segment lands on the reference volume's grid without resampling.
    """
    import slicer

    ensure_segmentation_converters()
    labels = np.asarray(labels)
    reference = geometry_of_volume_node(reference_volume_node)
    if tuple(labels.shape) != reference.shape:
        raise ValueError(f"labels of shape {labels.shape} do not fit the reference volume "
                         f"{reference_volume_node.GetName()!r} of shape {reference.shape}")
    temporary = array_to_volume_node(scene, (labels > 0).astype(np.uint8), reference,
                                     f"{name}_import", labelmap=True)
    try:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        segmentation_node.CreateDefaultDisplayNodes()
        segmentation = segmentation_node.GetSegmentation()
        before = segmentation.GetNumberOfSegments()
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            temporary, segmentation_node)
        if not ok:
            scene.RemoveNode(segmentation_node)
            raise RuntimeError("Slicer could not import the labelmap into a segmentation")
        if segmentation.GetNumberOfSegments() == before:       # an empty mask: no segment made
            segment_id = segmentation.AddEmptySegment("", segment_name, list(color))
        else:
            segment_id = segmentation.GetNthSegmentID(before)
        segment = segmentation.GetSegment(segment_id)
        segment.SetName(segment_name)
        segment.SetColor(*color)
        return segmentation_node
    finally:
        _remove_with_helpers(scene, temporary)


def ensure_segmentation_converters() -> None:
    """Register the labelmap ⇄ closed-surface converter rules if nobody has.

    Slicer's Segmentations module registers them at start-up; the slicer-core wheel does not,
    and without them a segmentation cannot even hold an empty labelmap segment or make a
    3D surface. Inside Slicer this finds the rules there and does nothing.
    """
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def _remove_with_helpers(scene: Any, node: Any) -> None:
    """Remove a temporary node and the display/storage nodes made for it."""
    helpers = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None:
            scene.RemoveNode(helper)


def segment_ids(segmentation_node: Any, names: Iterable[str] | None = None) -> list[str]:
    """Segment ids in order; those whose name is in ``names`` if given (unknown names: error)."""
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    if names is None:
        return ids
    by_name = {segmentation.GetSegment(i).GetName(): i for i in ids}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"no segment named {missing} in {segmentation_node.GetName()!r}; "
                       f"there are {sorted(by_name)}")
    return [by_name[n] for n in names]


def labelmap_from_segmentation_node(segmentation_node: Any, reference_volume_node: Any,
                                    segment_names: Iterable[str] | None = None) -> np.ndarray:
    """(z, y, x) uint8 labels on the reference volume's grid: segment k (1-based order) → k.

    Uses the Segmentations logic's export, which resamples onto the reference geometry; this is
    how a radiologist's edits in the Segment Editor come back to WeakSeg (review, retraining).
    """
    import slicer
    import vtk

    reference = geometry_of_volume_node(reference_volume_node)
    ids = segment_ids(segmentation_node, segment_names)
    if not ids:
        return np.zeros(reference.shape, dtype=np.uint8)
    scene = segmentation_node.GetScene()
    temporary = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode",
                                        f"{segmentation_node.GetName()}_export")
    temporary.CreateDefaultDisplayNodes()
    try:
        id_array = vtk.vtkStringArray()
        for segment_id in ids:
            id_array.InsertNextValue(segment_id)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, id_array, temporary, reference_volume_node)
        if not ok:
            raise RuntimeError(f"Slicer could not export {segmentation_node.GetName()!r}")
        array, geometry = volume_node_to_array(temporary)
        if geometry.differences(reference):
            raise RuntimeError("exported labelmap is off the reference grid: "
                               + "; ".join(geometry.differences(reference)))
        return array.astype(np.uint8)
    finally:
        _remove_with_helpers(scene, temporary)


def save_segmentation_node(segmentation_node: Any, path: str | Path) -> Path:
    """Write a segmentation as ``.seg.nrrd`` (segment names, colours kept) via its storage node.

    ``slicer.util.saveNode`` needs the application; the storage node does the same work.
    """
    path = Path(path)
    scene = segmentation_node.GetScene()
    storage = segmentation_node.GetStorageNode()
    if storage is None:
        storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        segmentation_node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(str(path))
    if not storage.WriteData(segmentation_node):
        raise OSError(f"Slicer could not write {path}")
    return path


def load_segmentation_node(scene: Any, path: str | Path, name: str | None = None) -> Any:
    """Read a ``.seg.nrrd`` (or a labelmap file) into a new segmentation node."""
    ensure_segmentation_converters()
    path = Path(path)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                   name or path.name.split(".")[0])
    return _read_into(scene, node, "vtkMRMLSegmentationStorageNode", path)


def save_labelmap_nifti(segmentation_node: Any, reference_volume_node: Any,
                        path: str | Path) -> Path:
    """Write the segmentation as a label volume (``.nii.gz``) on the reference grid, LPS."""
    import SimpleITK as sitk

    labels = labelmap_from_segmentation_node(segmentation_node, reference_volume_node)
    image = geometry_of_volume_node(reference_volume_node).image_from_array(labels)
    sitk.WriteImage(image, str(path), True)
    return Path(path)


# ---------------------------------------------------------------- modalities from node names

def modality_from_node_name(name: str, aliases: Mapping[str, str] | None = None) -> str | None:
    """Modality key a node's name says (same rule as for file names), or None.

    A trailing numeric token that Slicer adds to make names unique ("flair_1") is ignored when
    the name is not recognised with it.
    """
    clean = name.replace("/", "_").replace("\\", "_").strip()
    if not clean:
        return None
    found = recognise_modality(Path(clean), aliases)
    if found is None:
        head, sep, tail = clean.rpartition("_")
        if sep and tail.isdigit() and head:
            found = recognise_modality(Path(head), aliases)
    return found


def auto_map_modalities(volume_nodes: Iterable[Any],
                        aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Fill the panel's modality selectors from node names: {modality: node}, canonical order.

    Labelmap nodes and mask names are skipped; when two nodes claim a modality the first wins
    (the user can still change the selector).
    """
    found: dict[str, Any] = {}
    for node in volume_nodes:
        if node is None or (hasattr(node, "IsA") and node.IsA("vtkMRMLLabelMapVolumeNode")):
            continue
        key = modality_from_node_name(node.GetName() or "", aliases)
        if key is None or key == MASK_KEY or key not in MODALITIES:
            continue
        found.setdefault(key, node)
    return {m: found[m] for m in MODALITIES if m in found}


# ---------------------------------------------------------------- review table

#: (column name, row dict key, Python type), in the order shown: highest priority first is the
#: table's row order, so the priority is the second column.
REVIEW_COLUMNS: tuple[tuple[str, str, type], ...] = (
    ("slice", "slice", int),
    ("priority", "review_priority", float),
    ("classifier score", "classifier_score", float),
    ("difference score", "difference_score", float),
    ("flagged", "flagged", bool),
    ("status", "status", str),
)
#: Columns a review table saved by an older WeakSeg may lack (read back as None).
OPTIONAL_REVIEW_COLUMNS: tuple[str, ...] = ("priority",)
#: Header text where it differs from the column name: two lines keep the table narrow enough
#: for the module panel (the names, which reading the table back relies on, stay as they are).
REVIEW_COLUMN_TITLES: dict[str, str] = {"classifier score": "classifier\nscore",
                                        "difference score": "difference\nscore"}
REVIEW_COLUMN_DESCRIPTIONS: dict[str, str] = {
    "priority": "Review priority in [0, 1]: how likely the slice's segmentation is wrong "
                "(higher = look first; empty for results without it)",
    "classifier score": "The classifier's tumour score of the slice",
    "difference score": "Seed 000's difference score D (empty: nothing segmented)",
    "flagged": "1: the slice needs a look (score past the threshold)",
    "status": "pending, accepted, corrected or rejected",
}


def _cell(row: Mapping[str, Any], key: str, title: str) -> Any:
    return row.get(key, row.get(title))


def review_table_node(scene: Any, rows: Iterable[Mapping[str, Any]], name: str = "WeakSeg review",
                      node: Any | None = None) -> Any:
    """Table node (slice, priority, classifier score, difference score, flagged, status) from
    row dicts, in their order (the review's: highest priority first).

    Keys are ``slice``, ``review_priority``, ``classifier_score``, ``difference_score``,
    ``flagged``, ``status`` (the column names work too). Pass ``node`` to refill an existing
    table in place, e.g. after the threshold slider re-flags rows; a missing score is NaN.
    """
    import vtk

    rows = list(rows)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    arrays = {key: (vtk.vtkIntArray() if kind in (int, bool) else
                    vtk.vtkDoubleArray() if kind is float else vtk.vtkStringArray())
              for _, key, kind in REVIEW_COLUMNS}
    for title, key, _ in REVIEW_COLUMNS:
        arrays[key].SetName(title)
    for row in rows:
        for title, key, kind in REVIEW_COLUMNS:
            value = _cell(row, key, title)
            if kind is float:
                arrays[key].InsertNextValue(math.nan if value is None else float(value))
            elif kind is bool:
                arrays[key].InsertNextValue(int(bool(value)))
            elif kind is int:
                arrays[key].InsertNextValue(int(value))
            else:
                arrays[key].InsertNextValue("" if value is None else str(value))
    was_modifying = node.StartModify()
    try:
        node.RemoveAllColumns()
        table = node.GetTable()
        for _, key, _type in REVIEW_COLUMNS:
            table.AddColumn(arrays[key])
        for column, description in REVIEW_COLUMN_DESCRIPTIONS.items():
            node.SetColumnDescription(column, description)
        for column, title in REVIEW_COLUMN_TITLES.items():
            node.SetColumnTitle(column, title)
        # Column titles as the header: otherwise qMRMLTableModel shows them as an editable first
        # row and model row i + 1 is data row i. Locked: the view cannot edit or rename cells
        # (a renamed column would break reading the review back).
        set_column_titles_as_header(node)
        node.SetLocked(True)
        node.Modified()
    finally:
        node.EndModify(was_modifying)
    return node


def set_column_titles_as_header(node: Any, on: bool = True) -> None:
    """Show column titles as the table view's header (Slicer >= 5.2 calls it "title", older
    versions "name"; SegmentStatistics does the same)."""
    if hasattr(node, "SetUseColumnTitleAsColumnHeader"):
        node.SetUseColumnTitleAsColumnHeader(on)
    else:                                                     # pragma: no cover - Slicer < 5.2
        node.SetUseColumnNameAsColumnHeader(on)


def column_titles_as_header(node: Any) -> bool:
    if hasattr(node, "GetUseColumnTitleAsColumnHeader"):
        return bool(node.GetUseColumnTitleAsColumnHeader())
    return bool(node.GetUseColumnNameAsColumnHeader())       # pragma: no cover - Slicer < 5.2


def table_row_of_model_index(node: Any, model_row: int, model_column: int = 0,
                             transposed: bool = False) -> int | None:
    """The table node's row shown at a qMRMLTableModel index, or None for the header row.

    qMRMLTableModel puts the column titles in model row 0 unless the node uses them as the
    header, and swaps rows and columns when transposed; its own ``mrmlTableRowIndex`` is not
    callable from Python, so the panel maps clicks with this.
    """
    row = model_column if transposed else model_row
    if not column_titles_as_header(node):
        row -= 1
    if row < 0 or row >= node.GetNumberOfRows():
        return None
    return row


def rows_from_review_table(node: Any) -> list[dict[str, Any]]:
    """Row dicts back from a review table node (e.g. after the user edited status cells)."""
    table = node.GetTable()
    columns = {}
    for title, key, _type in REVIEW_COLUMNS:
        column = table.GetColumnByName(title)
        if column is None and title in OPTIONAL_REVIEW_COLUMNS:
            columns[key] = None                    # a table saved before the column existed
            continue
        if column is None:
            found = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
            raise KeyError(f"table {node.GetName()!r} has no column {title!r} (it has "
                           f"{', '.join(map(repr, found)) or 'none'})")
        columns[key] = column
    rows = []
    for r in range(table.GetNumberOfRows()):
        row: dict[str, Any] = {}
        for _title, key, kind in REVIEW_COLUMNS:
            if columns[key] is None:
                row[key] = None
                continue
            value = columns[key].GetValue(r)
            if kind is float:
                value = float(value)
                value = None if math.isnan(value) else value
            elif kind is bool:
                value = bool(int(value))
            else:
                value = kind(value)
            row[key] = value
        rows.append(row)
    return rows

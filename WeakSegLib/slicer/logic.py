"""What the module does to the scene, headless: inputs out to files, results back into nodes.

The CLI works on files; Slicer works on nodes. This module is the border: it writes the selected
volume nodes as a case folder for ``segment``/``train``, reads the label map and slice scores the
CLI wrote back into a "Tumor" segmentation and a review table on the reference volume's grid,
maps slices to RAS positions for the slice views, and exports. It takes a scene instead of
reaching for ``slicer.mrmlScene``, so it runs in Slicer and on the ``slicer-core`` wheel alike.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..config import MODALITIES
from ..data.brain_mask import BRAIN_MASK_NAME
from ..data.modalities import recognise_modality
from . import nodes
from .review import ReviewRow, ReviewSession, read_slices_csv

INPUT_SUFFIX = ".nii"          # uncompressed: the files are temporary, writing them is faster


# ------------------------------------------------------------------ names

#: the brain mask's outline in the views (the tumour keeps nodes.TUMOR_COLOR)
BRAIN_COLOR: tuple[float, float, float] = (0.35, 0.75, 0.95)


def case_name(node_name: str) -> str:
    """A case name from a volume node's name: its modality token dropped, unsafe characters out.

    ``Brats18_CBICA_AAB_1_flair`` → ``Brats18_CBICA_AAB_1``; ``FLAIR`` → ``case``.
    """
    name = (node_name or "").strip()
    match = re.match(r"^(.*?)[_\-. ]+([^_\-. ]+)$", name)
    if match and recognise_modality(Path(match.group(2))) is not None:
        name = match.group(1)
    elif recognise_modality(Path(name)) is not None:
        name = ""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")
    return name or "case"


# ------------------------------------------------------------------ files for the CLI

def world_geometry(node: Any) -> Any:
    """LPS ``Geometry`` of a volume node in world coordinates: its parent transform applied.

    A linear parent transform (registration result, manual alignment) moves the grid; a
    non-linear one cannot be expressed on a grid and must be hardened first.
    """
    import vtk

    geometry = nodes.geometry_of_volume_node(node)
    parent = node.GetParentTransformNode() if hasattr(node, "GetParentTransformNode") else None
    if parent is None:
        return geometry
    if not parent.IsTransformToWorldLinear():
        raise ValueError(f"volume {node.GetName()!r} is under the non-linear transform "
                         f"{parent.GetName()!r}: harden it first (Data module, right-click → "
                         "Harden transform)")
    to_world = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(to_world)
    matrix = nodes._numpy_matrix(to_world) @ nodes.ras_matrix_from_geometry(geometry)
    moved = nodes.geometry_from_ras_matrix(matrix, geometry.size)
    direction = np.asarray(moved.direction).reshape(3, 3)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError(f"volume {node.GetName()!r} is under the transform "
                         f"{parent.GetName()!r}, which shears it: harden it first")
    return moved


def _image(node: Any) -> Any:
    """A volume node as a SimpleITK image on its world grid (LPS, as the CLI reads it)."""
    array, _ = nodes.volume_node_to_array(node)
    return world_geometry(node).image_from_array(array)


def write_volume_file(node: Any, path: str | Path, grid: Any | None = None) -> Path:
    """A volume node as an image file on its world grid, or resampled (linear) onto ``grid``."""
    import SimpleITK as sitk

    image = _image(node)
    if grid is not None and world_geometry(node).differences(grid):
        reference = grid.image_from_array(np.zeros(grid.shape, np.float32))
        image = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0,
                              sitk.sitkFloat32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def off_grid_inputs(mapping: Mapping[str, Any]) -> list[str]:
    """Modalities whose volume is not on the FLAIR volume's grid (write_case resamples them)."""
    flair = mapping.get("flair")
    if flair is None:
        return []
    grid = world_geometry(flair)
    return [key for key, node in mapping.items()
            if node is not None and key != "flair" and world_geometry(node).differences(grid)]


def _overlap(a: Any, b: Any) -> bool:
    """Whether grid ``a`` covers enough of grid ``b`` in physical space to be resampled onto it
    (the CLI's rule: ``data.min_overlap`` of its extent)."""
    from ..config import DataConfig
    from ..data.frame import overlap_fraction

    return overlap_fraction(a, b) >= DataConfig().min_overlap


def off_grid_reference(mapping: Mapping[str, Any], reference: Any) -> bool:
    """Whether the reference volume lies on another grid than the FLAIR volume (the result,
    on the FLAIR grid, is then resampled onto the reference's)."""
    flair = mapping.get("flair")
    if flair is None or reference is None or reference is flair:
        return False
    return bool(world_geometry(reference).differences(world_geometry(flair)))


def geometry_problem(mapping: Mapping[str, Any], reference: Any) -> str | None:
    """Why the selected volumes cannot be segmented together, checked before any work starts.

    Other modalities and the reference volume may lie on another grid (modalities are
    resampled onto the FLAIR grid, the result onto the reference's) but must overlap it.
    """
    flair = mapping.get("flair")
    if flair is None:
        return None
    try:
        grid = world_geometry(flair)
        for key, node in mapping.items():
            if node is not None and key != "flair" and not _overlap(world_geometry(node), grid):
                return (f"the {key} volume {node.GetName()!r} does not overlap the FLAIR volume "
                        f"{flair.GetName()!r}: select the same patient's series")
        if reference is not None and reference is not flair \
                and not _overlap(world_geometry(reference), grid):
            return (f"the reference volume {reference.GetName()!r} does not overlap the FLAIR "
                    f"volume {flair.GetName()!r}: choose a volume of the same patient's study")
    except ValueError as error:
        return str(error)
    return None


def write_case(mapping: Mapping[str, Any], folder: str | Path, case: str) -> dict[str, Path]:
    """``folder/<case>/<case>_<modality>.nii`` for each selected modality node; the paths.

    Every file is on the FLAIR volume's world grid: other modalities on another grid are
    resampled (linear) onto it, as the CLI wants all channels on one grid.
    """
    unknown = [key for key in mapping if key not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; WeakSeg knows {list(MODALITIES)}")
    if "flair" not in mapping or mapping["flair"] is None:
        raise ValueError("a FLAIR volume is required")
    grid = world_geometry(mapping["flair"])
    case_dir = Path(folder) / case
    return {key: write_volume_file(node, case_dir / f"{case}_{key}{INPUT_SUFFIX}", grid)
            for key, node in mapping.items() if node is not None}


@dataclass
class TrainingCase:
    """A loaded case marked for training: its volumes and its tumour slice range (inclusive)."""

    name: str
    volumes: dict[str, Any]
    first: int | None = None
    last: int | None = None

    @property
    def complete(self) -> bool:
        return self.first is not None and self.last is not None


def write_training_cohort(cases: Iterable[TrainingCase], folder: str | Path
                          ) -> tuple[Path, Path]:
    """A cohort folder of the marked cases and ``ranges.csv`` (case,first_slice,last_slice)."""
    folder = Path(folder)
    cohort = folder / "cohort"
    rows = []
    for case in cases:
        if not case.complete:
            raise ValueError(f"case {case.name!r} has no complete tumour slice range")
        first, last = sorted((int(case.first), int(case.last)))
        write_case(case.volumes, cohort, case.name)
        rows.append((case.name, first, last))
    if not rows:
        raise ValueError("no case is marked for training")
    ranges = folder / "ranges.csv"
    with ranges.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "first_slice", "last_slice"])
        writer.writerows(rows)
    return cohort, ranges


# ------------------------------------------------------------------ results back

@dataclass
class SegmentResult:
    """What one segment run left in the scene and on disk."""

    case: str
    segmentation: Any
    labels: np.ndarray
    rows: list[ReviewRow]
    label_path: Path
    slices_path: Path
    inputs: dict[str, Path] = field(default_factory=dict)
    brain: Any | None = None        # segmentation node "Brain" (the brain mask segment used)
    slice_axis: str = "k"         # the FLAIR's index axis the table's slices count along


def slices_axis(path: str | Path) -> str:
    """The ``slice_axis`` column of a slice table (k: axial input, or a table without it)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle), None) or {}
    axis = (row.get("slice_axis") or "k").strip()
    return axis if axis in ("i", "j", "k") else "k"


def result_paths(out_dir: str | Path, case: str, method: str) -> dict[str, Path]:
    """Where ``segment`` writes a case's outputs (the CLI contract)."""
    base = Path(out_dir) / case
    return {"labels": base / f"{case}_{method}.nii.gz", "seg": base / f"{case}_{method}.seg.nrrd",
            "slices": base / f"{case}_slices.csv",
            "brain": base / f"{case}_{BRAIN_MASK_NAME}.nii.gz"}


def read_label_map(path: str | Path, reference: Any, grid: Any | None = None) -> np.ndarray:
    """The CLI's label map as a (z, y, x) uint8 array on the reference's grid. It must lie on
    ``grid`` (the FLAIR input's; default: the reference's own); a reference on another grid
    gets it resampled (nearest neighbour, physical space)."""
    import SimpleITK as sitk

    from ..data.frame import resample_onto
    from ..data.reader import Geometry

    image = sitk.ReadImage(str(path))
    target = world_geometry(reference)
    expected = grid if grid is not None else target
    problems = Geometry.of(image).differences(expected)
    if problems:
        name = "the FLAIR input" if grid is not None else repr(reference.GetName())
        raise ValueError(f"{path} is not on the grid of {name}: " + "; ".join(problems))
    if target.differences(expected):
        image = resample_onto(image, target, "mask")
    return sitk.GetArrayFromImage(image).astype(np.uint8)


def postprocess_labels(labels: np.ndarray, ops: str, reference: Any,
                       rows: Iterable[ReviewRow] = ()) -> np.ndarray:
    """The CLI's ``postprocess`` operations on a result, with the reference as intensity image."""
    from ..postprocess.ops import apply_ops

    intensity, geometry = nodes.volume_node_to_array(reference)
    scores = np.zeros(labels.shape[0], np.float32)
    for row in rows:
        if 0 <= row.slice < len(scores) and row.classifier_score is not None:
            scores[row.slice] = row.classifier_score
    result = apply_ops(labels > 0, ops, spacing=geometry.spacing_zyx, intensity=intensity,
                       brain=intensity != 0, slice_scores=scores)
    return result.astype(np.uint8)


def written_method(out_dir: str | Path, case: str) -> str | None:
    """The method of the one label map ``segment`` wrote for a case (``<case>_<method>.nii.gz``),
    when the panel left the choice to it; None when there is not exactly one."""
    folder = Path(out_dir) / case
    prefix, suffix = f"{case}_", ".nii.gz"
    found = sorted(p.name[len(prefix):-len(suffix)] for p in folder.glob(f"{prefix}*{suffix}"))
    found = [m for m in found if m != BRAIN_MASK_NAME]          # the brain mask is no method
    return found[0] if len(found) == 1 else None


def import_result(scene: Any, out_dir: str | Path, case: str, reference: Any,
                  method: str | None = None, postprocess_ops: str | None = None,
                  name: str | None = None, grid: Any | None = None) -> SegmentResult:
    """The label map and slice scores of a finished segment run as nodes in ``scene``; ``grid``:
    the FLAIR input's grid when the reference volume lies on another (see ``read_label_map``).

    ``method=None``: the one label map the run wrote (``segment`` chose the method: the run's
    default, or "mixed" for a mixed-supervision run)."""
    if method is None:
        method = written_method(out_dir, case)
        if method is None:
            raise FileNotFoundError(f"segment did not write one label map "
                                    f"{case}_<method>.nii.gz in {Path(out_dir) / case}")
    paths = result_paths(out_dir, case, method)
    for key in ("labels", "slices"):
        if not paths[key].is_file():
            raise FileNotFoundError(f"segment did not write {paths[key]}")
    labels = read_label_map(paths["labels"], reference, grid)
    rows = read_slices_csv(paths["slices"])
    if postprocess_ops:
        labels = postprocess_labels(labels, postprocess_ops, reference, rows)
    segmentation = nodes.segmentation_node_from_labelmap(
        scene, labels, reference, name=name or scene.GenerateUniqueName(f"WeakSeg {case}"))
    if reference.GetTransformNodeID():            # the labels sit on the reference's own grid
        segmentation.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    brain = import_brain_mask(scene, paths["brain"], reference, case, grid)
    return SegmentResult(case, segmentation, labels, rows, paths["labels"], paths["slices"],
                         brain=brain, slice_axis=slices_axis(paths["slices"]))


def import_brain_mask(scene: Any, path: str | Path, reference: Any, case: str,
                      grid: Any | None = None) -> Any | None:
    """The brain mask ``segment`` wrote (where it looked) as its own segmentation node,
    segment "Brain", drawn as an outline; None when the run wrote none."""
    if not Path(path).is_file():
        return None
    mask = read_label_map(path, reference, grid)
    node = nodes.segmentation_node_from_labelmap(
        scene, mask, reference, name=scene.GenerateUniqueName(f"WeakSeg {case} brain"),
        segment_name="Brain", color=BRAIN_COLOR)
    display = node.GetDisplayNode()
    if display is not None:
        display.SetVisibility2DFill(False)      # outline only: the tumour stays readable
        display.SetVisibility3D(False)
    if reference.GetTransformNodeID():
        node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    return node


def review_table(scene: Any, session: ReviewSession, node: Any | None = None) -> Any:
    """Fill (or refill in place) the review table node from a session."""
    name = f"WeakSeg review {session.case}".strip()
    return nodes.review_table_node(scene, session.table_rows(), name=name, node=node)


# ------------------------------------------------------------------ slices ↔ RAS

def ijk_to_world(reference: Any) -> np.ndarray:
    """4x4 IJK→world-RAS matrix of a volume node, its linear parent transform included."""
    return nodes.ras_matrix_from_geometry(world_geometry(reference))


def slice_center_ras(reference: Any, slice_index: int, axis: str = "k"
                     ) -> tuple[float, float, float]:
    """World RAS position of the centre of slice ``slice_index`` of the reference, counted
    along its index ``axis`` (k; i or j for a scan not acquired axially, as ``segment``'s slice
    table says)."""
    dims = reference.GetImageData().GetDimensions()
    ijk = np.array([(dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, (dims[2] - 1) / 2.0, 1.0])
    ijk["ijk".index(axis)] = float(slice_index)
    ras = ijk_to_world(reference) @ ijk
    return float(ras[0]), float(ras[1]), float(ras[2])


def slice_index_at(reference: Any, ras: Iterable[float]) -> int:
    """Axial slice (k, clamped to the volume) of the reference that a world RAS point is in."""
    r, a, s = (float(v) for v in ras)
    k = (np.linalg.inv(ijk_to_world(reference)) @ np.array([r, a, s, 1.0]))[2]
    depth = reference.GetImageData().GetDimensions()[2]
    return int(min(max(round(k), 0), depth - 1))


def slice_nodes(scene: Any) -> list[Any]:
    return [scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode"))]


def jump_to_slice(scene: Any, reference: Any, slice_index: int, axis: str = "k"
                  ) -> tuple[float, float, float]:
    """Move every slice view to the given slice of the reference (what a review row click does)."""
    import slicer

    ras = slice_center_ras(reference, slice_index, axis)
    slicer.vtkMRMLSliceNode.JumpAllSlices(scene, *ras)
    return ras


def current_slice_index(scene: Any, reference: Any, view: str = "Red") -> int:
    """The reference's slice under a view's plane (the axial Red view unless told otherwise)."""
    candidates = slice_nodes(scene)
    if not candidates:
        raise RuntimeError("the scene has no slice views")
    chosen = next((n for n in candidates if n.GetLayoutName() == view), candidates[0])
    slice_to_ras = chosen.GetSliceToRAS()
    centre = [slice_to_ras.GetElement(row, 3) for row in range(3)]
    return slice_index_at(reference, centre)


# ------------------------------------------------------------------ export

def export_segmentation(segmentation: Any, path: str | Path) -> Path:
    """``.seg.nrrd`` with segment name and colour (Slicer's own storage node writes it)."""
    return nodes.save_segmentation_node(segmentation, path)


def export_labelmap(segmentation: Any, reference: Any, path: str | Path) -> Path:
    """``.nii.gz`` label map on the reference's world grid, including the user's edits."""
    import SimpleITK as sitk

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    labels = nodes.labelmap_from_segmentation_node(segmentation, reference)
    sitk.WriteImage(world_geometry(reference).image_from_array(labels), str(path), True)
    return Path(path)


def export_names(case: str) -> dict[str, str]:
    """File names the Export section writes into the chosen folder."""
    return {"seg": f"{case}_weakseg.seg.nrrd", "nifti": f"{case}_weakseg.nii.gz",
            "csv": f"{case}_review.csv", "json": f"{case}_review.json"}

"""Review records → full annotations for mixed supervision.

The Slicer module's Review panel exports a JSON list, one object per reviewed slice::

    [{"case": "Brats18_CBICA_AAB_1", "slice": 77, "status": "corrected",
      "reviewer": "dr.x", "time": "2024-05-01T10:12:00+00:00",
      "mask_path": "Brats18_CBICA_AAB_1_reviewed.nii.gz"}, ...]

``slice`` is the axial index (0-based) on the case's original grid; ``status`` is one of
accepted | corrected | rejected | pending. ``mask_path`` (optional, relative to the records file)
names the case's label map after review: WeakSeg's segmentation with the corrections made in the
Segment Editor. An *accepted* slice (the segmentation was right, possibly empty) and a
*corrected* one become fully annotated slices whose mask is that slice of the label map; a
*rejected* or *pending* slice adds nothing and keeps its slice label. When a slice has several
records the last one in the file wins (exports append). Where a record has no ``mask_path`` the
label map comes from ``label_maps[case]``; accepted/corrected slices without either are an error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.errors import InputError

STATUSES = ("accepted", "corrected", "rejected", "pending")
ANNOTATING = ("accepted", "corrected")
_FORMAT = ("a JSON list of objects {case, slice, status, reviewer, time[, mask_path]} with "
           f"status one of {', '.join(STATUSES)}")


@dataclass(frozen=True)
class ReviewRecord:
    case: str
    slice: int
    status: str
    reviewer: str
    time: str
    mask_path: Path | None = None


@dataclass
class ReviewedSlices:
    """One case's review outcome on its original grid."""
    case: str
    mask: np.ndarray                    # (z, y, x) uint8; meaningful where ``annotated``
    annotated: np.ndarray               # (z,) bool: accepted or corrected slices
    statuses: dict[int, str] = field(default_factory=dict)   # final status per reviewed slice


def load_review_records(path: str | Path) -> list[ReviewRecord]:
    """Parse and check a records file; every problem is an ``InputError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "review records file does not exist")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"is not valid JSON ({err}); expected {_FORMAT}") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        raise InputError(path, f"holds a JSON {type(data).__name__}; expected {_FORMAT}")
    records = []
    for number, item in enumerate(data):
        def bad(problem: str) -> InputError:
            return InputError(path, f"record {number}: {problem}")

        if not isinstance(item, dict):
            raise bad(f"is a {type(item).__name__}, not an object; expected {_FORMAT}")
        missing = [k for k in ("case", "slice", "status", "reviewer", "time") if k not in item]
        if missing:
            raise bad(f"lacks {', '.join(missing)}")
        case, index, status = item["case"], item["slice"], item["status"]
        if not isinstance(case, str) or not case:
            raise bad(f"case must be a non-empty string, got {case!r}")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise bad(f"slice must be a 0-based integer, got {index!r}")
        if status not in STATUSES:
            raise bad(f"status {status!r} is not one of {', '.join(STATUSES)}")
        mask_path = item.get("mask_path")
        if mask_path is not None and (not isinstance(mask_path, str) or not mask_path):
            raise bad(f"mask_path must be a file name, got {mask_path!r}")
        records.append(ReviewRecord(case, index, status, str(item["reviewer"]),
                                    str(item["time"]),
                                    None if mask_path is None else path.parent / mask_path))
    return records


def _read_label_map(path: Path, shape: tuple[int, ...], case: str) -> np.ndarray:
    import SimpleITK as sitk

    from ..data.reader import read_image

    array = sitk.GetArrayFromImage(read_image(path))
    if tuple(array.shape) != tuple(shape):
        raise InputError(path, f"label map of shape {tuple(array.shape)} does not fit case "
                         f"{case}'s grid {tuple(shape)}")
    return (array > 0).astype(np.uint8)


def review_annotations(records: Sequence[ReviewRecord], shapes: Mapping[str, tuple[int, ...]],
                       label_maps: Mapping[str, str | Path] | None = None,
                       source: str | Path | None = None) -> dict[str, ReviewedSlices]:
    """Per case with reviewed slices: the masks of its accepted/corrected slices.

    ``shapes``: case → (z, y, x) of the original grid (the cohort's cases); ``source``: the
    records file, named in errors."""
    final: dict[tuple[str, int], tuple[int, ReviewRecord]] = {}
    for number, record in enumerate(records):
        if record.case not in shapes:
            raise InputError(source, f"record {number}: case {record.case!r} is not in the "
                             f"cohort ({', '.join(sorted(shapes))})")
        depth = shapes[record.case][0]
        if record.slice >= depth:
            raise InputError(source, f"record {number}: slice {record.slice} is outside case "
                             f"{record.case}'s {depth} slices")
        final[(record.case, record.slice)] = (number, record)
    out: dict[str, ReviewedSlices] = {}
    cache: dict[Path, np.ndarray] = {}
    for (case, index), (number, record) in sorted(final.items()):
        shape = tuple(shapes[case])
        reviewed = out.setdefault(case, ReviewedSlices(case, np.zeros(shape, np.uint8),
                                                       np.zeros(shape[0], bool)))
        reviewed.statuses[index] = record.status
        if record.status not in ANNOTATING:
            continue
        path = record.mask_path or (Path(label_maps[case]) if label_maps and case in label_maps
                                    else None)
        if path is None:
            raise InputError(source, f"record {number} ({case}, slice {index}, "
                             f"{record.status}) has no mask_path and no label map was given for "
                             f"case {case}")
        if path not in cache:
            if not path.is_file():
                raise InputError(path, f"label map of record {number} ({case}) does not exist")
            cache[path] = _read_label_map(path, shape, case)
        reviewed.mask[index] = cache[path][index]
        reviewed.annotated[index] = True
    return out


def records_from_segmentation(segment_dir: str | Path, cases: Sequence[str],
                              method: str | None = None, threshold: float | None = None
                              ) -> list[ReviewRecord]:
    """The weakly supervised pipeline's trusted slices as *accepted* records (seed 000 §5):
    every slice of a ``weakseg segment`` output that is segmented and not flagged for review.
    Read from ``<case>/<case>_slices.csv`` and ``<case>/<case>_<method>.nii.gz`` (``method``:
    the config's default method, else an older output's ``combined``). A table written before
    the review priority existed has no ``review_priority``: there a difference score of at
    least ``threshold`` (config: inference.difference_threshold) means not flagged. Cases
    without output are skipped; a table without the columns is an error naming it."""
    import csv

    from ..config import get_profile

    defaults = get_profile("fast").inference
    threshold = defaults.difference_threshold if threshold is None else threshold
    segment_dir = Path(segment_dir)
    if not segment_dir.is_dir():
        raise InputError(segment_dir, "segmentation folder does not exist (give the --out "
                         "folder of `weakseg segment`)")
    records = []
    for case in cases:
        table = segment_dir / case / f"{case}_slices.csv"
        candidates = [method] if method else [defaults.default_method, "combined"]
        found = [m for m in candidates if (segment_dir / case / f"{case}_{m}.nii.gz").is_file()]
        if not table.is_file() or not found:
            continue
        labels = segment_dir / case / f"{case}_{found[0]}.nii.gz"
        with table.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            if not {"slice", "difference_score"} <= columns:
                raise InputError(table, "is not a `weakseg segment` slice table (needs columns "
                                 "slice and difference_score)")
            by_priority = {"review_priority", "flagged"} <= columns
            for row in reader:
                score = row["difference_score"].strip()    # empty: nothing segmented
                if not score:
                    continue
                trusted = row["flagged"].strip() in ("0", "False", "false") if by_priority \
                    else float(score) >= threshold
                if trusted:
                    records.append(ReviewRecord(case, int(row["slice"]), "accepted",
                                                f"weakseg:{found[0]}", "", labels))
    return records


def status_counts(records: Sequence[ReviewRecord]) -> dict[str, int]:
    """Final status counts (last record of each slice), for metrics and messages."""
    final = {(r.case, r.slice): r.status for r in records}
    return {s: sum(1 for v in final.values() if v == s) for s in STATUSES}

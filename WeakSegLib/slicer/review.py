"""The per-slice review: which slices WeakSeg is unsure of, and what the radiologist decided.

``segment`` writes ``<case>_slices.csv`` (slice, classifier score, difference score, review
priority, flagged; DESIGN.md "Review priority"). The review priority ∈ [0, 1] says how likely the
slice's segmentation is wrong (higher = look first); a slice is flagged when it is at or above the
threshold (config ``inference.review_threshold``), and the rows are shown highest priority first.
A result written before the priority existed has no such column: its slices are flagged as then,
by a difference score D below config ``inference.difference_threshold`` (a slice with an empty
segmentation has no D and is never flagged), and ranked by D, lowest first.

The radiologist accepts, corrects or rejects slices; the records (who, when, status) are exported
as CSV and JSON, and the JSON is what "Retrain with reviewed slices" (mixed supervision,
``WeakSegLib.mixed.records``) reads: each record carries ``case, slice, status, reviewer, time``
and, when given, ``mask_path`` (the reviewed label map, relative to the JSON file).
"""
from __future__ import annotations

import csv
import getpass
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .defaults import DIFFERENCE_THRESHOLD, REVIEW_THRESHOLD

PENDING, ACCEPTED, CORRECTED, REJECTED = "pending", "accepted", "corrected", "rejected"
STATUSES: tuple[str, ...] = (PENDING, ACCEPTED, CORRECTED, REJECTED)
#: Statuses whose slice becomes a full annotation when retraining.
ANNOTATING: tuple[str, ...] = (ACCEPTED, CORRECTED)
#: What flags a slice: the review priority (``segment`` of today) or, for a result written
#: before it existed, the difference score.
BY_PRIORITY, BY_DIFFERENCE = "review_priority", "difference_score"
DEFAULT_THRESHOLD = REVIEW_THRESHOLD
RECORDS_FORMAT = "weakseg-review/1"
CSV_COLUMNS: tuple[str, ...] = ("slice", "classifier_score", "difference_score",
                                "review_priority", "flagged", "status", "who", "when")
#: Said once when a result without review priority is loaded.
LEGACY_NOTE = ("this result has no review priority (written by an older WeakSeg): slices are "
               "flagged by difference score below the threshold instead")


@dataclass
class ReviewRow:
    slice: int
    classifier_score: float | None
    difference_score: float | None
    flagged: bool = False
    status: str = PENDING
    who: str = ""
    when: str = ""
    review_priority: float | None = None

    @property
    def reviewed(self) -> bool:
        return self.status != PENDING


def is_flagged(difference_score: float | None, threshold: float) -> bool:
    """Results without review priority: flagged = D < threshold; no D (empty segmentation) →
    not flagged (seed 000's rule, DESIGN.md Pipeline row 10)."""
    return difference_score is not None and difference_score < threshold


def is_priority_flagged(review_priority: float | None, threshold: float) -> bool:
    """flagged = review priority ≥ threshold (as ``segment`` flags); no priority: not flagged."""
    return review_priority is not None and review_priority >= threshold


def flag_basis(rows: Iterable[ReviewRow]) -> str:
    """:data:`BY_PRIORITY` when any row has a review priority, else :data:`BY_DIFFERENCE`."""
    return BY_PRIORITY if any(r.review_priority is not None for r in rows) else BY_DIFFERENCE


def default_threshold(basis: str) -> float:
    """config.py's threshold for a flag basis."""
    return REVIEW_THRESHOLD if basis == BY_PRIORITY else DIFFERENCE_THRESHOLD


def review_order(rows: Iterable[ReviewRow], basis: str) -> list[ReviewRow]:
    """Rows in the order to look at them: highest priority first (or, without priority, lowest
    difference score first); rows without the score last; ties by slice."""
    if basis == BY_PRIORITY:
        def key(r: ReviewRow) -> tuple:
            return (r.review_priority is None, -(r.review_priority or 0.0), r.slice)
    else:
        def key(r: ReviewRow) -> tuple:
            return (r.difference_score is None, r.difference_score or 0.0, r.slice)
    return sorted(rows, key=key)


def _number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    return None if math.isnan(value) else value


def read_slices_csv(path: str | Path) -> list[ReviewRow]:
    """Rows of ``segment``'s ``<case>_slices.csv`` (header slice,classifier_score,...)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        needed = ("slice", "classifier_score", "difference_score")
        if any(c not in header for c in needed):
            raise ValueError(f"{path}: needs the columns {', '.join(needed)}; found "
                             f"{', '.join(header) or 'none'}")
        rows = []
        for raw in reader:
            raw = {k.strip(): v for k, v in raw.items() if k}
            flagged = str(raw.get("flagged", "")).strip().lower() in ("1", "true", "yes")
            rows.append(ReviewRow(int(raw["slice"]), _number(raw["classifier_score"]),
                                  _number(raw["difference_score"]), flagged,
                                  review_priority=_number(raw.get("review_priority"))))
    return rows


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:               # no login name (some containers): still record something
        return "unknown"


class ReviewSession:
    """Rows of one case's review in review order, the flag threshold, and the decisions.

    ``basis`` (what flags a slice) follows the rows unless given: the review priority when they
    have one, else the difference score (a result from before the priority existed); the
    threshold defaults to config.py's for that basis. ``rows`` are kept highest priority first.
    """

    def __init__(self, rows: Iterable[ReviewRow], threshold: float | None = None,
                 case: str = "", metadata: dict[str, Any] | None = None,
                 basis: str | None = None):
        rows = list(rows)
        self.basis = basis or flag_basis(rows)
        if self.basis not in (BY_PRIORITY, BY_DIFFERENCE):
            raise ValueError(f"basis must be {BY_PRIORITY!r} or {BY_DIFFERENCE!r}, got "
                             f"{self.basis!r}")
        self.rows = review_order(rows, self.basis)
        self.case = case
        self.metadata = dict(metadata or {})
        self.threshold = default_threshold(self.basis) if threshold is None else float(threshold)
        self.reflag(self.threshold)

    @property
    def by_priority(self) -> bool:
        return self.basis == BY_PRIORITY

    def reflag(self, threshold: float) -> int:
        """Flag rows at a new threshold; returns how many rows changed their flag."""
        self.threshold = float(threshold)
        changed = 0
        for row in self.rows:
            if self.by_priority:
                flagged = is_priority_flagged(row.review_priority, self.threshold)
            else:
                flagged = is_flagged(row.difference_score, self.threshold)
            changed += flagged != row.flagged
            row.flagged = flagged
        return changed

    def next_flagged(self, after: int | None = None) -> int | None:
        """Index of the next flagged row not yet reviewed after row ``after``, in review order,
        wrapping around (``after`` itself comes last); None when every flagged row is reviewed."""
        count = len(self.rows)
        start = 0 if after is None else after + 1
        for step in range(count):
            index = (start + step) % count
            row = self.rows[index]
            if row.flagged and not row.reviewed:
                return index
        return None

    def set_status(self, index: int, status: str, who: str | None = None,
                   when: str | None = None) -> ReviewRow:
        """Record a decision on row ``index``; ``pending`` clears it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        row = self.rows[index]
        row.status = status
        if status == PENDING:
            row.who, row.when = "", ""
        else:
            row.who, row.when = who or current_user(), when or now_iso()
        return row

    def index_of_slice(self, slice_index: int) -> int | None:
        for i, row in enumerate(self.rows):
            if row.slice == slice_index:
                return i
        return None

    def counts(self) -> dict[str, int]:
        """Totals for the panel's count line."""
        counts = {"slices": len(self.rows), "flagged": sum(r.flagged for r in self.rows),
                  "reviewed": sum(r.reviewed for r in self.rows),
                  "flagged_reviewed": sum(r.flagged and r.reviewed for r in self.rows),
                  "to_review": sum(r.flagged and not r.reviewed for r in self.rows)}
        for status in STATUSES:
            counts[status] = sum(r.status == status for r in self.rows)
        return counts

    def counts_text(self) -> str:
        c = self.counts()
        text = (f"{c['flagged']} flagged · {c['to_review']} still to review · {c['reviewed']} "
                f"reviewed: {c[ACCEPTED]} accepted, {c[CORRECTED]} corrected, "
                f"{c[REJECTED]} rejected · {c['slices']} slices")
        if not self.by_priority:
            text += " · flagged by difference score (no review priority in this result)"
        return text

    @property
    def has_annotations(self) -> bool:
        """Whether any slice was accepted or corrected (what retraining learns from)."""
        return any(r.status in ANNOTATING for r in self.rows)

    def table_rows(self) -> list[dict[str, Any]]:
        """Row dicts for :func:`nodes.review_table_node`."""
        return [{"slice": r.slice, "review_priority": r.review_priority,
                 "classifier_score": r.classifier_score, "difference_score": r.difference_score,
                 "flagged": r.flagged, "status": r.status} for r in self.rows]

    def records(self, mask_path: str | None = None) -> list[dict[str, Any]]:
        """Reviewed rows only: case, slice, status, reviewer/who, time/when, scores, flag.

        ``reviewer``/``time`` are the names the mixed-supervision reader uses, ``who``/``when``
        the panel's; ``mask_path`` names the reviewed label map relative to the records file.
        """
        out = []
        for row in sorted(self.rows, key=lambda r: r.slice):
            if row.reviewed:
                record = {"case": self.case, **asdict(row), "reviewer": row.who, "time": row.when}
                if mask_path:
                    record["mask_path"] = mask_path
                out.append(record)
        return out

    # -------------------------------------------------------------- export

    def write_csv(self, path: str | Path) -> Path:
        """Every row in slice order (the columns of ``segment``'s table, then status, who,
        when), flagged at the current threshold; no priority (an older result): empty cell."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for r in sorted(self.rows, key=lambda row: row.slice):
                writer.writerow([r.slice, _cell(r.classifier_score), _cell(r.difference_score),
                                 _cell(r.review_priority), int(r.flagged), r.status, r.who,
                                 r.when])
        return path

    def to_json(self, mask_path: str | None = None, **extra: Any) -> dict[str, Any]:
        """The records document (format ``weakseg-review/1``).

        ``case``, ``threshold``, ``exported`` and ``records`` (reviewed slices: slice, status, who,
        when, scores, flag) always; ``metadata`` carries what the module knows besides: the
        images per modality, the label map file, the model bundle.
        """
        document = {"format": RECORDS_FORMAT, "case": self.case, "threshold": self.threshold,
                    "flagged_by": self.basis, "exported": now_iso(), "exported_by": current_user(),
                    "counts": self.counts(), **self.metadata, **extra,
                    "records": self.records(mask_path)}
        return document

    def write_json(self, path: str | Path, mask_path: str | None = None, **extra: Any) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(mask_path, **extra), indent=2, default=str),
                        encoding="utf-8")
        return path

    def write_slice_labels(self, path: str | Path, labels: Any) -> Path:
        """``labels.csv`` (case,slice,label) from a (z, y, x) label map: a slice is tumour when
        its segmentation (with the user's corrections) is not empty. What retraining gives the
        case's unreviewed slices."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case", "slice", "label"])
            for z, plane in enumerate(labels):
                writer.writerow([self.case, z, int(bool(plane.any()))])
        return path


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def read_records(path: str | Path) -> dict[str, Any]:
    """A records JSON back (checks the format tag)."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if document.get("format") != RECORDS_FORMAT:
        raise ValueError(f"{path}: not a WeakSeg review-records file "
                         f"(format {document.get('format')!r})")
    return document


def annotated_slices(document: dict[str, Any]) -> list[int]:
    """Slices of a records document that count as full annotations (accepted or corrected)."""
    return sorted(int(r["slice"]) for r in document.get("records", [])
                  if r.get("status") in ANNOTATING)


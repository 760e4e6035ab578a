"""Review rows: reading segment's slices.csv (today's, with review priority, and an older one
without), review order, re-flagging at a threshold, the next flagged slice, decisions, export."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from WeakSegLib.config import get_profile
from WeakSegLib.slicer import defaults, nodes
from WeakSegLib.slicer.review import (ACCEPTED, BY_DIFFERENCE, BY_PRIORITY, CORRECTED, PENDING,
                                      REJECTED, ReviewSession, annotated_slices, is_flagged,
                                      is_priority_flagged, read_records, read_slices_csv)

#: As ``segment`` writes it today (WeakSegLib/inference/outputs.py SLICE_COLUMNS). Slice 4 has
#: tumour called but nothing segmented: no D, yet the highest priority.
SLICES_CSV = """slice,classifier_score,difference_score,review_priority,flagged
0,0.02,,0.05,0
1,0.91,0.15,0.62,1
2,0.97,0.31,0.35,0
3,0.88,0.19,0.48,0
4,0.93,,0.81,1
"""
#: As ``segment`` wrote it before the review priority existed.
OLD_SLICES_CSV = """slice,classifier_score,difference_score,flagged
0,0.02,,0
1,0.91,0.15,1
2,0.97,0.31,0
3,0.88,0.19,1
4,0.40,,0
"""


def _session(tmp_path: Path, text: str, threshold: float | None = None) -> ReviewSession:
    path = tmp_path / "case_slices.csv"
    path.write_text(text)
    return ReviewSession(read_slices_csv(path), threshold, case="case")


@pytest.fixture()
def session(tmp_path: Path) -> ReviewSession:
    return _session(tmp_path, SLICES_CSV, threshold=0.5)


@pytest.fixture()
def old_session(tmp_path: Path) -> ReviewSession:
    return _session(tmp_path, OLD_SLICES_CSV, threshold=0.2)


def test_defaults_come_from_config() -> None:
    inference = get_profile(defaults.PROFILE).inference
    assert defaults.REVIEW_THRESHOLD == inference.review_threshold
    assert defaults.DIFFERENCE_THRESHOLD == inference.difference_threshold
    assert defaults.METHOD == inference.default_method
    assert defaults.POSTPROCESS_OPS == inference.postprocess


def test_read_slices_csv_with_review_priority(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(SLICES_CSV)
    rows = read_slices_csv(path)
    assert [r.slice for r in rows] == [0, 1, 2, 3, 4]
    assert [r.review_priority for r in rows] == pytest.approx([0.05, 0.62, 0.35, 0.48, 0.81])
    assert rows[4].difference_score is None and rows[4].flagged


def test_read_slices_csv_without_review_priority(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(OLD_SLICES_CSV)
    rows = read_slices_csv(path)
    assert [r.slice for r in rows] == [0, 1, 2, 3, 4]
    assert all(r.review_priority is None for r in rows)
    assert rows[0].difference_score is None and rows[0].classifier_score == pytest.approx(0.02)
    bad = tmp_path / "bad.csv"
    bad.write_text("slice,score\n1,2\n")
    with pytest.raises(ValueError, match="difference_score"):
        read_slices_csv(bad)


def test_flag_rules() -> None:
    assert is_priority_flagged(0.5, 0.5) and not is_priority_flagged(0.49, 0.5)
    assert not is_priority_flagged(None, 0.0)
    assert is_flagged(0.1, 0.2) and not is_flagged(0.2, 0.2) and not is_flagged(None, 0.9)


def test_rows_in_priority_order_and_flagged_by_priority(session: ReviewSession) -> None:
    assert session.basis == BY_PRIORITY and session.by_priority
    assert [r.slice for r in session.rows] == [4, 1, 3, 2, 0]          # highest priority first
    # flagged = priority ≥ 0.5, whatever D says: slice 4 has no D (nothing segmented although
    # the classifier calls tumour), slice 3's D of 0.19 would have flagged it under D < 0.2
    assert [r.slice for r in session.rows if r.flagged] == [4, 1]


def test_threshold_reflags_on_priority(session: ReviewSession) -> None:
    assert session.reflag(0.4) == 1                     # slice 3 (0.48) joins
    assert [r.slice for r in session.rows if r.flagged] == [4, 1, 3]
    assert session.reflag(0.9) == 3
    assert session.counts()["flagged"] == 0
    assert session.reflag(0.0) == 5                     # every slice has a priority


def test_default_threshold_is_configs(tmp_path: Path) -> None:
    fresh = _session(tmp_path, SLICES_CSV)
    assert fresh.threshold == get_profile(defaults.PROFILE).inference.review_threshold
    old = _session(tmp_path, OLD_SLICES_CSV)
    assert old.threshold == get_profile(defaults.PROFILE).inference.difference_threshold


def test_an_old_result_is_flagged_and_ranked_by_difference_score(old_session) -> None:
    assert old_session.basis == BY_DIFFERENCE and not old_session.by_priority
    assert [r.slice for r in old_session.rows] == [1, 3, 2, 0, 4]      # lowest D first, no D last
    assert [r.slice for r in old_session.rows if r.flagged] == [1, 3]
    assert old_session.reflag(0.5) == 1                 # slice 2 (D = 0.31) joins
    assert old_session.reflag(0.1) == 3
    assert not any(r.flagged for r in old_session.rows)  # empty segmentations never flag
    assert "flagged by difference score" in old_session.counts_text()


def test_next_flagged_follows_priority_skips_reviewed_and_wraps(session: ReviewSession) -> None:
    session.reflag(0.3)                                  # flagged: 4, 1, 3, 2 (rows 0-3)
    assert session.next_flagged() == 0                   # slice 4, the highest priority
    assert session.next_flagged(0) == 1
    session.set_status(1, ACCEPTED)                      # slice 1 reviewed: skipped
    assert session.next_flagged(0) == 2
    assert session.next_flagged(3) == 0                  # past the last flagged: wraps
    for index in (0, 2, 3):
        session.set_status(index, REJECTED)
    assert session.next_flagged() is None and session.next_flagged(2) is None
    session.set_status(2, PENDING)
    assert session.next_flagged(2) == 2                  # the only one left: itself


def test_decisions_and_counts(session: ReviewSession) -> None:
    rows = {r.slice: i for i, r in enumerate(session.rows)}
    assert session.counts()["to_review"] == 2
    assert session.counts_text().startswith("2 flagged · 2 still to review · 0 reviewed")
    session.set_status(rows[1], ACCEPTED, who="dr a", when="2026-01-01T00:00:00+00:00")
    session.set_status(rows[3], CORRECTED, who="dr b")
    session.set_status(rows[2], REJECTED)
    counts = session.counts()
    assert (counts["reviewed"], counts[ACCEPTED], counts[CORRECTED], counts[REJECTED]) == \
        (3, 1, 1, 1)
    assert counts["flagged"] == 2 and counts["flagged_reviewed"] == 1
    assert counts["to_review"] == 1                     # slice 4 is flagged and still pending
    assert session.counts_text().startswith("2 flagged · 1 still to review · 3 reviewed")
    assert session.rows[rows[1]].who == "dr a"
    assert session.rows[rows[1]].when.startswith("2026-01-01")
    assert session.rows[rows[2]].who and session.rows[rows[2]].when   # login name, now
    assert session.has_annotations
    session.set_status(rows[1], PENDING)
    assert session.rows[rows[1]].who == "" and session.counts()["reviewed"] == 2
    with pytest.raises(ValueError):
        session.set_status(0, "maybe")


def test_exports(session: ReviewSession, tmp_path: Path) -> None:
    rows = {r.slice: i for i, r in enumerate(session.rows)}
    session.set_status(rows[4], ACCEPTED, who="dr a")
    session.set_status(rows[1], REJECTED, who="dr a")
    with (session.write_csv(tmp_path / "r.csv")).open() as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == ["slice", "classifier_score", "difference_score",
                                "review_priority", "flagged", "status", "who", "when"]
    assert [int(r["slice"]) for r in written] == [0, 1, 2, 3, 4]        # slice order
    assert written[4]["status"] == ACCEPTED and written[4]["who"] == "dr a"
    assert written[4]["flagged"] == "1" and written[4]["review_priority"] == "0.81"
    assert written[0]["difference_score"] == "" and written[0]["status"] == PENDING
    path = session.write_json(tmp_path / "r.json", labels="x.nii.gz")
    document = read_records(path)
    assert document["case"] == "case" and document["labels"] == "x.nii.gz"
    assert document["flagged_by"] == BY_PRIORITY and document["threshold"] == 0.5
    assert [(r["slice"], r["status"], r["who"]) for r in document["records"]] == \
        [(1, REJECTED, "dr a"), (4, ACCEPTED, "dr a")]
    assert document["records"][1]["review_priority"] == pytest.approx(0.81)
    assert all(r["when"] for r in document["records"])
    assert annotated_slices(document) == [4]
    (tmp_path / "other.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ValueError):
        read_records(tmp_path / "other.json")


def test_an_old_result_exports_an_empty_priority(old_session, tmp_path: Path) -> None:
    with (old_session.write_csv(tmp_path / "r.csv")).open() as handle:
        written = list(csv.DictReader(handle))
    assert {r["review_priority"] for r in written} == {""}
    assert [r["flagged"] for r in written] == ["0", "1", "0", "1", "0"]


def test_review_table_node_follows_session(session: ReviewSession, scene) -> None:
    table = nodes.review_table_node(scene, session.table_rows())
    assert table.GetNumberOfRows() == 5
    back = nodes.rows_from_review_table(table)
    assert [r["slice"] for r in back] == [4, 1, 3, 2, 0]              # as the session orders
    session.reflag(0.4)
    session.set_status(2, ACCEPTED)
    nodes.review_table_node(scene, session.table_rows(), node=table)
    back = nodes.rows_from_review_table(table)
    assert [r["flagged"] for r in back] == [True, True, True, False, False]
    assert back[2]["status"] == ACCEPTED and back[0]["difference_score"] is None
    assert back[0]["review_priority"] == pytest.approx(0.81)

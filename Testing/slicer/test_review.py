"""Review rows: reading segment's slices.csv, re-flagging at a threshold, decisions, export."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from WeakSegLib.slicer import nodes
from WeakSegLib.slicer.review import (ACCEPTED, CORRECTED, PENDING, REJECTED, ReviewSession,
                                      annotated_slices, is_flagged, read_records,
                                      read_slices_csv)

SLICES_CSV = """slice,classifier_score,difference_score,flagged
0,0.02,,0
1,0.91,0.15,1
2,0.97,0.31,0
3,0.88,0.19,1
4,0.40,,0
"""


@pytest.fixture()
def session(tmp_path: Path) -> ReviewSession:
    path = tmp_path / "case_slices.csv"
    path.write_text(SLICES_CSV)
    return ReviewSession(read_slices_csv(path), threshold=0.2, case="case")


def test_read_slices_csv_keeps_missing_difference_scores(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(SLICES_CSV)
    rows = read_slices_csv(path)
    assert [r.slice for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0].difference_score is None and rows[0].classifier_score == pytest.approx(0.02)
    assert rows[1].flagged and not rows[2].flagged
    bad = tmp_path / "bad.csv"
    bad.write_text("slice,score\n1,2\n")
    with pytest.raises(ValueError, match="difference_score"):
        read_slices_csv(bad)


def test_flag_rule() -> None:
    assert is_flagged(0.1, 0.2) and not is_flagged(0.2, 0.2) and not is_flagged(None, 0.9)


def test_threshold_reflags(session: ReviewSession) -> None:
    assert [r.flagged for r in session.rows] == [False, True, False, True, False]
    assert session.reflag(0.5) == 1                     # slice 2 (D = 0.31) joins
    assert [r.slice for r in session.rows if r.flagged] == [1, 2, 3]
    assert session.reflag(0.1) == 3
    assert not any(r.flagged for r in session.rows)     # empty segmentations never flag
    assert session.counts()["flagged"] == 0


def test_decisions_and_counts(session: ReviewSession) -> None:
    session.set_status(1, ACCEPTED, who="dr a", when="2026-01-01T00:00:00+00:00")
    session.set_status(3, CORRECTED, who="dr b")
    session.set_status(2, REJECTED)
    counts = session.counts()
    assert (counts["reviewed"], counts[ACCEPTED], counts[CORRECTED], counts[REJECTED]) == \
        (3, 1, 1, 1)
    assert counts["flagged"] == 2 and counts["flagged_reviewed"] == 2
    assert session.rows[1].who == "dr a" and session.rows[1].when.startswith("2026-01-01")
    assert session.rows[2].who and session.rows[2].when        # defaults: login name, now
    assert session.has_annotations
    session.set_status(1, PENDING)
    assert session.rows[1].who == "" and session.counts()["reviewed"] == 2
    with pytest.raises(ValueError):
        session.set_status(0, "maybe")
    assert "2 flagged" in session.counts_text()


def test_exports(session: ReviewSession, tmp_path: Path) -> None:
    session.set_status(1, ACCEPTED, who="dr a")
    session.set_status(3, REJECTED, who="dr a")
    with (session.write_csv(tmp_path / "r.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["slice", "classifier_score", "difference_score", "flagged", "status",
                             "who", "when"]
    assert rows[1]["status"] == ACCEPTED and rows[1]["who"] == "dr a" and rows[1]["flagged"] == "1"
    assert rows[0]["difference_score"] == "" and rows[0]["status"] == PENDING
    path = session.write_json(tmp_path / "r.json", labels="x.nii.gz")
    document = read_records(path)
    assert document["case"] == "case" and document["labels"] == "x.nii.gz"
    assert [(r["slice"], r["status"], r["who"]) for r in document["records"]] == \
        [(1, ACCEPTED, "dr a"), (3, REJECTED, "dr a")]
    assert all(r["when"] for r in document["records"])
    assert annotated_slices(document) == [1]
    (tmp_path / "other.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ValueError):
        read_records(tmp_path / "other.json")


def test_review_table_node_follows_session(session: ReviewSession, scene) -> None:
    table = nodes.review_table_node(scene, session.table_rows())
    assert table.GetNumberOfRows() == 5
    session.reflag(0.5)
    session.set_status(2, ACCEPTED)
    nodes.review_table_node(scene, session.table_rows(), node=table)
    back = nodes.rows_from_review_table(table)
    assert [r["flagged"] for r in back] == [False, True, True, True, False]
    assert back[2]["status"] == ACCEPTED and back[0]["difference_score"] is None

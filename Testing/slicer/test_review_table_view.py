"""Issue 15 #1: a click on the review table selects the slice it shows.

qMRMLTableModel (Libs/MRML/Widgets/qMRMLTableModel.cxx, updateModelFromMRML) lays a table node
out as: model row 0 holds the column titles unless the node uses them as the header; data row i
is model row i + offset; rows and columns swap when transposed. ``model_rows`` below reproduces
that layout from the real vtkMRMLTableNode of slicer-core, so the tests see what the view shows.
"""
from __future__ import annotations

import pytest

from WeakSegLib.slicer import logic, nodes
from WeakSegLib.slicer.controller import HeadlessView, PanelController
from WeakSegLib.slicer.review import ReviewRow, ReviewSession


def model_rows(node) -> list[list[str]]:
    """The cells of a qMRMLTableModel on ``node`` (not transposed), row by row."""
    table = node.GetTable()
    columns = range(table.GetNumberOfColumns())
    rows = []
    if not nodes.column_titles_as_header(node):
        rows.append([table.GetColumnName(c) for c in columns])          # the header row
    for r in range(table.GetNumberOfRows()):
        rows.append([table.GetValue(r, c).ToString() for c in columns])
    return rows


@pytest.fixture()
def review(scene, add_volume, red_view, tmp_path):
    flair = add_volume(scene, "caseA_flair")
    controller = PanelController(scene, HeadlessView(), work_root=tmp_path)
    session = ReviewSession([ReviewRow(z, 0.5, 0.1 + 0.01 * z) for z in range(8)], 0.2,
                            case="caseA")
    controller.review = session
    controller.update(review_table=logic.review_table(scene, session), reference=flair,
                      flair=flair)
    return controller


def test_a_click_on_the_row_showing_slice_5_selects_slice_5(review) -> None:
    table = review.params.review_table
    shown = model_rows(table)
    model_row = next(i for i, cells in enumerate(shown) if cells[0] == "5")
    assert review.select_model_index(model_row, 0) == 5
    assert review.review.rows[review.selected_row].slice == 5


def test_the_review_table_uses_titles_as_header_and_is_locked(review) -> None:
    table = review.params.review_table
    assert nodes.column_titles_as_header(table) and table.GetLocked()
    assert model_rows(table)[0][0] == "0"                   # no title row in the view
    logic.review_table(review.scene, review.review, node=table)   # refilled by the slider
    assert nodes.column_titles_as_header(table) and table.GetLocked()


def test_clicks_map_through_a_header_row_and_transposition(review) -> None:
    table = review.params.review_table
    nodes.set_column_titles_as_header(table, False)          # a table saved before the fix
    shown = model_rows(table)
    assert shown[0][0] == "slice" and shown[6][0] == "5"
    assert nodes.table_row_of_model_index(table, 0) is None  # the header row is no slice
    assert review.select_model_index(6, 0) == 5
    assert nodes.table_row_of_model_index(table, 2, 6, transposed=True) == 5
    assert nodes.table_row_of_model_index(table, 99) is None


def test_a_renamed_column_is_said_once_and_not_at_every_entry(review, scene, tmp_path) -> None:
    table = review.params.review_table
    table.GetTable().GetColumn(0).SetName("Slice #")         # what an unlocked view allowed
    view = HeadlessView()
    reopened = PanelController(scene, view, work_root=tmp_path)
    assert not reopened.restore_review()
    assert len(view.errors) == 1 and "no column 'slice'" in view.errors[0]
    assert "WeakSeg review caseA" in view.errors[0] and reopened.params.review_table is None
    assert not reopened.restore_review() and len(view.errors) == 1      # entering again: quiet


def test_restoring_an_old_table_fixes_its_header(review, scene, tmp_path) -> None:
    table = review.params.review_table
    nodes.set_column_titles_as_header(table, False)
    table.SetLocked(False)
    reopened = PanelController(scene, HeadlessView(), work_root=tmp_path)
    assert reopened.restore_review()
    assert nodes.column_titles_as_header(table) and table.GetLocked()

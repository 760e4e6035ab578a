"""The JSON-lines event contract."""
from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from WeakSegLib.events import EVENT_FIELDS, EventError, EventWriter, parse_events, validate_event


def test_every_helper_writes_a_valid_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as events:
        events.run_start(tmp_path, ["classifier", "seeds"])
        events.stage_start("classifier")
        events.progress("classifier", 3, 10, "epoch")
        events.metric("classifier", "auc", 0.9)
        events.artefact("classifier", tmp_path / "model.pt")
        events.log("hello", level="warning")
        events.stage_end("classifier", 1.23456)
        try:
            raise RuntimeError("boom")
        except RuntimeError as err:
            events.error(err, stage="seeds")
        events.run_end("failed")
    records = list(parse_events(path.read_text().splitlines(), strict=True))
    assert [r["event"] for r in records] == ["run_start", "stage_start", "progress", "metric",
                                             "artefact", "log", "stage_end", "error", "run_end"]
    assert {r["event"] for r in records} == set(EVENT_FIELDS)
    for record in records:
        datetime.fromisoformat(record["time"])
    assert records[2] == {**records[2], "stage": "classifier", "done": 3, "total": 10}
    assert "RuntimeError: boom" in records[7]["traceback"]
    assert records[6]["seconds"] == 1.235


def test_stdout_target(capsys: pytest.CaptureFixture[str]) -> None:
    EventWriter("-").metric("evaluate", "volume_dice", 0.5)
    line = capsys.readouterr().out.strip()
    assert json.loads(line)["value"] == 0.5


def test_invalid_events_are_refused() -> None:
    with pytest.raises(EventError, match="unknown event"):
        EventWriter(io.StringIO()).emit("bogus")
    with pytest.raises(EventError, match="lacks"):
        validate_event({"event": "progress", "time": "x", "stage": "s"})


def test_parse_skips_stray_lines_unless_strict() -> None:
    lines = ["not json", json.dumps({"event": "run_end", "time": "t", "status": "done"}), ""]
    assert len(list(parse_events(lines))) == 1
    with pytest.raises(json.JSONDecodeError):
        list(parse_events(lines, strict=True))

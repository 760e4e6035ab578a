"""The JSON-lines event contract (DESIGN.md "Events") that the Slicer job runner reads.

One object per line, ``{"event", "time", "stage"?, ...}``, written to a file or to stdout
(``-``); progress bars go to stderr so they never mix with events.
"""
from __future__ import annotations

import json
import sys
import threading
import traceback as tb
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

#: event name → the fields it must carry (besides "event" and "time").
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_start": ("run_dir", "stages"),
    "stage_start": ("stage",),
    "progress": ("stage", "done", "total", "unit"),
    "metric": ("stage", "name", "value"),
    "artefact": ("stage", "path"),
    "stage_end": ("stage", "seconds", "status"),
    "log": ("level", "message"),
    "error": ("message", "traceback"),
    "run_end": ("status",),
}


class EventError(ValueError):
    pass


def validate_event(event: dict[str, Any]) -> dict[str, Any]:
    name = event.get("event")
    if name not in EVENT_FIELDS:
        raise EventError(f"unknown event {name!r}; expected one of {sorted(EVENT_FIELDS)}")
    missing = [f for f in ("time", *EVENT_FIELDS[name]) if f not in event]
    if missing:
        raise EventError(f"event {name!r} lacks {missing}")
    return event


class EventWriter:
    """Writes events as JSON lines; a ``None`` target makes it a no-op so code can always emit."""

    def __init__(self, target: str | Path | IO[str] | None = None):
        self._lock = threading.Lock()
        self._owned = False
        if target is None:
            self._stream: IO[str] | None = None
        elif target == "-":
            self._stream = sys.stdout
        elif isinstance(target, (str, Path)):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(target, "a", encoding="utf-8")
            self._owned = True
        else:
            self._stream = target

    def emit(self, event: str, stage: str | None = None, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"event": event,
                                  "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        if stage is not None:
            record["stage"] = stage
        record.update(fields)
        validate_event(record)
        if self._stream is not None:
            line = json.dumps(record, default=_jsonable)
            with self._lock:
                self._stream.write(line + "\n")
                self._stream.flush()
        return record

    # Named helpers keep call sites short and the field names right.
    def run_start(self, run_dir: str | Path, stages: list[str]) -> None:
        self.emit("run_start", run_dir=str(run_dir), stages=list(stages))

    def stage_start(self, stage: str) -> None:
        self.emit("stage_start", stage)

    def progress(self, stage: str, done: int, total: int, unit: str = "item") -> None:
        self.emit("progress", stage, done=done, total=total, unit=unit)

    def metric(self, stage: str, name: str, value: float) -> None:
        self.emit("metric", stage, name=name, value=value)

    def artefact(self, stage: str, path: str | Path) -> None:
        self.emit("artefact", stage, path=str(path))

    def stage_end(self, stage: str, seconds: float, status: str = "done") -> None:
        self.emit("stage_end", stage, seconds=round(seconds, 3), status=status)

    def log(self, message: str, level: str = "info", stage: str | None = None) -> None:
        self.emit("log", stage, level=level, message=message)

    def error(self, error: BaseException, stage: str | None = None) -> None:
        self.emit("error", stage, message=str(error),
                  traceback="".join(tb.format_exception(type(error), error, error.__traceback__)))

    def run_end(self, status: str) -> None:
        self.emit("run_end", status=status)

    def close(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()
        self._stream = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} into an event")


def parse_events(lines: Iterable[str], strict: bool = False) -> Iterator[dict[str, Any]]:
    """Events from text lines; non-JSON lines (stray prints) are skipped unless ``strict``."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise EventError(f"not an event object: {line[:80]}")
            yield validate_event(record)
        except (json.JSONDecodeError, EventError):
            if strict:
                raise


class TeeEventWriter(EventWriter):
    """Writes every event to a file (a run folder's ``events.jsonl``) and to another writer
    (the caller's: stdout for the Slicer job runner, a file, or nothing). DESIGN.md asks every
    run to keep its own events, whoever started it."""

    def __init__(self, path: Path, other: "EventWriter | None") -> None:
        super().__init__(path)
        self.other = other

    def emit(self, event: str, stage: str | None = None, **fields: Any) -> dict[str, Any]:
        record = super().emit(event, stage, **fields)
        if self.other is not None:
            self.other.emit(event, stage, **fields)
        return record

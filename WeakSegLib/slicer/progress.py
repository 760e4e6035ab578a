"""Per-stage progress of a background job, folded from its event stream (DESIGN.md "Events").

The panel shows one bar and one line of text per job; this turns the events the CLI writes into
those two things, so the widget never has to know what an event looks like.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class StageProgress:
    """Where one stage stands: pending, running, done or failed, and its last progress count."""

    name: str
    status: str = "pending"
    done: int = 0
    total: int = 0
    unit: str = ""
    seconds: float | None = None

    @property
    def fraction(self) -> float:
        if self.status == "done":
            return 1.0
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


@dataclass
class RunProgress:
    """Stages of a run in order, the one running now, and the messages worth showing.

    Stages announced by ``run_start`` make up the bar; events of other stages (the command's own
    wrapper stage, ``preprocess``) only change the text, so the bar never runs backwards.
    """

    stages: dict[str, StageProgress] = field(default_factory=dict)
    current: str | None = None
    activity: str = ""
    status: str = "running"
    error: str | None = None
    artefacts: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    _planned: bool = False
    _others: dict[str, StageProgress] = field(default_factory=dict)

    def feed(self, event: dict[str, Any]) -> None:
        """Update from one event (unknown events are ignored: newer CLIs may add some)."""
        kind, stage = event.get("event"), event.get("stage")
        if kind == "run_start":
            self._planned = True
            planned = [str(name) for name in event.get("stages", [])]
            seen, self.stages = self.stages, {}
            for name in planned:
                self.stages[name] = seen.pop(name, None) or StageProgress(name)
            self._others.update(seen)       # e.g. the command's own wrapper stage
        elif kind == "stage_start" and stage:
            self._stage(stage).status = "running"
            self.current, self.activity = stage, f"{stage}: started"
        elif kind == "progress" and stage:
            entry = self._stage(stage)
            entry.status = "running" if entry.status == "pending" else entry.status
            entry.done, entry.total = int(event.get("done", 0)), int(event.get("total", 0))
            entry.unit = str(event.get("unit", ""))
            self.current = stage
            self.activity = f"{stage}: {entry.done}/{entry.total} {entry.unit}".rstrip()
        elif kind == "stage_end" and stage:
            entry = self._stage(stage)
            entry.status, entry.seconds = str(event.get("status", "done")), event.get("seconds")
            self.activity = f"{stage}: {entry.status}"
        elif kind == "metric" and stage:
            self.metrics[f"{stage}/{event.get('name')}"] = event.get("value")
        elif kind == "artefact":
            self.artefacts.append(str(event.get("path")))
        elif kind == "log":
            self.activity = str(event.get("message", ""))
        elif kind == "error":
            self.error = str(event.get("message", ""))
        elif kind == "run_end":
            self.status = str(event.get("status", "done"))

    def feed_all(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.feed(event)

    def _stage(self, name: str) -> StageProgress:
        for table in (self.stages, self._others):
            if name in table:
                return table[name]
        entry = StageProgress(name)
        # Before a plan is announced every stage counts towards the bar; after it, only planned ones.
        (self._others if self._planned else self.stages)[name] = entry
        return entry

    @property
    def fraction(self) -> float:
        """0..1 over the planned stages (each stage an equal share)."""
        if not self.stages:
            return 0.0
        return sum(s.fraction for s in self.stages.values()) / len(self.stages)

    @property
    def percent(self) -> int:
        return int(round(100 * self.fraction))

    def text(self) -> str:
        """One line for the panel: which stage of how many, and how far it got."""
        names = list(self.stages)
        if self.current in names:
            index = names.index(self.current) + 1
            return f"stage {index}/{len(names)} · {self.activity}"
        return self.activity

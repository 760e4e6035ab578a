"""What every stage shares: the run context, the stage interface, and the resumable epoch loop."""
from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ..config import Profile
from ..data.slices import SliceSet
from ..events import EventWriter
from ..progress import track
from .checkpoint import EpochCheckpoint, Stateful
from ..runtime import DistInfo


@dataclass
class RunContext:
    run_dir: Path
    profile: Profile
    device: torch.device
    train: SliceSet
    val: SliceSet
    events: EventWriter = field(default_factory=EventWriter)
    dist: DistInfo = field(default_factory=DistInfo)
    show_progress: bool = True
    settings: dict[str, Any] = field(default_factory=dict)   # the run's recorded inputs

    def stage_dir(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, stage: str, name: str, data: dict[str, Any]) -> Path | None:
        """Rank 0 alone writes; returns the path it wrote (None on other ranks)."""
        if not self.dist.is_main:
            return None
        path = self.stage_dir(stage) / name
        path.write_text(json.dumps(data, indent=2, default=_plain))
        return path


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class Stage(ABC):
    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    config_section: ClassVar[str]          # the Profile field that configures this stage
    mode: ClassVar[str] = "weak"           # the kind of run it belongs to: "weak" or "mixed"

    @abstractmethod
    def run(self, ctx: RunContext) -> list[Path]:
        """Train / compute, write artefacts under ``ctx.run_dir``, return their paths."""


def run_epochs(ctx: RunContext, stage: str, epochs: int, budget_s: float | None,
               objects: dict[str, Stateful], one_epoch: Callable[[int], dict[str, float]],
               unit: str = "epoch") -> list[dict[str, float]]:
    """Run ``one_epoch(epoch)`` until ``epochs`` or the time budget is spent, checkpointing after
    the first and last epoch and at most every ``runtime.checkpoint_every_s`` between, so a
    killed run resumes where it was saved. Returns the per-epoch history."""
    checkpoint = EpochCheckpoint(ctx.stage_dir(stage) / "checkpoint.pt", stage, objects)
    start, history, elapsed = 0, [], 0.0
    restored = checkpoint.load()
    if restored is not None:
        start, extra = restored
        history, elapsed = list(extra.get("history", [])), float(extra.get("elapsed", 0.0))
        ctx.events.log(f"{stage}: resuming after epoch {start}", stage=stage)
    saved = time.monotonic()
    for epoch in track(range(start, epochs), f"{stage}", total=epochs - start, unit=unit,
                       show=ctx.show_progress and ctx.dist.is_main):
        if budget_s is not None and elapsed >= budget_s:
            ctx.events.log(f"{stage}: time budget of {budget_s:.0f} s spent after "
                           f"{epoch} epochs", stage=stage)
            break
        tic = time.monotonic()
        record = {"epoch": epoch + 1, **one_epoch(epoch)}
        elapsed += time.monotonic() - tic
        history.append(record)
        due = epoch == start or epoch + 1 == epochs or \
            time.monotonic() - saved >= ctx.profile.runtime.checkpoint_every_s
        if ctx.dist.is_main and due:   # checkpoint first: a client that sees the event may kill us
            checkpoint.save(epoch + 1, {"history": history, "elapsed": elapsed})
            saved = time.monotonic()
        ctx.events.progress(stage, epoch + 1, epochs, unit)
        for name, value in record.items():
            if name != "epoch":
                ctx.events.metric(stage, name, float(value))
    return history

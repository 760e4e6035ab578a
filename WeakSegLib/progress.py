"""Progress that a person sees (tqdm on stderr) and a client reads (``progress`` events)."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

from .events import EventWriter

T = TypeVar("T")


def track(items: Iterable[T], desc: str, total: int | None = None,
          events: EventWriter | None = None, stage: str | None = None, unit: str = "case",
          show: bool = True) -> Iterator[T]:
    """Iterate with a progress bar and one ``progress`` event per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, disable=not show,
               dynamic_ncols=True, leave=False)
    for done, item in enumerate(bar, start=1):
        yield item
        if events is not None:
            events.progress(stage or desc, done, total or done, unit)

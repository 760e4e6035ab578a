"""Mixed-supervision tests run torch on one thread: on the shared 2-core machine two threads
made the tiny end-to-end runs ~6× slower (contention), one is what the benchmarks use too."""
from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Mixed-supervision tests run torch on one thread (the shared ``one_torch_thread`` fixture)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread) -> None:
    """Every test of this folder."""

"""One exception type for bad input, so every entry point can show the user a clean message."""
from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input. The message always names the file (or folder) and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

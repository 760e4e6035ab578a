"""DESIGN.md "Layout": no import cycle, no module importing another part's private names."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def _load():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_library_has_no_import_cycle_and_no_private_import(capsys) -> None:
    graph = _load()
    argv, sys.argv = sys.argv, [str(SCRIPT)]
    try:
        assert graph.main() == 0
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert "cycles: 0" in out and "private imports across parts: 0" in out


def test_cycles_are_found() -> None:
    graph = _load()
    cycles = graph.find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycles == [["a", "b", "c"]]

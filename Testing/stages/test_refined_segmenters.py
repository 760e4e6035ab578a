"""The over/under segmenters keep the run going when refinement trusts nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from conftest import TINY_RUN_OVERRIDES
from WeakSegLib.config import apply_overrides, get_profile
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.events import EventWriter, parse_events
from WeakSegLib.pipeline import train


def test_no_reliable_slice_falls_back_to_the_initial_seeds(tiny_run: Path,
                                                          tiny_flair_t1_phantom: Path,
                                                          tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for path in (run / "refinement").glob("*.npz"):
        with np.load(path) as npz:
            arrays = dict(npz)
        arrays["reliable"][:] = False
        arrays["positive"][:] = False
        np.savez_compressed(path, **arrays)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"].pop("under")
    (run / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(run / "under")
    events_path = tmp_path / "events.jsonl"
    with EventWriter(events_path) as events:
        train(discover_cohort(tiny_flair_t1_phantom), run,
              apply_overrides(get_profile("fast"), TINY_RUN_OVERRIDES), device="cpu",
              stages=["under"], resume=True, events=events, show_progress=False)
    metrics = json.loads((run / "under" / "metrics.json").read_text())
    assert metrics["fallback_to_initial_seeds"] is True
    assert metrics["n_reliable_tumour"] > 0
    warnings = [e for e in parse_events(events_path.read_text().splitlines())
                if e["event"] == "log" and e.get("level") == "warning"]
    assert any("no reliable tumour slice" in e["message"] for e in warnings)

"""What the panel needs to know about a run folder (model bundle) without loading any weights.

Reading only ``manifest.json`` keeps the panel responsive and torch out of Slicer's main
process: whether a folder can segment, which modalities it needs, whether it can be resumed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..manifest import Manifest


def read_manifest(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The manifest of a run folder, or None when there is no readable one."""
    if not run_dir:
        return None
    try:
        return Manifest.load(Path(run_dir)).data
    except (FileNotFoundError, ValueError, OSError):
        return None


def bundle_problem(run_dir: str | Path | None) -> str | None:
    """Why a folder cannot segment yet (a sentence for the panel), or None when it can."""
    if not run_dir:
        return "choose a model bundle (a WeakSeg run folder)"
    path = Path(run_dir)
    if not path.is_dir():
        return f"{path} is not a folder"
    manifest = read_manifest(path)
    if manifest is None:
        return f"{path} holds no WeakSeg manifest.json: not a model bundle"
    stages = manifest.get("stages", {})
    if not stages:
        return "training has not finished any stage yet"
    unfinished = [f"{name} ({entry.get('status', '?')})" for name, entry in stages.items()
                  if entry.get("status") != "done"]
    if unfinished:
        return "training is not finished: " + ", ".join(unfinished) + "; resume it first"
    return None


def bundle_channels(run_dir: str | Path | None) -> list[str]:
    """Modalities the model was trained on, in channel order (``segment`` requires them all)."""
    manifest = read_manifest(run_dir)
    return list(manifest.get("channels", [])) if manifest else []


def run_resumable(run_dir: str | Path | None) -> bool:
    """A run folder that training left unfinished: a manifest with a stage not done, or none."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        return False
    stages = manifest.get("stages", {})
    return not stages or any(entry.get("status") != "done" for entry in stages.values())


def refinable(run_dir: str | Path | None) -> bool:
    """Whether a review of this model's output can fine-tune it (``train --base``): a weak run
    whose self-trained segmenter is done; a mixed-supervision model retrains seed 001's U-Net."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        return False
    stage = manifest.get("stages", {}).get("self_train", {})
    return manifest.get("mode", "weak") == "weak" and stage.get("status") == "done"

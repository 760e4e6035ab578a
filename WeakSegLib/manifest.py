"""The run manifest (DESIGN "Artefacts"): what a run folder holds and how far it got.

Kept as JSON and rewritten atomically after every change, so a crash leaves a readable record of
which stages are ``done`` and which must run again on ``--resume``.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__

NAME = "manifest.json"


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.run_dir, self.data = Path(run_dir), data

    @classmethod
    def create(cls, run_dir: Path, **fields: Any) -> "Manifest":
        data = {"version": __version__, "created": _now(), **fields, "stages": {}}
        manifest = cls(run_dir, data)
        manifest.save()
        return manifest

    @classmethod
    def load(cls, run_dir: Path) -> "Manifest":
        path = Path(run_dir) / NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no run manifest; is {run_dir} a WeakSeg run folder?")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: the manifest is not valid JSON ({err})") from None
        if not isinstance(data, dict) or "stages" not in data:
            raise ValueError(f"{path}: not a WeakSeg run manifest")
        return cls(run_dir, data)

    def save(self) -> None:
        path = self.run_dir / NAME
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(NAME + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, path)

    def status(self, stage: str) -> str | None:
        return self.data["stages"].get(stage, {}).get("status")

    def mark(self, stage: str, status: str, seconds: float | None = None,
             artefacts: list[Path] | None = None) -> None:
        entry = self.data["stages"].setdefault(stage, {})
        entry.update(status=status, updated=_now())
        if seconds is not None:
            entry["seconds"] = round(entry.get("seconds_before", 0.0) + seconds, 3)
        if status == "failed" and seconds is not None:
            entry["seconds_before"] = entry["seconds"]
        if artefacts is not None:
            entry["artefacts"] = {str(p.relative_to(self.run_dir)): file_hash(p)
                                  for p in artefacts if p is not None and p.is_file()}
        self.save()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

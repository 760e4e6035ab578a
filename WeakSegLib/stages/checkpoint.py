"""Per-epoch training checkpoints so a killed stage resumes where it stopped.

Written atomically (temp file + rename): a kill during the write leaves the previous checkpoint.
Read with ``weights_only=True``; nothing in the file runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import torch

FORMAT = "weakseg-checkpoint"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class EpochCheckpoint:
    def __init__(self, path: Path, stage: str, objects: dict[str, Stateful]):
        self.path, self.stage, self.objects = Path(path), stage, objects

    def save(self, epoch: int, extra: dict[str, Any]) -> None:
        states = {name: _unwrap(obj).state_dict() for name, obj in self.objects.items()}
        atomic_torch_save({"format": FORMAT, "stage": self.stage, "epoch": epoch,
                           "states": states, "extra": extra}, self.path)

    def load(self) -> tuple[int, dict[str, Any]] | None:
        """Restore the objects; returns (epochs done, extra) or None when there is none."""
        if not self.path.is_file():
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means the same
            raise ValueError(f"{self.path}: cannot read the checkpoint ({err}); delete it to "
                             "restart the stage from scratch") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("stage") != self.stage:
            raise ValueError(f"{self.path}: not a WeakSeg checkpoint of stage '{self.stage}'")
        for name, obj in self.objects.items():
            _unwrap(obj).load_state_dict(data["states"][name])
        return int(data["epoch"]), dict(data["extra"])

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _unwrap(obj: Any) -> Any:
    """DistributedDataParallel keeps the real model in ``.module``; anything else (an
    AveragedModel, whose ``.module`` is only part of its state) is saved whole."""
    from torch.nn.parallel import DistributedDataParallel

    return obj.module if isinstance(obj, DistributedDataParallel) else obj

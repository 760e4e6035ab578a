"""A compact copy of a trained run for shipping (the extension's default model).

Only the networks the chosen methods need (classifier and converter always: slice scores and the
difference score), weights in float16 (halves the size; they are read back into float32), the
manifest with the run's config, channels and split, and no cached slices or checkpoints. The
copy opens with ``load_bundle`` like any run.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import torch

from ..data.errors import InputError
from ..manifest import Manifest, file_hash

ALWAYS = ("classifier", "converter")


def half_weights(source: Path, target: Path) -> Path:
    """Copy a model file with its floating-point tensors in float16 (integers untouched), except
    a tensor float16 cannot hold (beyond ±65504: a BatchNorm running variance of the default
    model's self-trained U-Net reached 5·10⁵, became inf, and emptied that layer — one held-out
    patient 0.84 → 0.64 volume Dice), which stays float32. Read with weights_only=True, so
    nothing in the source runs."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["state_dict"] = {k: _half_if_it_fits(v) for k, v in payload["state_dict"].items()}
    payload["metadata"] = {**payload["metadata"], "stored_dtype": "float16"}
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, target)
    return target


def _half_if_it_fits(tensor: torch.Tensor) -> torch.Tensor:
    if not tensor.is_floating_point() or (tensor.abs() > torch.finfo(torch.float16).max).any():
        return tensor
    return tensor.half()


def export_bundle(run_dir: Path, out_dir: Path, methods: Sequence[str], half: bool = True,
                  overwrite: bool = False) -> dict:
    """Write the compact bundle of ``run_dir`` for ``methods`` to ``out_dir``; returns a
    summary (stages, files, megabytes)."""
    from ..inference.bundle import METHOD_STAGES

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    manifest = Manifest.load(run_dir)
    unknown = [m for m in methods if m not in METHOD_STAGES]
    if unknown:
        raise InputError(None, f"unknown method(s) {unknown}; known: {list(METHOD_STAGES)}")
    stages = list(dict.fromkeys([*ALWAYS, *(s for m in methods for s in METHOD_STAGES[m])]))
    missing = [s for s in stages if manifest.status(s) != "done"]
    if missing:
        raise InputError(run_dir, f"the run has not finished {missing}, which {list(methods)} "
                         "need")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(out_dir, "exists and is not empty; choose another --out or pass "
                             "--overwrite")
        shutil.rmtree(out_dir)
    files = []
    for stage in stages:
        source = run_dir / stage / "model.pt"
        target = out_dir / stage / "model.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        files.append(half_weights(source, target) if half else Path(shutil.copy2(source, target)))
        metrics = run_dir / stage / "metrics.json"
        if metrics.is_file():
            shutil.copy2(metrics, out_dir / stage / "metrics.json")
    data = json.loads(json.dumps(manifest.data))
    data["stages"] = {s: {**data["stages"][s], "artefacts": {
        str(p.relative_to(out_dir)): file_hash(p) for p in files if p.parent.name == s}}
        for s in stages}
    data["exported_from"] = {"run": str(run_dir), "methods": list(methods),
                             "dtype": "float16" if half else "float32"}
    (out_dir / "manifest.json").write_text(json.dumps(data, indent=2))
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {"stages": stages, "files": [str(p) for p in files], "megabytes": size / 2 ** 20}

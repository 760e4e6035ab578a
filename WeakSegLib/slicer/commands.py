"""The CLI command lines the panel runs, built in one place.

Each function returns the argument list after ``weakseg`` (see :func:`jobs.cli_command`), so a
test can check exactly what the panel would run, and the CLI contract (README "Command line")
is spelled out once on the Slicer side.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from .defaults import METHOD

DEVICES: tuple[str, ...] = ("auto", "cuda", "cpu")
#: config ``inference.default_method`` (see :mod:`.defaults`).
DEFAULT_METHOD = METHOD


def _device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def segment_arguments(model: str | Path, case_dir: str | Path, out: str | Path,
                      device: str = "auto", method: str | None = DEFAULT_METHOD,
                      mapping: Mapping[str, str | Path] | None = None,
                      overwrite: bool = False) -> list[str]:
    """``segment --model RUN --input CASE --out OUT [--method M] --device D [--map k=FILE] ...``.

    ``method=None`` leaves the choice to ``segment``: the run's ``inference.default_method``, or
    for a run without that stage the best one it has (a mixed-supervision run: "mixed").
    """
    # the panel applies its own Post-process option to the result, so the job returns it raw
    args = ["--model", str(model), "--input", str(case_dir), "--out", str(out)]
    if method:
        args += ["--method", method]
    args += ["--device", _device(device), "--postprocess", "none"]
    for key, path in (mapping or {}).items():
        args += ["--map", f"{key}={path}"]
    if overwrite:
        args.append("--overwrite")
    return args


def train_arguments(data: str | Path, out: str | Path, device: str = "auto",
                    resume: bool = False, ranges: str | Path | None = None,
                    labels: str | Path | None = None, overrides: Sequence[str] = (),
                    profile: str | None = None) -> list[str]:
    """``train --data DIR --out RUN [--resume] [--ranges CSV | --labels CSV] [--set k=v] ...``."""
    if ranges and labels:
        raise ValueError("give slice ranges or slice labels, not both")
    args = ["--data", str(data), "--out", str(out), "--device", _device(device)]
    if profile:
        args += ["--profile", profile]
    if resume:
        args.append("--resume")
    if ranges:
        args += ["--ranges", str(ranges)]
    if labels:
        args += ["--labels", str(labels)]
    for assignment in overrides:
        args += ["--set", assignment]
    return args


def retrain_arguments(records: str | Path, data: str | Path, out: str | Path,
                      device: str = "auto", labels: str | Path | None = None,
                      ranges: str | Path | None = None, full_cases: Sequence[str] = (),
                      overrides: Sequence[str] = (), base: str | Path | None = None
                      ) -> list[str]:
    """``train --mode mixed --data DIR --review RECORDS.json [--base RUN] --out RUN ...``.

    The accepted/corrected slices of the review records (see :mod:`WeakSegLib.slicer.review`)
    become full annotations, ``full_cases`` of ``data`` give their whole masks, every other
    slice keeps its slice label (``labels``/``ranges``). With ``base`` (a weak run) they
    fine-tune its self-trained segmenter (issue 13); without, seed 001's U-Net trains anew.
    """
    args = ["--mode", "mixed", "--data", str(data), "--review", str(records)]
    if base is not None:
        args += ["--base", str(base)]
    if full_cases:
        args += ["--full-cases", ",".join(full_cases)]
    args += train_arguments(data, out, device=device, ranges=ranges, labels=labels,
                            overrides=overrides)[2:]           # without a second --data
    return args

"""``weakseg segment``: a bundle applied to a case or a cohort, written case by case."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.brain_mask import attach_brain_mask, brain_mask_path, write_brain_mask
from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.reader import read_case
from ..events import EventWriter
from ..postprocess.ops import apply_ops, parse_ops
from ..progress import track
from ..runtime import release_memory
from .bundle import Bundle, check_methods
from .outputs import case_outputs, refuse_existing, write_case
from .volume import CaseSegmentation, segment_case


def postprocess_case(result: CaseSegmentation, ops: str, brain: np.ndarray) -> None:
    """Apply anatomical-consistency operations to every label map of ``result`` in place. The
    difference scores stay those of the raw segmentation, except that a slice the operations
    emptied has none (so the table never flags a slice with nothing on it)."""
    for method, labels in result.labels.items():
        result.labels[method] = apply_ops(
            labels, ops, spacing=result.geometry.spacing_zyx, brain=brain,
            slice_scores=result.slice_scores).astype(np.uint8)
        if method in result.difference:   # a slice emptied by the operations has no score
            empty = ~result.labels[method].any(axis=(1, 2))
            result.difference[method] = np.where(empty, np.nan, result.difference[method])


def resolve_postprocess(bundle: Bundle, ops: str | None) -> str | None:
    """None → the profile's default operations; "none" or "" → no post-processing."""
    if ops is None:
        ops = bundle.profile.inference.postprocess
    return None if not ops or ops.strip().lower() == "none" else ops


def segment_cohort(bundle: Bundle, cohort: Cohort, out_dir: Path | None,
                   methods: Sequence[str], overwrite: bool = False, postprocess: str | None = None,
                   events: EventWriter | None = None, show_progress: bool = True,
                   keep: bool = False, brain_mask: str | None = None) -> list[CaseSegmentation]:
    """Segment every case; with ``out_dir``, write its files (checked before any work, so
    an existing output stops the run before minutes are spent) and its brain mask
    (``<case>_brain.nii.gz``). ``keep``: return the full results (evaluation needs them);
    otherwise only the label maps are kept in memory, and with ``out_dir`` not even those
    (they are on disk: a long batch holds memory flat). ``brain_mask``: auto | on | off
    (default: the bundle's ``data.brain_mask``)."""
    events = events or EventWriter()
    postprocess = resolve_postprocess(bundle, postprocess)
    methods = check_methods(bundle, list(methods))
    if postprocess:
        try:
            parse_ops(postprocess)
        except ValueError as error:
            raise InputError(None, f"--postprocess: {error}") from None
    table_method = methods[0]
    if out_dir is not None and not overwrite:
        refuse_existing([p for case in cohort.names for m in methods
                         for key, p in case_outputs(out_dir, case, m).items()
                         if key != "slices" or m == table_method]
                         + [brain_mask_path(out_dir, case) for case in cohort.names])
    results, frames = [], {}
    started = time.time()
    for files in track(cohort.cases, "segment", events=events, stage="segment",
                       unit="case", show=show_progress):
        case = read_case(files, data=bundle.profile.data)     # the bundle's frame (issue 14)
        for warning in case.warnings:
            events.log(warning, "warning", "segment")
        frames[files.name] = case.frame.describe()
        attach_brain_mask(case, bundle.profile.data, bundle.device, events, mode=brain_mask)
        result = segment_case(bundle, case, methods)
        if postprocess:
            postprocess_case(result, postprocess, case.brain)
        if out_dir is not None:
            for path in write_case(out_dir, result, methods, table_method,
                                   bundle.profile.inference, overwrite):
                events.artefact("segment", path)
            brain = case.to_input(case.brain.astype(np.uint8), "mask")   # unbiased edge
            events.artefact("segment", write_brain_mask(brain_mask_path(out_dir, files.name),
                                                        brain, case.input_geometry, overwrite))
        events.metric("segment", f"{files.name}/seconds", result.seconds)
        if not keep:
            result.probabilities, result.flair, result.variant = {}, np.zeros(0), np.zeros(0)
            if out_dir is not None:
                result.labels, result.review_labels = {}, {}
        results.append(result)
        release_memory()
    if out_dir is not None:
        events.artefact("segment", write_provenance(out_dir, bundle, methods, postprocess,
                                                    [r.name for r in results], started, frames))
    return results


PROVENANCE = "weakseg_segment.json"


def write_provenance(out_dir: Path, bundle: Bundle, methods: Sequence[str],
                     postprocess: str | None, cases: list[str], started: float,
                     frames: dict | None = None) -> Path:
    """Append this invocation to ``OUT/weakseg_segment.json``: which run (and the hash of its
    manifest), methods, post-processing, gate, review settings, versions and time — the
    prediction carries where it came from, as nnU-Net writes its plans beside its output."""
    import platform

    import torch

    from .. import __version__
    from ..manifest import NAME, file_hash

    path = Path(out_dir) / PROVENANCE
    record = {"run": str(Path(bundle.run_dir).resolve()),
              "manifest_sha256": file_hash(Path(bundle.run_dir) / NAME),
              "methods": list(methods), "postprocess": postprocess,
              "gate": bundle.gate,
              "review_scores": list(bundle.profile.inference.review_scores),
              "review_threshold": bundle.profile.inference.review_threshold,
              "channels": list(bundle.channels), "device": str(bundle.device),
              "cases": cases, "frames": frames or {},       # input grid ↔ model grid per case
              "weakseg": __version__, "torch": torch.__version__,
              "python": platform.python_version(),
              "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
              "seconds": round(time.time() - started, 1)}
    runs = []
    if path.is_file():
        try:
            runs = list(json.loads(path.read_text()).get("runs", []))
        except (ValueError, AttributeError):
            runs = []        # an unreadable earlier record is replaced, not fatal
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"runs": runs + [record]}, indent=2))
    tmp.replace(path)
    return path

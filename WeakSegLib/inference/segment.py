"""``weakseg segment``: a bundle applied to a case or a cohort, written case by case."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.reader import read_case
from ..events import EventWriter
from ..postprocess.ops import apply_ops, parse_ops
from ..progress import track
from .bundle import Bundle, check_methods
from .mixed_segment import MixedBundle, segment_case_mixed
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


def resolve_postprocess(bundle: "Bundle | MixedBundle", ops: str | None) -> str | None:
    """None → the profile's default operations; "none" or "" → no post-processing."""
    if ops is None:
        ops = bundle.profile.inference.postprocess
    return None if not ops or ops.strip().lower() == "none" else ops


def segment_cohort(bundle: Bundle | MixedBundle, cohort: Cohort, out_dir: Path | None,
                   methods: Sequence[str], overwrite: bool = False, postprocess: str | None = None,
                   events: EventWriter | None = None, show_progress: bool = True,
                   keep: bool = False) -> list[CaseSegmentation]:
    """Segment every case; with ``out_dir``, write its files (checked before any work, so
    an existing output stops the run before minutes are spent). ``keep``: return the full
    results (evaluation needs them); otherwise only the label maps are kept in memory."""
    events = events or EventWriter()
    postprocess = resolve_postprocess(bundle, postprocess)
    mixed = isinstance(bundle, MixedBundle)
    methods = list(bundle.methods) if mixed else check_methods(bundle, list(methods))
    if postprocess:
        try:
            parse_ops(postprocess)
        except ValueError as error:
            raise InputError(None, f"--postprocess: {error}") from None
    table_method = methods[0]
    if out_dir is not None and not overwrite:
        refuse_existing([p for case in cohort.names for m in methods
                         for key, p in case_outputs(out_dir, case, m).items()
                         if key != "slices" or m == table_method])
    results = []
    for files in track(cohort.cases, "segment", events=events, stage="segment",
                       unit="case", show=show_progress):
        case = read_case(files)
        result = segment_case_mixed(bundle, case) if mixed else segment_case(bundle, case,
                                                                              methods)
        if postprocess:
            postprocess_case(result, postprocess, case.brain)
        if out_dir is not None:
            for path in write_case(out_dir, result, methods, table_method,
                                   bundle.profile.inference, overwrite):
                events.artefact("segment", path)
        events.metric("segment", f"{files.name}/seconds", result.seconds)
        if not keep:
            result.probabilities, result.flair, result.variant = {}, np.zeros(0), np.zeros(0)
        results.append(result)
    return results

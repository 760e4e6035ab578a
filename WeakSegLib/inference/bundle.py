"""A trained run folder opened for inference: its profile, channels and the networks it has.

Which segmentation methods a bundle offers follows from the stages it finished, so a run
stopped after the initial segmenter still segments (``initial``), just not ``combined``. A
mixed-supervision run (``train --mode mixed``) is a bundle too: no classifier, no healthy
variant, one segmenter and one method, "mixed".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import Profile, profile_from_dict
from ..data.cohort import Cohort
from ..data.errors import InputError
from ..data.slices import load_labels
from ..manifest import Manifest
from ..models.mixed_unet import TumourProbability
from ..paths import DEFAULT_MODEL, default_model_dir  # noqa: F401 (re-exported)
from ..stages.classifier import load_classifier
from ..stages.converter import load_converter
from ..stages.mixed import load_mixed_model
from ..runtime import resolve_device
from ..stages.run_folder import CLASSIFIER_SCORES, SLICE_CACHE
from ..stages.segmenter import load_segmenter

#: method → the stages it needs (in addition to classifier and converter).
METHOD_STAGES: dict[str, tuple[str, ...]] = {
    "combined": ("under", "over"),
    "combined_score_weight": ("under", "over"),
    "initial": ("segmenter",),
    "under": ("under",),
    "over": ("over",),
    "seed_only": ("seed_only",),
    "self_trained": ("self_train",),
    "l1_baseline": (),
    "supervised_reference": ("supervised",),
    "mixed": ("mixed",),
}
#: segmenter networks by stage name
SEGMENTER_STAGES = ("segmenter", "under", "over", "seed_only", "self_train", "supervised",
                    "mixed")
#: methods whose network learned "empty" from healthy slices itself: the classifier does not
#: gate them (the gate drops every tumour patch the classifier misses)
UNGATED_METHODS = ("self_trained", "supervised_reference", "mixed")
#: methods that need neither the classifier nor the converter (a mixed run has neither)
STANDALONE_METHODS = ("mixed",)


@dataclass
class Bundle:
    run_dir: Path
    profile: Profile
    channels: list[str]
    device: torch.device
    classifier: nn.Module | None          # None: a mixed run (no classifier, no variant)
    converter: nn.Module | None
    segmenters: dict[str, nn.Module] = field(default_factory=dict)
    split: dict[str, list[str]] = field(default_factory=dict)
    gate: float | None = 0.5     # the classifier score below which a patch is empty
    threshold: float = 0.5       # probability → label

    @property
    def methods(self) -> list[str]:
        """Methods this bundle can segment with, in METHOD_STAGES order."""
        weak = self.classifier is not None and self.converter is not None
        return [m for m, needs in METHOD_STAGES.items()
                if all(s in self.segmenters for s in needs)
                and (weak or m in STANDALONE_METHODS)]


def unseen_cases(bundle: Bundle, cohort: Cohort) -> list[str]:
    """The cases of ``cohort`` this bundle never trained or validated on (its recorded split):
    the only ones its figures may be reported on."""
    seen = {name for names in bundle.split.values() for name in names}
    return [name for name in cohort.names if name not in seen]


def load_bundle(run_dir: str | Path, device: str = "auto") -> Bundle:
    """Open ``run_dir`` (or the shipped bundle for "default"); a folder that is not a finished
    WeakSeg run is an InputError."""
    run_dir = default_model_dir() if str(run_dir) == DEFAULT_MODEL else Path(run_dir)
    if not (run_dir / "manifest.json").is_file():
        raise InputError(run_dir, "is not a WeakSeg model bundle (no manifest.json); give the "
                         "--out folder of `weakseg train`")
    manifest = Manifest.load(run_dir)
    if manifest.data.get("mode") == "mixed":
        return _load_mixed_bundle(run_dir, manifest, device)
    missing = [s for s in ("classifier", "converter") if manifest.status(s) != "done"]
    if missing:
        raise InputError(run_dir, f"the run has not finished {missing}; finish it with "
                         "`weakseg train --resume` first")
    profile, torch_device = _profile_and_device(run_dir, manifest, device)
    try:
        classifier = load_classifier(run_dir, torch_device)
        converter = load_converter(run_dir, torch_device)
        segmenters = {name: load_segmenter(run_dir, torch_device, name)
                      for name in SEGMENTER_STAGES if manifest.status(name) == "done"}
    except (ValueError, FileNotFoundError) as error:
        raise InputError(run_dir, str(error)) from None
    split = dict(manifest.data.get("split", {}))
    return Bundle(run_dir, profile, list(manifest.data["channels"]), torch_device, classifier,
                  converter, segmenters, split, gate_threshold(run_dir, profile, split),
                  profile.inference.threshold)


def _profile_and_device(run_dir: Path, manifest: Manifest, device: str
                        ) -> tuple[Profile, torch.device]:
    """The run's recorded profile (an unreadable config is an InputError naming the manifest)
    and the torch device for ``device``."""
    try:
        profile = profile_from_dict(manifest.data["config"])
    except (ValueError, TypeError) as error:
        raise InputError(run_dir / "manifest.json", f"config cannot be read: {error}") from None
    return profile, resolve_device(device)


def _load_mixed_bundle(run_dir: Path, manifest: Manifest, device: str) -> Bundle:
    """A mixed-supervision run: its U-Net as the segmenter ``mixed`` (tumour probability),
    ungated, labelled at ``mixed.threshold``."""
    if manifest.status("mixed") != "done":
        raise InputError(run_dir, "the mixed-supervision run has not finished; finish it with "
                         "`weakseg train --mode mixed --resume` first")
    profile, torch_device = _profile_and_device(run_dir, manifest, device)
    try:
        model = TumourProbability(load_mixed_model(run_dir, torch_device)).eval()
    except (ValueError, FileNotFoundError) as error:
        raise InputError(run_dir, str(error)) from None
    return Bundle(run_dir, profile, list(manifest.data["channels"]), torch_device, None, None,
                  {"mixed": model}, dict(manifest.data.get("split", {})), None,
                  profile.mixed.threshold)


def gate_threshold(run_dir: Path, profile: Profile, split: dict[str, list[str]]) -> float:
    """The configured gate, lowered to the classifier score that keeps ``gate_sensitivity``
    of the tumour slices of the run's validation patients — patients the classifier did not
    train on, so the gate is set for new patients (issue 12: on its own training slices the
    classifier is over-confident) — or of the training slices when the run has no validation
    patient with tumour."""
    cfg = profile.inference
    scores_path, slices_path = run_dir / CLASSIFIER_SCORES, run_dir / SLICE_CACHE
    if cfg.gate_sensitivity is None or not scores_path.is_file() or not slices_path.is_file():
        return cfg.gate
    with np.load(scores_path, allow_pickle=False) as npz:
        all_scores = {k: np.asarray(npz[k], np.float32) for k in ("train", "val") if k in npz}
    split_name = "train"
    if "val" in all_scores and split.get("val"):
        val_labels = load_labels(slices_path, split["val"])
        if val_labels.shape == all_scores["val"].shape and (val_labels == 1).any():
            split_name = "val"
    scores = all_scores[split_name]
    labels = load_labels(slices_path, split.get(split_name, []))
    if labels.shape != scores.shape or not (labels == 1).any():
        return cfg.gate
    kept = float(np.quantile(scores[labels == 1], 1.0 - cfg.gate_sensitivity))
    return min(cfg.gate, kept)


def default_method(bundle: Bundle) -> str:
    """The profile's default method, or — for a run made before that method existed — the
    first method the run offers of: combined, initial, seed_only."""
    wanted = bundle.profile.inference.default_method
    if wanted in bundle.methods:
        return wanted
    for method in ("combined", "initial", "seed_only", *bundle.methods):
        if method in bundle.methods:
            return method
    raise InputError(bundle.run_dir, "the run has no finished segmenter to segment with")


def check_methods(bundle: Bundle, methods: list[str]) -> list[str]:
    """The requested methods, or an InputError naming what the bundle lacks."""
    unknown = [m for m in methods if m not in METHOD_STAGES]
    if unknown:
        raise InputError(None, f"unknown method(s) {unknown}; known: {list(METHOD_STAGES)}")
    lacking = [m for m in methods if m not in bundle.methods]
    if lacking:
        raise InputError(bundle.run_dir, f"this run cannot segment with {lacking} (its stages "
                         f"are not done); it offers {bundle.methods}")
    return methods

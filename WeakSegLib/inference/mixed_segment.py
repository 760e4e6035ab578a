"""``weakseg segment`` with a mixed-supervision run (``train --mode mixed``): one network, one
method ("mixed"). It has no healthy variant, so its slices get no difference score; their review
priority comes from the mask-free scores that need none (classifier against segmentation,
continuity, size); the slice score is the network's highest tumour probability on the slice."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Profile, profile_from_dict
from ..data.errors import InputError
from ..data.preprocess import preprocess_case
from ..data.reader import CaseVolumes
from ..manifest import Manifest
from ..runtime import resolve_device
from .patches import patch_geometry
from .volume import CaseSegmentation

METHOD = "mixed"


def is_mixed_run(run_dir: str | Path) -> bool:
    path = Path(run_dir) / "manifest.json"
    return path.is_file() and Manifest.load(Path(run_dir)).data.get("mode") == "mixed"


@dataclass
class MixedBundle:
    run_dir: Path
    profile: Profile
    channels: list[str]
    device: torch.device
    model: torch.nn.Module
    methods: tuple[str, ...] = (METHOD,)


def load_mixed_bundle(run_dir: str | Path, device: str = "auto") -> MixedBundle:
    from ..models.mixed_unet import load_mixed_model

    run_dir = Path(run_dir)
    manifest = Manifest.load(run_dir)
    if manifest.status("mixed") != "done":
        raise InputError(run_dir, "the mixed-supervision run has not finished; finish it with "
                         "`weakseg train --mode mixed --resume` first")
    torch_device = resolve_device(device)
    try:
        model, _ = load_mixed_model(run_dir / "mixed" / "model.pt", torch_device)
    except (ValueError, FileNotFoundError) as error:
        raise InputError(run_dir, str(error)) from None
    return MixedBundle(run_dir, profile_from_dict(manifest.data["config"]),
                       list(manifest.data["channels"]), torch_device, model)


def segment_case_mixed(bundle: MixedBundle, case: CaseVolumes) -> CaseSegmentation:
    from ..mixed.infer import predict_case

    started = time.monotonic()
    cfg = bundle.profile
    prep = preprocess_case(case, cfg.data, bundle.channels)
    patch, stride = patch_geometry(cfg.data.size, cfg.inference.stride)
    probability, labels = predict_case(bundle.model, prep, patch, stride, cfg.mixed.threshold,
                                       bundle.device, cfg.runtime)
    flair = prep.image[:, bundle.channels.index("flair")]
    result = CaseSegmentation(case.name, case.geometry, prep.mapping, {METHOD: labels},
                              {METHOD: probability}, np.zeros(0, np.float32), {}, flair, flair)
    result.slice_scores = result.to_input_slices(probability.reshape(len(probability), -1)
                                                 .max(axis=1, initial=0.0), 0.0)
    result.difference = {METHOD: result.to_input_slices(np.full(len(probability), np.nan), np.nan)}
    result.seconds = time.monotonic() - started
    return result

"""The brain mask of a case: where preprocessing, the crop box and the baselines look.

BraTS-style scans are skull-stripped: the brain is every voxel that is not background. A scan
as a clinic stores it still has its skull and scalp (the scalp is the brightest thing on a
FLAIR), so its brain comes from a brain-extraction model: ``deepbet`` (MIT, Fisch et al. 2024),
whose two TorchScript networks ship inside its wheel (``site-packages/data/models/*.pt``) and
run offline on CPU or CUDA. A classical baseline (Otsu, erosion, largest component, hole
filling) is kept for comparison (``benchmarks/brain_extraction.py``).

``--brain-mask auto`` recognises a skull-stripped scan by its background: one value (the
minimum, usually 0) on nearly all of the volume's border and on a large part of the volume.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..config import DataConfig
from ..events import EventWriter
from .errors import InputError
from .reader import CaseVolumes, Geometry

BRAIN_MASK_MODES = ("auto", "on", "off")
#: ``segment`` writes ``<case>/<case>_brain.nii.gz``: a file beside the label maps, not a method
BRAIN_MASK_NAME = "brain"
BRAIN_METHODS = ("deepbet", "otsu")
#: the border must be this uniform for a scan to count as skull-stripped
_BORDER_UNIFORM = 0.9

_MODELS: dict[str, object] = {}      # device → deepbet.BrainExtraction (loaded once)


@dataclass(frozen=True)
class BrainMask:
    """A boolean (z, y, x) mask on the case's grid and where it came from."""

    mask: np.ndarray
    source: str          # "nonzero" (off), "background" (skull-stripped), "deepbet", "otsu"
    seconds: float = 0.0

    @property
    def extracted(self) -> bool:
        """True when a brain-extraction method made it (the scan had its skull)."""
        return self.source in BRAIN_METHODS


def _border(volume: np.ndarray) -> np.ndarray:
    """Every voxel on a face of the array (first and last index of each axis)."""
    return np.concatenate([np.take(volume, [0, -1], axis=axis).ravel()
                           for axis in range(volume.ndim)])


def background_value(volume: np.ndarray) -> tuple[float, float]:
    """The most common value on the volume's border and the fraction of the border it holds."""
    values, counts = np.unique(_border(volume), return_counts=True)
    best = int(counts.argmax())
    return float(values[best]), float(counts[best] / counts.sum())


def is_skull_stripped(volume: np.ndarray, min_background: float) -> bool:
    """A skull-stripped scan: one exact value on ≥ 90 % of the border and on ≥
    ``min_background`` of all voxels (BraTS: 80–87 %; tcga-lgg with skull: 7–33 %)."""
    value, on_border = background_value(volume)
    return on_border >= _BORDER_UNIFORM and float((volume == value).mean()) >= min_background


def non_background(case: CaseVolumes) -> np.ndarray:
    """Voxels that differ from their modality's background value in any modality."""
    return np.any(np.stack([im != background_value(im)[0] for im in case.images.values()]),
                  axis=0)


def _device(device: object) -> str:
    import torch

    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _deepbet(device: str):
    """deepbet's BrainExtraction on ``device``, its weights read from the wheel (no download)."""
    if device not in _MODELS:
        from deepbet import BrainExtraction

        bet = BrainExtraction(no_gpu=True)          # loads on the CPU, then moves
        bet.model.to(device)
        bet.bbox_model.to(device)
        _MODELS[device] = bet
    return _MODELS[device]


def deepbet_mask(image: sitk.Image, device: object = "cpu", threshold: float = 0.5
                 ) -> np.ndarray:
    """deepbet's brain mask of ``image``, (z, y, x) on the image's own grid.

    deepbet expects nibabel's RAS array (x toward right, y anterior, z superior): the image is
    reoriented (axes permuted and flipped only, so the way back by nearest neighbour is exact),
    and the mask resampled back onto the input grid."""
    import torch

    bet = _deepbet(_device(device))
    ras = sitk.DICOMOrient(image, "RAS")
    x = np.ascontiguousarray(sitk.GetArrayFromImage(ras).astype(np.float32).transpose(2, 1, 0))
    try:
        with torch.no_grad():
            probability = bet.run_model(x)
        mask = bet.postprocess(probability > threshold)
    except (AssertionError, ValueError):        # deepbet finds no head / no component
        return np.zeros(tuple(reversed(image.GetSize())), bool)
    out = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0).astype(np.uint8)))
    out.CopyInformation(ras)
    back = sitk.Resample(out, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)
    return sitk.GetArrayFromImage(back) > 0


def otsu_mask(image: sitk.Image, erode_mm: float = 8.0) -> np.ndarray:
    """Classical baseline: voxels above Otsu's threshold, eroded in-plane to break the thin
    bridges between scalp and brain across the dark skull, largest 3D component, dilated
    back inside the threshold, holes filled per slice. Crude (skull base, eyes); a comparison."""
    from skimage.filters import threshold_otsu

    array = sitk.GetArrayFromImage(image).astype(np.float32)
    bright = array > threshold_otsu(array)
    spacing = np.asarray(image.GetSpacing()[::-1], float)
    radius = np.maximum(1, np.round(erode_mm / spacing[1:])).astype(int)    # in-plane only:
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]                # thick slices
    structure = (sum((g / r) ** 2 for g, r in zip(grid, radius)) <= 1.0)[None]
    core = ndimage.binary_erosion(bright, structure)
    labels, n = ndimage.label(core)
    if n == 0:
        return np.zeros(array.shape, bool)
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    brain = ndimage.binary_dilation(largest, structure) & bright
    return np.stack([ndimage.binary_fill_holes(s) for s in brain])


def extract_brain(image: sitk.Image, method: str = "deepbet", device: object = "cpu"
                  ) -> np.ndarray:
    """Brain mask of a scan with its skull, by ``method`` (deepbet or otsu)."""
    if method == "deepbet":
        return deepbet_mask(image, device)
    if method == "otsu":
        return otsu_mask(image)
    raise ValueError(f"unknown brain-extraction method {method!r}; choose one of {BRAIN_METHODS}")


def case_brain_mask(case: CaseVolumes, mode: str = "auto", method: str = "deepbet",
                    device: object = "cpu", min_background: float = 0.5) -> BrainMask:
    """The brain of ``case``: non-zero voxels (off), non-background voxels of a skull-stripped
    scan (auto), or extracted from the FLAIR (on, or auto on a scan with its skull)."""
    if mode not in BRAIN_MASK_MODES:
        raise InputError(None, f"--brain-mask must be one of {', '.join(BRAIN_MASK_MODES)}, "
                         f"not {mode!r}")
    started = time.monotonic()
    flair_path = case.files.images.get("flair") if case.files else None
    if mode == "off":
        result = BrainMask(np.any(np.stack([im != 0 for im in case.images.values()]), axis=0),
                           "nonzero")
    elif mode == "auto" and is_skull_stripped(case.images["flair"], min_background):
        result = BrainMask(non_background(case), "background")
    else:
        image = case.geometry.image_from_array(case.images["flair"])
        result = BrainMask(extract_brain(image, method, device), method,
                           time.monotonic() - started)
    if not result.mask.any():
        raise InputError(flair_path or (case.files.folder if case.files else None),
                         f"the brain mask of case {case.name} came out empty ({result.source}); "
                         "is this a head MR scan? Try --brain-mask off for a skull-stripped "
                         "scan or on for one with its skull")
    return result


def attach_brain_mask(case: CaseVolumes, cfg: DataConfig, device: object = "cpu",
                      events: EventWriter | None = None, mode: str | None = None) -> BrainMask:
    """Compute the case's brain mask (``mode`` or ``cfg.brain_mask``) and keep it on the case,
    so the crop box, normalisation, slice selection and the baselines all use it."""
    result = case_brain_mask(case, mode or cfg.brain_mask, cfg.brain_method, device,
                             cfg.skull_stripped_background)
    case.brain_mask, case.brain_source = result.mask, result.source
    if events is not None and result.extracted:
        events.log(f"brain mask of {case.name}: {result.source}, {int(result.mask.sum())} "
                   f"voxels, {result.seconds:.1f} s", stage="brain_mask")
        events.metric("brain_mask", f"{case.name}/seconds", round(result.seconds, 2))
    return result


def brain_mask_path(out_dir: Path, case: str) -> Path:
    """Where ``segment`` writes a case's brain mask: beside its label maps."""
    return Path(out_dir) / case / f"{case}_{BRAIN_MASK_NAME}.nii.gz"


def write_brain_mask(path: Path, mask: np.ndarray, geometry: Geometry,
                     overwrite: bool = False) -> Path:
    """The brain mask as a uint8 label map (1 = brain) on the input's grid."""
    from .reader import write_label_map

    return write_label_map(path, mask.astype(np.uint8), geometry, overwrite=overwrite)

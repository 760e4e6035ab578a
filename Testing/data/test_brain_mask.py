"""Brain mask: skull-stripped scans recognised, deepbet on a scan with its skull (offline, from
its wheel), intensities of any type normalised alike, an empty mask a clear error."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from helpers import write_volume
from WeakSegLib.config import DataConfig
from WeakSegLib.data.brain_mask import (attach_brain_mask, background_value, case_brain_mask,
                                        is_skull_stripped)
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.data.preprocess import preprocess_case
from WeakSegLib.data.reader import read_case

TCGA = SHARED_DATA / "tcga-lgg"
TCGA_CASE = "TCGA_CS_4941_19960909"


@pytest.fixture(scope="module")
def brats_case(brats_sample: Path):
    return read_case(discover_cohort(brats_sample / "Brats18_CBICA_AAB_1").cases[0])


@pytest.fixture(scope="module")
def tcga_case():
    if not (TCGA / TCGA_CASE).is_dir():
        pytest.skip(f"real data not found at {TCGA} (expected ../shared/data beside the repo)")
    return read_case(discover_cohort(TCGA / TCGA_CASE).cases[0])


def test_deepbet_weights_ship_in_its_wheel() -> None:
    """The networks are files of the installed package: nothing is downloaded."""
    pytest.importorskip("deepbet", reason="deepbet (needs torch) is not installed here")
    from deepbet.utils import DATA_PATH

    for name in ("model.pt", "bbox_model.pt"):
        assert (Path(DATA_PATH) / "models" / name).stat().st_size > 1_000_000


def test_auto_tells_skull_stripped_from_skull(brats_case, tcga_case) -> None:
    cfg = DataConfig()
    assert is_skull_stripped(brats_case.images["flair"], cfg.skull_stripped_background)
    assert not is_skull_stripped(tcga_case.images["flair"], cfg.skull_stripped_background)
    assert background_value(brats_case.images["flair"])[0] == 0.0


def test_auto_on_a_skull_stripped_scan_is_its_non_background(brats_case) -> None:
    result = case_brain_mask(brats_case, "auto")
    assert result.source == "background" and not result.extracted
    assert np.array_equal(result.mask, np.any(np.stack(
        [im != 0 for im in brats_case.images.values()]), axis=0))


def test_deepbet_finds_the_brain_of_a_scan_with_its_skull(tcga_case) -> None:
    """deepbet's brain holds the tumour and leaves the scalp out: the scalp is the brightest
    part of this FLAIR, the brain mask's brightest voxels are far darker."""
    pytest.importorskip("deepbet", reason="deepbet (needs torch) is not installed here")
    case = replace(tcga_case)
    result = attach_brain_mask(case, DataConfig(), "cpu")
    assert result.source == "deepbet" and case.brain is result.mask
    tumour = tcga_case.mask > 0
    assert (result.mask & tumour).sum() / tumour.sum() > 0.95
    flair = tcga_case.images["flair"]
    head = flair > 10
    assert 0.3 < result.mask.sum() / head.sum() < 0.8
    assert np.percentile(flair[result.mask], 99.9) < np.percentile(flair[head & ~result.mask], 99.9)
    # preprocessing crops to it and zeroes the rest (the scalp is gone)
    prep = preprocess_case(case, DataConfig())
    inside = prep.mapping.from_original(result.mask.astype(np.uint8), kind="mask") > 0
    nonzero = prep.image[:, 0] != 0
    assert np.array_equal(nonzero, inside)


def test_flair_threshold_inside_the_brain_finds_the_tumour(tcga_case) -> None:
    """Inside the non-zero 'brain' the threshold takes the scalp (Dice 0.03 in issue 14)."""
    pytest.importorskip("deepbet", reason="deepbet (needs torch) is not installed here")
    from WeakSegLib.baselines import flair_threshold
    from WeakSegLib.evaluation.metrics import volume_dice

    case = replace(tcga_case)
    attach_brain_mask(case, DataConfig(), "cpu", mode="on")
    assert volume_dice(flair_threshold(case), case.mask) > 0.3
    attach_brain_mask(case, DataConfig(), mode="off")
    assert volume_dice(flair_threshold(case), case.mask) < 0.1


@pytest.mark.parametrize("kind", ["uint8", "int16", "zscore", "zscore_brain"])
def test_intensities_of_any_type_normalise_alike(brats_case, kind: str) -> None:
    """The same case stored as 8-bit, 16-bit integers, float or z-scored (background
    negative, or 0 with the brain on both sides of it) gives nearly the same network input."""
    flair = brats_case.images["flair"]
    brain = flair != 0
    if kind == "uint8":
        stored = np.round(flair / flair.max() * 255)
    elif kind == "int16":
        stored = np.round(flair * 7.3 + 0.0)
    elif kind == "zscore":          # whole-volume z-score: the background is negative
        stored = (flair - flair.mean()) / flair.std()
    else:                           # brain-only z-score, background 0 (nnU-Net style)
        stored = np.where(brain, (flair - flair[brain].mean()) / flair[brain].std(), 0)
    reference = replace(brats_case, images={"flair": flair})
    other = replace(brats_case, images={"flair": stored.astype(np.float32)})
    outputs = []
    for case in (reference, other):
        attach_brain_mask(case, DataConfig())
        outputs.append(preprocess_case(case, DataConfig(), ["flair"]).image)
    assert outputs[0].shape == outputs[1].shape
    difference = np.abs(outputs[0] - outputs[1])
    if kind == "zscore_brain":
        # the z-score lost where 0 was: the brain's low percentile becomes the zero level,
        # a shift of at most low / high (0.14 on this case) at the dark end
        assert difference.mean() < 0.06 and difference.max() < 0.15
    else:
        assert difference.mean() < 0.002 and np.percentile(difference, 99.9) < 0.01
    assert np.array_equal(outputs[0] != 0, outputs[1] != 0)


def test_an_empty_brain_mask_is_an_input_error(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "blank" / "blank_flair.nii.gz",
                        np.zeros((12, 40, 40), np.float32))
    case = read_case(discover_cohort(tmp_path / "blank").cases[0])
    for mode in ("off", "on"):          # "on" by the classical method: no torch needed
        with pytest.raises(InputError, match="brain mask .* came out empty") as error:
            case_brain_mask(case, mode, "otsu")
        assert error.value.path == path


def test_unknown_mode_is_an_input_error(brats_case) -> None:
    with pytest.raises(InputError, match="--brain-mask must be one of"):
        case_brain_mask(brats_case, "maybe")

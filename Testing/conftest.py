"""Shared fixtures: paths to the real data in ../shared/data and small synthetic cases."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import synthetic_arrays, write_volume

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WEAKSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
BRATS_SAMPLE = SHARED_DATA / "brats2018-sample"
NO_LABEL = SHARED_DATA / "no-label"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture
def one_torch_thread():
    """One torch thread: on the shared 2-core machine two threads made the tiny mixed-
    supervision runs ~6× slower (contention); one is what the benchmarks use too."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def brats_sample() -> Path:
    return _require(BRATS_SAMPLE)


@pytest.fixture(scope="session")
def no_label_case() -> Path:
    return _require(NO_LABEL / "BraTS-GLI-00001-000")


@pytest.fixture
def synthetic_cohort(tmp_path: Path) -> Path:
    """Two BraTS-named cases on a small grid."""
    root = tmp_path / "cohort"
    for i in range(2):
        name = f"Case{i}"
        for key, array in synthetic_arrays(seed=i).items():
            write_volume(root / name / f"{name}_{key}.nii.gz", array)
    return root


#: A CPU-cheap profile for pipeline tests: the fast profile, full in-plane scale on 2 mm phantoms
#: (trained at their own 2 mm, not resampled to 1 mm).
TINY_OVERRIDES = ["data.inplane_scale=1.0", "data.inplane_spacing=2.0", "data.trim_fraction=0.1",
                  "classifier.epochs=2", "classifier.time_budget_s=none",
                  "classifier.batch_size=16", "seeds.rise_masks=40", "seeds.rise_batch=40"]


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 2 mm phantom cases (two with tumour), built once per test session."""
    from WeakSegLib.data.phantom import build_phantom_cohort

    root = tmp_path_factory.mktemp("phantom") / "cohort"
    build_phantom_cohort(root, cases=3, seed=5, shape_scale=0.5, show_progress=False)
    return root


#: TINY_OVERRIDES plus a few epochs for every later stage: the whole pipeline in ~30 s on 2 cores.
TINY_RUN_OVERRIDES = TINY_OVERRIDES + ["gan.epochs=2", "converter.epochs=2",
                                       "segmenter.epochs=2", "segmenter.min_updates=0",
                                       "selftrain.epochs=2"]


@pytest.fixture(scope="session")
def tiny_flair_t1_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny phantom with only FLAIR and T1 (+ seg): the channels of the real sample, so a
    bundle trained on it can segment the real cases too."""
    from WeakSegLib.data.phantom import build_phantom_cohort

    root = tmp_path_factory.mktemp("phantom_ft1") / "cohort"
    build_phantom_cohort(root, cases=3, seed=5, shape_scale=0.5, show_progress=False)
    for path in [*root.glob("*/*_t1ce.nii.gz"), *root.glob("*/*_t2.nii.gz")]:
        path.unlink()
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_flair_t1_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model bundle with every stage done, trained once per session on the tiny phantom."""
    from WeakSegLib.config import apply_overrides, get_profile
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.pipeline import train

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    train(discover_cohort(tiny_flair_t1_phantom), run_dir,
          apply_overrides(get_profile("fast"), TINY_RUN_OVERRIDES), device="cpu",
          show_progress=False)
    return run_dir

"""torchrun with 2 ranks (gloo on the CPU) shards RISE yet gives the seeds of a 1-rank run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_OVERRIDES

pytestmark = pytest.mark.slow


def _cli(*args: str) -> list[str]:
    # float32 RISE: in bfloat16 a forward's rounding depends on how many slices share its
    # batch, and two ranks batch differently; what is tested here is the sharding
    sets = [a for o in (*TINY_OVERRIDES, "seeds.rise_bf16=false") for a in ("--set", o)]
    return [*args, "--device", "cpu", "--quiet", *sets]


def test_two_rank_seeds_equal_one_rank_seeds(tiny_phantom: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["train", "--data", str(tiny_phantom)]
    subprocess.run([sys.executable, "-m", "WeakSegLib.cli",
                    *_cli(*base, "--out", str(one), "--stages", "classifier")],
                   check=True, env=env, timeout=600, capture_output=True)
    shutil.copytree(one, two)                   # the same classifier weights in both runs
    subprocess.run([sys.executable, "-m", "WeakSegLib.cli",
                    *_cli(*base, "--out", str(one), "--stages", "seeds", "--resume")],
                   check=True, env=env, timeout=600, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "WeakSegLib.cli"]
    result = subprocess.run([*torchrun, *_cli(*base, "--out", str(two), "--stages", "seeds",
                                              "--resume")],
                            env=env, timeout=600, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(p.name for p in (one / "seeds").glob("*.npz"))
    assert files and files == sorted(p.name for p in (two / "seeds").glob("*.npz"))
    for name in files:
        with np.load(one / "seeds" / name) as a, np.load(two / "seeds" / name) as b:
            np.testing.assert_allclose(a["saliency"].astype(np.float32),
                                       b["saliency"].astype(np.float32), atol=2e-3)
            for key in ("positive", "negative"):
                differ = (a[key] != b[key]).mean()
                assert differ <= 1e-3, f"{name} {key}: {differ:.2%} of pixels differ"

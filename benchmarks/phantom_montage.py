"""Montage comparing a phantom case with a real BraTS 2018 case, to judge the phantom by eye.

Builds one phantom case (with a tumour) in a temporary folder through the public API, reads it
back from disk like any cohort, and saves a PNG: rows phantom FLAIR, T1, T1ce, T2, seg overlay,
then real FLAIR, T1, seg overlay; columns three axial levels through each tumour.

    .venv/bin/python benchmarks/phantom_montage.py --out benchmarks/results/phantom_vs_real.png
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from WeakSegLib.data.phantom import build_phantom_cohort  # noqa: E402

DEFAULT_REAL = REPO / ".." / "shared" / "data" / "brats2018-sample" / "Brats18_CBICA_AAB_1"


def read_case(case_dir: Path) -> dict[str, np.ndarray]:
    """Every ``*_<key>.nii.gz`` of a BraTS-style folder as (z, y, x) arrays."""
    import SimpleITK as sitk

    out = {}
    for key in ("flair", "t1", "t1ce", "t2", "seg"):
        found = sorted(case_dir.glob(f"*_{key}.nii.gz"))
        if found:
            out[key] = sitk.GetArrayFromImage(sitk.ReadImage(str(found[0])))
    return out


def tumour_levels(seg: np.ndarray) -> list[int]:
    """Three axial slices at the 20th, 50th and 80th percentile of the tumour's voxels."""
    z = np.nonzero(seg > 0)[0]
    if z.size == 0:
        mid = seg.shape[0] // 2
        return [mid - 20, mid, mid + 20]
    return [int(np.percentile(z, p)) for p in (20, 50, 80)]


def inplane_box(volume: np.ndarray, margin: int = 6) -> tuple[slice, slice]:
    """Square in-plane crop around the brain (non-zero voxels), so panels show the brain large."""
    yx = np.nonzero((volume > 0).any(axis=0))
    lo = [max(0, int(a.min()) - margin) for a in yx]
    hi = [min(n, int(a.max()) + margin + 1) for a, n in zip(yx, volume.shape[1:])]
    side = max(h - l for l, h in zip(lo, hi))
    box = []
    for l, h, n in zip(lo, hi, volume.shape[1:]):
        start = max(0, min(n - side, (l + h - side) // 2))
        box.append(slice(start, start + side))
    return tuple(box)


def _window(volume: np.ndarray) -> tuple[float, float]:
    brain = volume[volume > 0]
    return 0.0, float(np.percentile(brain, 99.5)) if brain.size else 1.0


def draw(ax_row, volume: np.ndarray, levels: list[int], box: tuple[slice, slice], title: str,
         seg: np.ndarray | None = None) -> None:
    vmin, vmax = _window(volume)
    for ax, z in zip(ax_row, levels):
        ax.imshow(volume[z][box], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        if seg is not None:
            mask = np.ma.masked_where(seg[z][box] == 0, seg[z][box])
            ax.imshow(mask, cmap="autumn", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}  z={z}", fontsize=9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "phantom_vs_real.png")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL,
                        help="real BraTS case folder (flair, t1, seg)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real_dir = args.real if args.real.is_absolute() else (REPO / args.real)
    real = read_case(real_dir.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        case_dir = build_phantom_cohort(Path(tmp), 1, args.seed, show_progress=False)[0]
        seconds = time.perf_counter() - start
        phantom = read_case(case_dir)

    keys = ("flair", "t1", "t1ce", "t2")
    rows = [(phantom, key, f"phantom {key.upper()}", False) for key in keys]
    rows.append((phantom, "flair", "phantom FLAIR + seg", True))
    rows += [(real, key, f"real {key.upper()}", False) for key in keys if key in real]
    if "seg" in real:
        rows.append((real, "flair", "real FLAIR + seg", True))

    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3.1 * len(rows)))
    for ax_row, (case, key, title, overlay) in zip(axes, rows):
        levels = tumour_levels(case["seg"])
        box = inplane_box(case["flair"])
        draw(ax_row, case[key], levels, box, title, case["seg"] if overlay else None)
    fig.suptitle(f"Phantom (seed {args.seed}, built in {seconds:.1f} s on {platform.node()}, "
                 f"{platform.processor() or platform.machine()}) vs real {real_dir.name}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} (phantom built in {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

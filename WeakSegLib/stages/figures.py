"""PNG figures a person looks at: training curves and seed-000-style slice panels."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict[str, float]], keys: Sequence[str], path: Path,
                 title: str) -> Path:
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    axes = np.atleast_1d(axes)
    epochs = [h["epoch"] for h in history]
    for ax, key in zip(axes, keys):
        ax.plot(epochs, [h.get(key, np.nan) for h in history], marker="o")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figure_picks(labels: np.ndarray, rows: int) -> np.ndarray:
    """Up to ``rows`` tumour-labelled slices spread over the set (any slices if none)."""
    pool = np.flatnonzero(np.asarray(labels) == 1)
    pool = pool if len(pool) else np.arange(len(labels))
    return pool[np.linspace(0, len(pool) - 1, min(rows, len(pool))).astype(int)]


def seed_codes(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """One array for a seeds panel: 0 none, 1 negative, 2 positive."""
    return np.where(positive, 2, np.where(negative, 1, 0)).astype(np.uint8)


def slice_panels(rows: list[dict[str, np.ndarray]], columns: Sequence[tuple[str, str]],
                 path: Path, title: str, row_titles: Sequence[str] = ()) -> Path:
    """A grid: one row per slice, one column per (key, kind); kind is 'image', 'map' or 'seeds'
    (``row[key]`` coded 1 = negative seed, blue, 2 = positive seed, red, over ``row['image']``).
    A ``row['truth']`` mask is outlined in green on image and seed panels."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, (key, kind) in enumerate(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            image = row["image"]
            if kind == "image":
                ax.imshow(row[key], cmap="gray", vmin=0, vmax=1)
            elif kind == "map":
                ax.imshow(row[key], cmap="inferno", vmin=0, vmax=1)
            elif kind == "seeds":
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
                overlay = np.zeros((*image.shape, 4))
                overlay[row[key] == 1] = (0.1, 0.3, 1.0, 0.35)
                overlay[row[key] == 2] = (1.0, 0.1, 0.1, 0.6)
                ax.imshow(overlay)
            if "truth" in row and kind in ("image", "seeds") and row["truth"].any():
                ax.contour(row["truth"], levels=[0.5], colors="lime", linewidths=0.7)
            if r == 0:
                ax.set_title(key, fontsize=9)
            if c == 0 and r < len(row_titles):
                ax.set_ylabel(row_titles[r], fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

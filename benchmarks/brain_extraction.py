"""Brain extraction measured (issue 14): deepbet vs the classical Otsu baseline.

tcga-lgg (16 FLAIR with skull): fraction of the tumour mask inside the brain mask, brain volume
(voxels × written spacing: tcga-lgg's 1 mm is not physical, so its mL are not either), runtime
per case, and the flair_threshold baseline's volume Dice inside each brain mask (and inside
today's "non-zero" brain). brats2018-multimodal (skull-stripped): each method run on the FLAIR
anyway (``--brain-mask on``) and compared with the BraTS brain (non-zero voxels), Dice. Also
whether ``--brain-mask auto`` recognises each scan correctly. Overlays of a few mid slices.

    PYTHONPATH=. python benchmarks/brain_extraction.py [--brats 5] [--threads 1]

Writes benchmarks/results/brain_extraction.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results"
METHODS = ("deepbet", "otsu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brats", type=int, default=5, help="brats2018-multimodal cases")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from WeakSegLib.baselines import flair_threshold
    from WeakSegLib.config import get_profile
    from WeakSegLib.data.brain_mask import extract_brain, is_skull_stripped
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.data.reader import read_case
    from WeakSegLib.evaluation.metrics import volume_dice
    from WeakSegLib.progress import track

    cfg = get_profile("fast")
    tcga = discover_cohort(DATA / "tcga-lgg")
    brats = discover_cohort(DATA / "brats2018-multimodal")
    results: dict = {"tcga-lgg": {}, "brats2018-multimodal": {},
                     "machine": f"{platform.node()} {platform.processor()}, torch "
                     f"{torch.__version__} CPU, {args.threads} thread(s)"}
    overlays = []
    for number, files in enumerate(track(tcga.cases, "tcga-lgg")):
        case = read_case(files)
        flair = case.images["flair"]
        image = case.geometry.image_from_array(flair)
        voxel_ml = float(np.prod(case.geometry.spacing)) / 1000.0
        row = {"auto_says_skull_stripped": bool(is_skull_stripped(
            flair, cfg.data.skull_stripped_background))}
        masks = {}
        for method in METHODS:
            started = time.perf_counter()
            mask = extract_brain(image, method, "cpu")
            seconds = time.perf_counter() - started
            masks[method] = mask
            case.brain_mask = mask
            row[method] = {
                "seconds": round(seconds, 2),
                "tumour_inside": round(float((mask & (case.mask > 0)).sum()
                                             / max(1, (case.mask > 0).sum())), 4),
                "brain_ml_written_spacing": round(float(mask.sum()) * voxel_ml, 1),
                "flair_threshold_dice": round(volume_dice(flair_threshold(case, cfg.baseline),
                                                          case.mask), 4)}
        case.brain_mask = None          # today's brain: non-zero voxels
        row["nonzero"] = {"flair_threshold_dice": round(
            volume_dice(flair_threshold(case, cfg.baseline), case.mask), 4)}
        results["tcga-lgg"][files.name] = row
        if number % 4 == 0:
            overlays.append((files.name, flair, case.mask, masks))
    for files in track(brats.cases[:args.brats], "brats"):
        case = read_case(files)
        flair = case.images["flair"]
        truth = case.brain
        row = {"auto_says_skull_stripped": bool(is_skull_stripped(
            flair, cfg.data.skull_stripped_background))}
        masks = {}
        for method in METHODS:
            started = time.perf_counter()
            mask = extract_brain(case.geometry.image_from_array(flair), method, "cpu")
            masks[method] = mask
            row[method] = {"seconds": round(time.perf_counter() - started, 2),
                           "dice_vs_brats_brain": round(volume_dice(mask, truth), 4),
                           "tumour_inside": round(float((mask & (case.mask > 0)).sum()
                                                        / max(1, (case.mask > 0).sum())), 4)}
        results["brats2018-multimodal"][files.name] = row
        if len(overlays) < 6:
            overlays.append((files.name, flair, case.mask, masks))
    results["summary"] = summarise(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "brain_extraction.json").write_text(json.dumps(results, indent=2))
    (OUT / "brain_extraction.md").write_text(markdown(results))
    figure(overlays, OUT / "brain_extraction.png")
    print(markdown(results))


def _mean(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"mean": round(float(a.mean()), 4), "min": round(float(a.min()), 4),
            "max": round(float(a.max()), 4)}


def summarise(results: dict) -> dict:
    tcga, brats = results["tcga-lgg"].values(), results["brats2018-multimodal"].values()
    out: dict = {"tcga-lgg": {}, "brats2018-multimodal": {}}
    for method in METHODS:
        out["tcga-lgg"][method] = {k: _mean([r[method][k] for r in tcga]) for k in (
            "tumour_inside", "brain_ml_written_spacing", "seconds", "flair_threshold_dice")}
        out["brats2018-multimodal"][method] = {k: _mean([r[method][k] for r in brats]) for k in (
            "dice_vs_brats_brain", "tumour_inside", "seconds")}
    out["tcga-lgg"]["nonzero"] = {"flair_threshold_dice": _mean(
        [r["nonzero"]["flair_threshold_dice"] for r in tcga])}
    out["auto_detection"] = {
        "tcga-lgg_called_skull_stripped": sum(r["auto_says_skull_stripped"] for r in tcga),
        "brats_called_skull_stripped": sum(r["auto_says_skull_stripped"] for r in brats),
        "n_tcga": len(results["tcga-lgg"]), "n_brats": len(results["brats2018-multimodal"])}
    return out


def markdown(results: dict) -> str:
    lines = ["# Brain extraction: deepbet vs classical Otsu baseline", "",
             f"Machine: {results['machine']}. `PYTHONPATH=. python benchmarks/brain_extraction.py`",
             "", "## tcga-lgg (FLAIR with skull, 8-bit; spacing written 1 mm, not physical)", "",
             "| case | tumour inside deepbet | tumour inside otsu | brain (written mL) deepbet | "
             "otsu | s deepbet | s otsu | flair_threshold Dice: deepbet brain | otsu brain | "
             "non-zero (today) |", "|" + "---|" * 10]
    for name, r in results["tcga-lgg"].items():
        d, o = r["deepbet"], r["otsu"]
        lines.append(f"| {name} | {d['tumour_inside']:.3f} | {o['tumour_inside']:.3f} | "
                     f"{d['brain_ml_written_spacing']:.0f} | {o['brain_ml_written_spacing']:.0f} | "
                     f"{d['seconds']:.1f} | {o['seconds']:.1f} | {d['flair_threshold_dice']:.3f} | "
                     f"{o['flair_threshold_dice']:.3f} | {r['nonzero']['flair_threshold_dice']:.3f} |")
    s = results["summary"]["tcga-lgg"]
    lines.append(f"| **mean** | {s['deepbet']['tumour_inside']['mean']:.3f} | "
                 f"{s['otsu']['tumour_inside']['mean']:.3f} | "
                 f"{s['deepbet']['brain_ml_written_spacing']['mean']:.0f} | "
                 f"{s['otsu']['brain_ml_written_spacing']['mean']:.0f} | "
                 f"{s['deepbet']['seconds']['mean']:.1f} | {s['otsu']['seconds']['mean']:.1f} | "
                 f"{s['deepbet']['flair_threshold_dice']['mean']:.3f} | "
                 f"{s['otsu']['flair_threshold_dice']['mean']:.3f} | "
                 f"{s['nonzero']['flair_threshold_dice']['mean']:.3f} |")
    lines += ["", "## brats2018-multimodal (skull-stripped; each method run anyway, "
              "`--brain-mask on`)", "",
              "| case | Dice vs BraTS brain: deepbet | otsu | tumour inside deepbet | otsu | "
              "s deepbet |", "|" + "---|" * 6]
    for name, r in results["brats2018-multimodal"].items():
        d, o = r["deepbet"], r["otsu"]
        lines.append(f"| {name} | {d['dice_vs_brats_brain']:.3f} | {o['dice_vs_brats_brain']:.3f} "
                     f"| {d['tumour_inside']:.3f} | {o['tumour_inside']:.3f} | {d['seconds']:.1f} |")
    a = results["summary"]["auto_detection"]
    lines += ["", f"`--brain-mask auto` called {a['tcga-lgg_called_skull_stripped']} of "
              f"{a['n_tcga']} tcga-lgg scans and {a['brats_called_skull_stripped']} of "
              f"{a['n_brats']} BraTS scans skull-stripped.", ""]
    return "\n".join(lines)


def figure(overlays: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, (len(overlays) + 1) // 2, figsize=(4 * ((len(overlays) + 1) // 2), 8))
    for ax, (name, flair, tumour, masks) in zip(axes.ravel(), overlays):
        z = int(np.argmax(tumour.sum(axis=(1, 2)))) if tumour.any() else flair.shape[0] // 2
        ax.imshow(flair[z], cmap="gray")
        for method, colour in (("deepbet", "lime"), ("otsu", "red")):
            if masks[method][z].any():
                ax.contour(masks[method][z], levels=[0.5], colors=colour, linewidths=1)
        if tumour[z].any():
            ax.contour(tumour[z], levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_title(f"{name[:22]} z={z}", fontsize=8)
        ax.axis("off")
    for ax in axes.ravel()[len(overlays):]:
        ax.axis("off")
    fig.suptitle("brain mask: deepbet (green), Otsu baseline (red); tumour (yellow)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()

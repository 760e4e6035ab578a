"""A self-contained HTML report of an evaluation (``metrics.json``) with PNG figures.

``write_html_report(metrics, out_dir)`` writes ``out_dir/report.html`` and ``out_dir/figures/*.png``
(linked relatively, so the folder can be moved or zipped). Sections appear only when their data
are present: summary tables per metric, per-case tables, a per-case ``volume_dice`` bar chart,
seed-000-style Tables 4 (pipeline steps × cohorts), 5 (ours beside the baselines) and 6
(difference-score filtering) with their curves, classifier metrics, timings and example montages.
Missing or NaN values show as "n/a"; every text is HTML-escaped.
"""
from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..config import get_profile
from ..stages.figures import pyplot, slice_panels

METRICS: tuple[tuple[str, str, int], ...] = (
    ("slice_dice", "Slice Dice", 3),
    ("tumour_slice_dice", "Tumour-slice Dice", 3),
    ("volume_dice", "Volume Dice", 3),
    ("hd95_mm", "HD95 (mm)", 2),
)
LOWER_IS_BETTER = {"hd95_mm"}
TABLE_METRICS = ("tumour_slice_dice", "volume_dice")     # the columns of Tables 4 and 5
LABELS = {
    "initial": "Initial",
    "under": "Refined (undersegmenting)",
    "over": "Refined (oversegmenting)",
    "combined": "Combined",
    "combined_score_weight": "Combined (score-weighted)",
    "seed_only": "Baseline: seed only",
    "l1_baseline": "Baseline: L1 distance (FLAIR vs healthy variant)",
    "flair_threshold": "Baseline: FLAIR threshold",
    "supervised": "Fully supervised (upper bound)",
}
RANK_ORDER = {"best": 0, "median": 1, "worst": 2}
#: seed 000's advised difference-score cut-off (config inference.difference_threshold)
DEFAULT_THRESHOLD = get_profile("fast").inference.difference_threshold
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.3em 0}p.note{color:#555;font-size:.9em}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}nav a{margin-right:1em}
""".strip()


class _Raw(str):
    """Markup already built (and escaped) here: ``_cell`` passes it through unescaped."""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any) -> float:
    """A float, NaN for anything missing or not a number."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def _fmt_sd(mean: Any, sd: Any, digits: int = 3) -> str:
    text = _fmt(mean, digits)
    return text if text == "n/a" or not math.isfinite(_num(sd)) else f"{text} ± {_fmt(sd, digits)}"


def _pct(fraction: Any) -> str:
    v = _num(fraction)
    return "n/a" if not math.isfinite(v) else f"{100 * v:.2f}"


def _value(value: Any, digits: int) -> str:
    """A number formatted (NaN/None → n/a); anything else as text."""
    if value is None or isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return _fmt(value, digits)
    return str(value)


def _label(method: str) -> str:
    return LABELS.get(method, method)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "method"


# ---------------------------------------------------------------------------------------------
# HTML helpers


def _cell(content: Any, tag: str = "td", attrs: str = "") -> str:
    text = content if isinstance(content, _Raw) else _e(content)
    return f"<{tag}{' ' + attrs if attrs else ''}>{text}</{tag}>"


def _table(header: Sequence[Any] | Sequence[Sequence[Any]], rows: Iterable[Sequence[Any]],
           caption: str | None = None, numeric_from: int = 1) -> str:
    """``header`` is one row of cells or a list of rows (lists); a header cell may be a
    ``(text, colspan)`` tuple. Cells are escaped unless they are ``_Raw``."""
    header_rows = header if header and isinstance(header[0], list) else [header]
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead>")
    for hrow in header_rows:
        cells = []
        for item in hrow:
            if isinstance(item, tuple):
                cells.append(_cell(item[0], "th", f'colspan="{int(item[1])}"'))
            else:
                cells.append(_cell(item, "th"))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(
            _cell(c, "td", 'class="num"' if i >= numeric_from else "") for i, c in enumerate(row))
            + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _img(path: Path, out_dir: Path, alt: str) -> str:
    rel = path.relative_to(out_dir).as_posix()
    return f'<p><img src="{_e(rel)}" alt="{_e(alt)}"></p>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


# ---------------------------------------------------------------------------------------------
# Statistics


def _ordered_methods(metrics: dict) -> list[str]:
    """Pipeline steps first (in their order), then baselines, then the rest alphabetically."""
    methods = list((metrics.get("methods") or {}).keys())
    first = [m for m in list(metrics.get("steps") or []) + list(metrics.get("baselines") or [])
             if m in methods]
    seen = set()
    first = [m for m in first if not (m in seen or seen.add(m))]
    return first + sorted((m for m in methods if m not in seen), key=str)


def _stats(result: dict, metric: str, cases: Sequence[str] | None = None) -> tuple[float, float, int]:
    """(mean, SD, n) of ``metric`` over ``cases`` (all of ``per_case`` when None), NaN ignored;
    falls back to the method's own summary when it has no per-case values and no cohort is asked."""
    per_case = result.get("per_case") or {}
    if cases is None and not per_case:
        n = _num(result.get("n_cases"))
        return (_num(result.get(metric)), _num(result.get(f"{metric}_sd")),
                int(n) if math.isfinite(n) else 0)
    names = list(per_case) if cases is None else [c for c in cases if c in per_case]
    values = np.array([_num((per_case[c] or {}).get(metric)) for c in names], float)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std()), int(finite.size)


def _best(values: Sequence[float], lower_is_better: bool = False) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return math.nan
    return min(finite) if lower_is_better else max(finite)


def _stat_cell(stat: tuple[float, float, int], best: float, digits: int = 3) -> Any:
    mean, sd, n = stat
    text = _fmt_sd(mean, sd, digits) + (f" (n={n})" if n else "")
    if math.isfinite(best) and math.isfinite(mean) and round(mean, digits) == round(best, digits):
        return _Raw(f"<b>{_e(text)}</b>")
    return text


# ---------------------------------------------------------------------------------------------
# Sections


def _summary_section(metrics: dict, methods: list[str]) -> str:
    results = metrics["methods"]
    parts = ['<h2 id="summary">Summary per metric</h2>',
             _note("Mean ± SD over cases (undefined values ignored); n = number of cases with a value. "
                   "Best value per table in bold.")]
    for key, label, digits in METRICS:
        stats = [_stats(results[m] or {}, key) for m in methods]
        if all(not math.isfinite(s[0]) for s in stats) and not any(
                key in (results[m] or {}) for m in methods):
            continue
        best = _best([s[0] for s in stats], key in LOWER_IS_BETTER)
        rows = []
        for m, (mean, sd, n) in zip(methods, stats):
            text = _fmt_sd(mean, sd, digits)
            cell = _Raw(f"<b>{_e(text)}</b>") if (math.isfinite(best) and math.isfinite(mean)
                                                  and round(mean, digits) == round(best, digits)) else text
            rows.append([m, _label(m) if _label(m) != m else "", cell, n])
        parts.append(_table(["method", "description", "mean ± SD", "n"], rows, caption=label,
                            numeric_from=2))
    missing = [(m, (results[m] or {}).get("missing_cases") or []) for m in methods]
    missing = [(m, cases) for m, cases in missing if cases]
    if missing:
        parts.append(_note("No prediction for: " + "; ".join(
            f"{m}: {', '.join(map(str, cases))}" for m, cases in missing)))
    return "\n".join(parts)


def _per_case_section(metrics: dict, methods: list[str]) -> str:
    results = metrics["methods"]
    cases = sorted({str(c) for m in methods for c in ((results[m] or {}).get("per_case") or {})})
    if not cases:
        return ""
    parts = ['<h2 id="per-case">Per-case results</h2>']
    for key, label, digits in METRICS:
        if not any(key in (v or {}) for m in methods
                   for v in ((results[m] or {}).get("per_case") or {}).values()):
            continue
        rows = []
        for case in cases:
            row: list[Any] = [case]
            for m in methods:
                values = ((results[m] or {}).get("per_case") or {}).get(case)
                row.append(_fmt((values or {}).get(key), digits) if values is not None else "—")
            rows.append(row)
        parts.append(_table(["case"] + methods, rows, caption=f"{label} per case"))
    parts.append(_note("— : no prediction for that case; n/a : the metric is undefined (NaN)."))
    return "\n".join(parts)


def _cohort_columns(metrics: dict) -> list[tuple[str, list[str] | None]]:
    cohorts = metrics.get("cohorts") or {}
    cols = [(str(name), [str(c) for c in (cases or [])]) for name, cases in cohorts.items()]
    return cols or [("all cases", None)]


def _cohort_table(metrics: dict, rows_methods: list[tuple[str, str]], caption: str) -> str:
    results = metrics["methods"]
    cohorts = _cohort_columns(metrics)
    header = [["method"] + [(name, len(TABLE_METRICS)) for name, _ in cohorts],
              [""] + [dict((k, lbl) for k, lbl, _ in METRICS)[k] for _ in cohorts
                      for k in TABLE_METRICS]]
    grid = [[_stats(results[m] or {}, key, cases) for _, cases in cohorts for key in TABLE_METRICS]
            for m, _ in rows_methods]
    bests = [_best([g[j][0] for g in grid]) for j in range(len(cohorts) * len(TABLE_METRICS))]
    rows = [[label] + [_stat_cell(s, b) for s, b in zip(g, bests)]
            for (_, label), g in zip(rows_methods, grid)]
    return _table(header, rows, caption=caption)


def _table4_section(metrics: dict) -> str:
    results = metrics["methods"]
    steps = [str(s) for s in (metrics.get("steps") or [])]
    present = [s for s in steps if s in results]
    if not present:
        return ""
    parts = ['<h2 id="table4">Table 4 — Dice of each pipeline step\'s model per cohort</h2>',
             _table_note(metrics)]
    parts.append(_cohort_table(metrics, [(s, f"{_label(s)} [{s}]") for s in present],
                               "Pipeline steps × cohorts"))
    absent = [s for s in steps if s not in results]
    if absent:
        parts.append(_note("Steps not evaluated: " + ", ".join(absent)))
    return "\n".join(parts)


def _ours(metrics: dict) -> str | None:
    results = metrics["methods"]
    if "combined" in results:
        return "combined"
    present = [s for s in (metrics.get("steps") or []) if s in results]
    return present[-1] if present else None


def _table5_section(metrics: dict) -> str:
    results = metrics["methods"]
    baselines = [str(b) for b in (metrics.get("baselines") or [])]
    present = [b for b in baselines if b in results]
    ours = _ours(metrics)
    if not present:
        return ""
    rows = [(b, f"{_label(b)} [{b}]") for b in present]
    if ours is not None and ours not in present:
        rows.append((ours, f"Ours: {_label(ours)} [{ours}]"))
    parts = ['<h2 id="table5">Table 5 — comparison to baselines</h2>', _table_note(metrics),
             _cohort_table(metrics, rows, "Baselines beside ours")]
    absent = [b for b in baselines if b not in results]
    if absent:
        parts.append(_note("Baselines not evaluated: " + ", ".join(absent)))
    if ours is None:
        parts.append(_note("Our combined model was not evaluated."))
    return "\n".join(parts)


def _table_note(metrics: dict) -> str:
    if metrics.get("cohorts"):
        return _note("Mean ± SD over the cases of each cohort (n cases); best per column in bold.")
    return _note("No cohorts given: means over all evaluated cases; best per column in bold.")


def _filter_rows(rows: Any) -> list[dict]:
    rows = [r for r in (rows or []) if isinstance(r, dict)]
    return sorted(rows, key=lambda r: (not math.isfinite(_num(r.get("threshold"))),
                                       _num(r.get("threshold"))))


FILTER_COLUMNS = ("difference-score threshold", "kept tumour-slice Dice", "kept slice Dice",
                  "% images removed", "removed tumour-slice Dice")


def _filter_cells(r: dict) -> list[str]:
    return [_fmt(r.get("threshold"), 2), _fmt(r.get("kept_tumour_slice_dice")),
            _fmt(r.get("kept_slice_dice")), _pct(r.get("removed_fraction")),
            _fmt(r.get("removed_tumour_slice_dice"))]


def _filtering_order(metrics: dict) -> list[str]:
    filtering = metrics.get("filtering") or {}
    order = _ordered_methods({"methods": dict.fromkeys(filtering), "steps": metrics.get("steps"),
                              "baselines": metrics.get("baselines")})
    ours = "combined" if "combined" in filtering else None
    return ([ours] if ours else []) + [m for m in order if m != ours]


def _table6_section(metrics: dict, figures: list[str]) -> str:
    filtering = metrics.get("filtering") or {}
    methods = [m for m in _filtering_order(metrics) if _filter_rows(filtering.get(m))]
    if not methods:
        return ""
    parts = ['<h2 id="table6">Table 6 — difference-score filtering</h2>',
             _note("A segmentation is removed (flagged) when its difference score "
                   "D = mean |FLAIR − healthy variant| over the segmented pixels is below the "
                   "threshold; slices with an empty segmentation are never removed. The last column "
                   "(seed 000 appendix) is the Dice of the removed segmentations.")]
    for m in methods:
        parts.append(_table(FILTER_COLUMNS, [_filter_cells(r) for r in _filter_rows(filtering[m])],
                            caption=f"{_label(m)} [{m}]", numeric_from=0))
    parts.extend(figures)
    return "\n".join(parts)


def _classifier_section(metrics: dict) -> str:
    clf = metrics.get("classifier")
    if not isinstance(clf, dict) or not clf:
        return ""
    known = [("auc", "AUC", 3), ("sensitivity", "sensitivity (at 0.5)", 3),
             ("specificity", "specificity (at 0.5)", 3)]
    rows = [[label, _fmt(clf.get(k), d)] for k, label, d in known if k in clf]
    if "n_slices" in clf:
        rows.append(["slices", _fmt(clf.get("n_slices"), 0)])
    for k, v in clf.items():
        if k not in {"auc", "sensitivity", "specificity", "n_slices"} and not isinstance(v, (dict, list)):
            rows.append([k, _value(v, 3)])
    return '<h2 id="classifier">Slice classifier</h2>\n' + _table(["metric", "value"], rows)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(_flatten(v, key + " / "))
        else:
            out.append((key, v))
    return out


def _review_section(metrics: dict, figure: str) -> str:
    """How well each mask-free score finds the slices to correct (DESIGN.md "Review
    priority"): AUROC for "slice Dice < 0.5" and the review curve's values."""
    review = metrics.get("review")
    if not isinstance(review, dict) or not review.get("curves"):
        return ""
    percents = review["percents"]
    header = ["score", "AUROC (Dice < 0.5)"] + [f"volume Dice, {k} % corrected" for k in percents] \
        + ["area"]
    rows = [[name, _fmt(review["auroc"].get(name)), *[_fmt(v) for v in curve],
             _fmt(review["area"].get(name))] for name, curve in review["curves"].items()]
    note = _note(f"Method {review.get('method')}: {review.get('n_judged_slices')} slices with "
                 f"truth or prediction, {review.get('n_bad_slices')} of them bad (2D Dice < 0.5), "
                 f"{review.get('n_cases')} cases. A perfect reviewer replaces the top k % of the "
                 "segmented slices (ranked by the score) with the truth; random and oracle orders "
                 "beside.")
    return '<h2 id="review">Review priority</h2>\n' + note + _table(header, rows) + figure


def _review_curves(metrics: dict, path: Path) -> Path | None:
    review = metrics.get("review")
    if not isinstance(review, dict) or not review.get("curves"):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, curve in review["curves"].items():
        style = {"oracle": "k--", "random": "k:"}.get(name, "-o")
        auc = review["auroc"].get(name)
        ax.plot(review["percents"], curve, style, markersize=3,
                label=name if auc is None else f"{name} (AUROC {auc:.2f})")
    ax.set_xlabel("% of segmented slices corrected, in score order")
    ax.set_ylabel("mean volume Dice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _timing_section(metrics: dict) -> str:
    timing = metrics.get("timing")
    if not isinstance(timing, dict) or not timing:
        return ""
    rows = [[key, _value(value, 1)] for key, value in _flatten(timing)]
    return '<h2 id="timing">Timing</h2>\n' + _table(["step", "seconds"], rows)


# ---------------------------------------------------------------------------------------------
# Figures


def _volume_dice_bars(metrics: dict, methods: list[str], path: Path) -> Path | None:
    results = metrics["methods"]
    cases = sorted({str(c) for m in methods for c in ((results[m] or {}).get("per_case") or {})})
    if not cases:
        return None
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = cases + ["mean"]
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(groups) * len(methods) + 2.5), 3.6))
    x = np.arange(len(groups))
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    for i, m in enumerate(methods):
        per_case = (results[m] or {}).get("per_case") or {}
        values = [_num((per_case.get(c) or {}).get("volume_dice")) for c in cases]
        values.append(_stats(results[m] or {}, "volume_dice")[0])
        ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(values, nan=0.0), width,
               label=m, color=cmap(i % cmap.N))
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("case")
    ax.set_ylabel("volume Dice")
    ax.set_ylim(0, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Volume Dice per case and method (missing / NaN drawn as 0)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _filtering_curves(metrics: dict, figures_dir: Path) -> list[Path]:
    filtering = metrics.get("filtering") or {}
    methods = [m for m in _filtering_order(metrics) if _filter_rows(filtering.get(m))]
    if not methods:
        return []
    plt = pyplot()
    figures_dir.mkdir(parents=True, exist_ok=True)
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")

    def series(m: str, key: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in _filter_rows(filtering[m]) if math.isfinite(_num(r.get("threshold")))]
        return (np.array([_num(r["threshold"]) for r in rows]),
                np.array([_num(r.get(key)) * scale for r in rows]))

    dice_path = figures_dir / "filtering_dice.png"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (key, label) in zip(axes, (("kept_tumour_slice_dice", "kept tumour-slice Dice"),
                                       ("kept_slice_dice", "kept slice Dice"))):
        for i, m in enumerate(methods):
            ax.plot(*series(m, key), marker="o", ms=3, label=m, color=cmap(i % cmap.N))
        ax.axvline(DEFAULT_THRESHOLD, color="gray", ls="--", lw=0.8,
                   label=f"default {DEFAULT_THRESHOLD:g}")
        ax.set_xlabel("difference-score threshold")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs threshold")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(dice_path, dpi=100)
    plt.close(fig)

    removed_path = figures_dir / "filtering_removed.png"
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, m in enumerate(methods):
        ax.plot(*series(m, "removed_fraction", 100.0), marker="o", ms=3, label=m,
                color=cmap(i % cmap.N))
    ax.axvline(DEFAULT_THRESHOLD, color="gray", ls="--", lw=0.8,
                   label=f"default {DEFAULT_THRESHOLD:g}")
    ax.set_xlabel("difference-score threshold")
    ax.set_ylabel("% of images removed")
    ax.set_title("Images removed vs threshold")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(removed_path, dpi=100)
    plt.close(fig)
    return [dice_path, removed_path]


def _as2d(value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=float)
    array = np.squeeze(array)
    if array.ndim != 2 or (shape is not None and array.shape != shape):
        return None
    return np.nan_to_num(array, nan=0.0)


def _montage(method: str, examples: list[dict], path: Path) -> tuple[Path | None, list[str]]:
    """One row per example (best, median, worst), columns FLAIR with truth (green outline) and
    prediction (red) overlaid, truth, prediction, healthy variant, difference map."""
    rows, titles, skipped = [], [], []
    for ex in sorted((e for e in examples if isinstance(e, dict)),
                     key=lambda e: RANK_ORDER.get(str(e.get("rank")), 9)):
        image = _as2d(ex.get("image"))
        if image is None:
            skipped.append(f"{ex.get('rank', '?')} ({ex.get('case', '?')}): no 2D image")
            continue
        image = np.clip(image, 0, 1)
        truth = _as2d(ex.get("truth"), image.shape)
        pred = _as2d(ex.get("prediction"), image.shape)
        variant = _as2d(ex.get("variant"), image.shape)
        diff = _as2d(ex.get("difference"), image.shape)
        if diff is None and variant is not None:
            diff = np.abs(image - np.clip(variant, 0, 1))
        truth = np.zeros_like(image) if truth is None else (truth > 0.5).astype(float)
        pred = np.zeros_like(image) if pred is None else (pred > 0.5).astype(float)
        rows.append({"image": image, "FLAIR": (2 * pred).astype(np.uint8), "truth": truth,
                     "prediction": pred, "_variant": variant, "_diff": diff})
        dice = _num(ex.get("dice"))
        titles.append(f"{ex.get('rank', '')}\n{ex.get('case', '?')} z={ex.get('slice', '?')}\n"
                      f"Dice {dice:.3f}" if math.isfinite(dice) else
                      f"{ex.get('rank', '')}\n{ex.get('case', '?')} z={ex.get('slice', '?')}")
    if not rows:
        return None, skipped
    columns = [("FLAIR", "seeds"), ("truth", "image"), ("prediction", "image")]
    for key, src, kind in (("healthy variant", "_variant", "image"),
                           ("|FLAIR − variant|", "_diff", "map")):
        if any(r[src] is not None for r in rows):
            columns.append((key, kind))
            for r in rows:
                value = r[src] if r[src] is not None else np.zeros_like(r["image"])
                r[key] = np.clip(value, 0, 1)
    slice_panels(rows, columns, path,
                 f"{method}: truth outline green, prediction red", row_titles=titles)
    return path, skipped


# ---------------------------------------------------------------------------------------------
# Entry points


def _figure(builder, *args) -> tuple[Any, str]:
    """Run a figure builder; a failure becomes a visible note rather than a lost report."""
    try:
        return builder(*args), ""
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        return None, _note(f"Figure could not be drawn: {type(exc).__name__}: {exc}")


def write_html_report(metrics: dict, out_dir: Path, examples: dict[str, list[dict]] | None = None,
                      title: str = "WeakSeg evaluation") -> Path:
    """Write ``out_dir/report.html`` (figures in ``out_dir/figures``) and return its path."""
    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = dict(metrics or {})
    metrics["methods"] = {str(k): (v if isinstance(v, dict) else {})
                          for k, v in (metrics.get("methods") or {}).items()}
    methods = _ordered_methods(metrics)
    sections: list[tuple[str, str, str]] = []   # (anchor, nav label, html)

    if methods:
        sections.append(("summary", "Summary", _summary_section(metrics, methods)))
        bars, err = _figure(_volume_dice_bars, metrics, methods, figures_dir / "volume_dice.png")
        per_case = _per_case_section(metrics, methods)
        if bars is not None:
            per_case += "\n" + _img(bars, out_dir, "volume Dice per case and method")
        if per_case or err:
            sections.append(("per-case", "Per case", (per_case or
                             '<h2 id="per-case">Per-case results</h2>') + err))
        sections.append(("table4", "Table 4", _table4_section(metrics)))
        sections.append(("table5", "Table 5", _table5_section(metrics)))
    curves, err = _figure(_filtering_curves, metrics, figures_dir)
    figs = [_img(p, out_dir, p.stem.replace("_", " ")) for p in (curves or [])] + ([err] if err else [])
    sections.append(("table6", "Table 6", _table6_section(metrics, figs)))
    curve, err = _figure(_review_curves, metrics, figures_dir / "review_curves.png")
    review_figure = (_img(curve, out_dir, "review curves") if curve is not None else "") + err
    sections.append(("review", "Review", _review_section(metrics, review_figure)))
    sections.append(("classifier", "Classifier", _classifier_section(metrics)))
    sections.append(("timing", "Timing", _timing_section(metrics)))

    montage_parts: list[str] = []
    used: set[str] = set()
    for method, items in (examples or {}).items():
        if not items:
            continue
        name = _safe_name(f"montage_{method}")
        while name in used:
            name += "_"
        used.add(name)
        result, err = _figure(_montage, str(method), list(items), figures_dir / f"{name}.png")
        path, skipped = result if result is not None else (None, [])
        montage_parts.append(f"<h3>{_e(_label(str(method)))} [{_e(method)}]</h3>")
        if path is not None:
            montage_parts.append(_img(path, out_dir, f"examples of {method}"))
        if skipped:
            montage_parts.append(_note("Skipped: " + "; ".join(skipped)))
        montage_parts.append(err)
    if montage_parts:
        sections.append(("examples", "Examples", '<h2 id="examples">Examples (best, median, worst '
                         'slice)</h2>\n' + _note("Columns: FLAIR with the truth outlined in green "
                                                 "and the prediction in red; truth; prediction; "
                                                 "healthy variant; |FLAIR − variant| (0–1).")
                         + "\n" + "\n".join(p for p in montage_parts if p)))

    sections = [s for s in sections if s[2]]
    nav = " ".join(f'<a href="#{_e(a)}">{_e(lbl)}</a>' for a, lbl, _ in sections)
    body = "\n".join(s[2] for s in sections) or _note("No results to report.")
    if not methods:
        body = _note("No segmentation method was evaluated.") + "\n" + body
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{_e(title)}</h1>\n<nav>{nav}</nav>\n{body}\n</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def format_filtering_table(metrics: dict, method: str) -> str:
    """Plain-text Table 6 for one method (CLI): threshold, kept Dice, % removed, removed Dice."""
    rows = _filter_rows(((metrics or {}).get("filtering") or {}).get(method))
    if not rows:
        return f"no difference-score filtering results for {method}"
    widths = [max(len(h), 8) for h in FILTER_COLUMNS]
    lines = [f"difference-score filtering: {method}",
             "  ".join(h.rjust(w) for h, w in zip(FILTER_COLUMNS, widths))]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(_filter_cells(r), widths)))
    return "\n".join(lines)

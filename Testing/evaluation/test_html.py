"""The HTML evaluation report: sections, formatted numbers, escaping, valid linked PNGs."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from WeakSegLib.evaluation.html import format_filtering_table, write_html_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")
CASES = ("case_A", "case_B")


def _method(values: dict[str, tuple[float, float]]) -> dict:
    """values: metric → (case_A, case_B)."""
    per_case = {c: {m: v[i] for m, v in values.items()} for i, c in enumerate(CASES)}
    out: dict = {"n_cases": 2, "per_case": per_case, "missing_cases": []}
    for m, v in values.items():
        finite = [x for x in v if not math.isnan(x)]
        out[m] = float(np.mean(finite)) if finite else NAN
        out[f"{m}_sd"] = float(np.std(finite)) if finite else NAN
    return out


def _metrics() -> dict:
    return {
        "methods": {
            "initial": _method({"slice_dice": (0.90, 0.80), "tumour_slice_dice": (0.61, 0.55),
                                "volume_dice": (0.70, 0.60), "hd95_mm": (12.0, 20.0)}),
            "combined": _method({"slice_dice": (0.95, 0.85), "tumour_slice_dice": (0.81, 0.75),
                                 "volume_dice": (0.84, 0.78), "hd95_mm": (6.0, NAN)}),
            "seed_only": _method({"slice_dice": (0.85, 0.70), "tumour_slice_dice": (0.52, 0.48),
                                  "volume_dice": (0.55, 0.50), "hd95_mm": (30.0, 40.0)}),
        },
        "filtering": {"combined": [
            {"threshold": 0.0, "removed_fraction": 0.0, "kept_tumour_slice_dice": 0.7903,
             "kept_slice_dice": 0.9011, "removed_tumour_slice_dice": NAN},
            {"threshold": 0.2, "removed_fraction": 0.14251, "kept_tumour_slice_dice": 0.8235,
             "kept_slice_dice": 0.9122, "removed_tumour_slice_dice": 0.4321},
            {"threshold": 0.1, "removed_fraction": 0.046102, "kept_tumour_slice_dice": 0.8041,
             "kept_slice_dice": 0.9055, "removed_tumour_slice_dice": 0.3876},
        ]},
        "classifier": {"auc": 0.9412, "sensitivity": 0.88, "specificity": 0.91, "n_slices": 310},
        "steps": ["initial", "under", "over", "combined"],
        "baselines": ["seed_only", "l1_baseline"],
        "cohorts": {"held-out": ["case_B"], "training": ["case_A"]},
        "timing": {"seeds": 12.5, "stages": {"segmenter": 301.25}},
    }


def _examples() -> dict[str, list[dict]]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    out: dict[str, list[dict]] = {}
    for method in ("initial", "combined"):
        items = []
        for rank, shift, dice in (("best", 0, 0.91), ("median", 3, 0.7), ("worst", 8, 0.2)):
            truth = (yy - 24) ** 2 + (xx - 24) ** 2 < 64
            pred = (yy - 24 - shift) ** 2 + (xx - 24) ** 2 < 64
            image = np.clip(0.3 + 0.1 * rng.standard_normal((48, 48)) + 0.5 * truth, 0, 1)
            variant = np.where(truth, 0.3, image)
            items.append({"rank": rank, "case": "case_A", "slice": 40 + shift, "dice": dice,
                          "image": image, "truth": truth, "prediction": pred, "variant": variant,
                          "difference": np.abs(image - variant)})
        out[method] = items
    return out


def _linked_pngs(html: str, out_dir: Path) -> list[Path]:
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == html.count("<img")
    paths = []
    for src in sources:
        assert not src.startswith("/") and not re.match(r"^[a-z]+:", src)   # relative links
        path = out_dir / src
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1024, src
        paths.append(path)
    return paths


def test_full_report(tmp_path: Path) -> None:
    out = write_html_report(_metrics(), tmp_path, examples=_examples(), title="Test <run>")
    assert out == tmp_path / "report.html"
    html = out.read_text()
    for name in ("initial", "combined", "seed_only"):
        assert name in html
    for heading in ("Table 4", "Table 5", "Table 6"):
        assert f"<h2 id=\"table{heading[-1]}\">{heading}" in html
    # Table 6 numbers, sorted by threshold, % removed with 2 decimals, NaN removed Dice → n/a
    for text in ("0.790", "0.824", "0.804", "0.901", "0.912", "14.25", "4.61", "0.432", "0.388"):
        assert f">{text}<" in html, text
    assert html.index(">4.61<") < html.index(">14.25<")
    # Tables 4/5: per-cohort means (one case each) and the classifier and timing sections
    assert "held-out" in html and "training" in html
    assert "0.750" in html and "0.810" in html        # combined tumour-slice Dice per cohort
    assert "Steps not evaluated: under, over" in html
    assert "0.941" in html and ">310<" in html and ">301.2<" in html and ">12.5<" in html
    assert "Test &lt;run&gt;" in html and "Test <run>" not in html
    assert "n/a" in html                               # combined hd95 on case_B
    pngs = _linked_pngs(html, tmp_path)
    names = {p.name for p in pngs}
    assert {"volume_dice.png", "filtering_dice.png", "filtering_removed.png",
            "montage_initial.png", "montage_combined.png"} <= names
    assert all(p.parent == tmp_path / "figures" for p in pngs)


def test_minimal_metrics_and_empty_pieces(tmp_path: Path) -> None:
    metrics = {"methods": {"flair_threshold": {"n_cases": 1, "volume_dice": NAN,
                                               "volume_dice_sd": NAN,
                                               "per_case": {"c1": {"volume_dice": NAN}}}}}
    html = write_html_report(metrics, tmp_path / "a").read_text()
    assert "flair_threshold" in html and "n/a" in html
    assert "Table 4" not in html and "Table 6" not in html and "Classifier" not in html
    _linked_pngs(html, tmp_path / "a")
    # nothing at all, empty optional keys and an unusable example still give a report
    empty = {"methods": {}, "filtering": {}, "steps": [], "baselines": [], "cohorts": {},
             "classifier": {}, "timing": {}}
    assert write_html_report(empty, tmp_path / "b", examples={"x": []}).exists()
    assert write_html_report({}, tmp_path / "c",
                             examples={"x": [{"rank": "best", "image": None}]}).exists()


def test_nan_from_json_and_escaping(tmp_path: Path) -> None:
    metrics = json.loads(json.dumps(_metrics(), allow_nan=True))
    metrics["methods"]["<b>evil</b>"] = metrics["methods"].pop("seed_only")
    metrics["filtering"]["combined"][0]["kept_slice_dice"] = NAN
    html = write_html_report(metrics, tmp_path, examples={"<b>evil</b>": _examples()["initial"]}
                             ).read_text()
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html
    assert not re.search(r"<td[^>]*>(<b>)?[^<]*\bnan\b", html, re.I)   # no NaN in any cell
    assert ">n/a<" in html
    _linked_pngs(html, tmp_path)


def test_format_filtering_table() -> None:
    text = format_filtering_table(_metrics(), "combined")
    lines = text.splitlines()
    assert "kept tumour-slice Dice" in lines[1] and "% images removed" in lines[1]
    assert [line.split()[0] for line in lines[3:]] == ["0.00", "0.10", "0.20"]
    assert "14.25" in lines[-1] and "0.824" in lines[-1] and "0.432" in lines[-1]
    assert "n/a" in lines[3]
    assert "no difference-score filtering" in format_filtering_table({}, "combined")

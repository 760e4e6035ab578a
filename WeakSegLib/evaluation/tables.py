"""Plain-text tables of an evaluation for the terminal (the HTML report has its own)."""
from __future__ import annotations

import math
from typing import Any

from .scoring import REPORTED


def _fmt(value: float, sd: float | None = None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    return f"{text} ± {sd:.{digits}f}" if sd is not None and not math.isnan(sd) else text


def format_table(report: dict[str, Any], per_case: bool = True) -> str:
    """A plain-text table of means ± SD per method, then per case."""
    header = f"{'method':<22}{'n':>3}  " + "  ".join(f"{m:>19}" for m in REPORTED)
    lines = [header, "-" * len(header)]
    for method, result in sorted(report["methods"].items()):
        cells = "  ".join(f"{_fmt(result.get(m), result.get(m + '_sd'), 2 if m == 'hd95_mm' else 3):>19}"
                          for m in REPORTED)
        lines.append(f"{method:<22}{result['n_cases']:>3}  {cells}")
        if result.get("missing_cases"):
            lines.append(f"  (no prediction for: {', '.join(result['missing_cases'])})")
    if per_case:
        lines.append("")
        lines.append(f"{'case':<24}{'method':<20}" + "".join(f"{m:>19}" for m in REPORTED))
        for method, result in sorted(report["methods"].items()):
            for case, values in sorted(result["per_case"].items()):
                lines.append(f"{case:<24}{method:<20}" + "".join(
                    f"{_fmt(values[m], None, 2 if m == 'hd95_mm' else 3):>19}" for m in REPORTED))
    return "\n".join(lines)

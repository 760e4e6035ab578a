"""Named post-processing operations, so a CLI can chain them: ``--ops largest,fill_holes,min_volume:100``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .components import keep_largest_component, remove_small_components
from .holes import fill_holes_triplanar
from .laterality import keep_inside, split_left_right
from .opening import open_1d
from .tubular import reconstruct_tube
from .tumour import consistent_tumour_mask

Context = Mapping[str, Any]


@dataclass(frozen=True)
class Operation:
    """One named step: ``func(mask, context, *params)``; ``params`` are the parameter types."""

    func: Callable[..., np.ndarray]
    params: tuple[type, ...] = ()
    optional: int = 0  # how many trailing params may be omitted
    needs: tuple[str, ...] = ()
    help: str = ""

    def __call__(self, mask: np.ndarray, context: Context, *args: Any) -> np.ndarray:
        missing = [key for key in self.needs if context.get(key) is None]
        if missing:
            raise ValueError(f"this operation needs {', '.join(missing)} in its context")
        return np.asarray(self.func(mask, context, *args), bool)


def _side(which: str) -> Callable[..., np.ndarray]:
    def run(mask: np.ndarray, ctx: Context) -> np.ndarray:
        left, right = split_left_right(mask, ctx["brain"], ctx.get("left_at_high_x", True))
        return left if which == "left" else right
    return run


OPERATIONS: dict[str, Operation] = {
    "largest": Operation(lambda m, ctx: keep_largest_component(m), help="keep the largest component"),
    "fill_holes": Operation(lambda m, ctx: fill_holes_triplanar(m), help="triplanar 2D hole filling"),
    "min_volume": Operation(
        lambda m, ctx, v: remove_small_components(m, ctx["spacing"], v),
        params=(float,), needs=("spacing",), help="min_volume:MM3 drop smaller components"),
    "open": Operation(
        lambda m, ctx, n=2: open_1d(m, n), params=(int,), optional=1,
        help="open[:LENGTH] 1D openings along z, y, x then largest component"),
    "inside": Operation(lambda m, ctx: keep_inside(m, ctx["brain"]), needs=("brain",),
                        help="keep components overlapping the brain mask"),
    "left": Operation(_side("left"), needs=("brain",), help="components on the patient's left"),
    "right": Operation(_side("right"), needs=("brain",), help="components on the patient's right"),
    "tube": Operation(
        lambda m, ctx: reconstruct_tube(m, ctx.get("intensity"), ctx.get("spacing")),
        help="graph-based tube (optic nerve) reconstruction"),
    "tumour": Operation(
        lambda m, ctx, n=2: consistent_tumour_mask(m, ctx.get("slice_scores"), min_slices=n),
        params=(int,), optional=1, help="tumour[:MIN_SLICES] 3D consistency of slice predictions"),
}


def _convert(name: str, kind: type, text: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"operation {name!r}: parameter {text!r} is not a valid {kind.__name__}") from None
    if value < 0:
        raise ValueError(f"operation {name!r}: parameter {text!r} must not be negative")
    return value


def parse_op(spec: str) -> tuple[str, tuple[Any, ...]]:
    """``"min_volume:100"`` → ``("min_volume", (100.0,))``, checked against :data:`OPERATIONS`."""
    name, *raw = [part.strip() for part in spec.strip().split(":")]
    if not name:
        raise ValueError(f"empty operation name in {spec!r}")
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(sorted(OPERATIONS))}")
    op = OPERATIONS[name]
    low, high = len(op.params) - op.optional, len(op.params)
    if not low <= len(raw) <= high:
        expected = str(high) if low == high else f"{low} to {high}"
        raise ValueError(f"operation {name!r} takes {expected} parameter(s), got {len(raw)} in {spec!r}"
                         + (f" ({op.help})" if op.help else ""))
    return name, tuple(_convert(name, kind, text) for kind, text in zip(op.params, raw))


def parse_ops(text: str | Sequence[str]) -> list[tuple[str, tuple[Any, ...]]]:
    """Parse a comma-separated list (or a list of specs) of operations; raises ValueError early."""
    specs = text.split(",") if isinstance(text, str) else list(text)
    if not any(spec.strip() for spec in specs):
        raise ValueError("no operations given")
    return [parse_op(spec) for spec in specs]


def apply_ops(mask: np.ndarray, ops: str | Sequence[str], **context: Any) -> np.ndarray:
    """Run the operations in order; ``context`` carries spacing, brain, intensity, slice_scores."""
    out = np.asarray(mask, bool)
    for name, args in parse_ops(ops):
        try:
            out = OPERATIONS[name](out, context, *args)
        except ValueError as error:
            raise ValueError(f"operation {name!r}: {error}") from error
    return out

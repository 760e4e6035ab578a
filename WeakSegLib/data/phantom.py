"""Phantom cohort: BraTS-2018-style multi-modal MR with simulated gliomas, built from the
MNI152 template that the ``nilearn`` wheel ships (no download).

Why: tests, demos and scale runs need cohorts of any size without patient data. A phantom is
never evidence of accuracy; claims use the real data in ``../shared/data/`` (DESIGN.md "Data").

Each case is the template's grey/white-matter/CSF probabilities, pulled through a random affine
and a smooth elastic warp (plus the radial mass effect of a tumour), mixed with per-modality
tissue intensities, then given a smooth bias field, Rician noise and a scanner-like gain.
Arrays are in SimpleITK (z, y, x) order on the BraTS grid: 240 x 240 x 155 voxels of 1 mm,
direction identity (LPS), origin (0, -239, 0) -- x runs to the patient's left, y to posterior,
z to superior, so ``arr[z]`` shows an axial slice the way BraTS does.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

__all__ = ["build_phantom_cohort", "make_phantom_case", "phantom_geometry", "tumour_plan",
           "PHANTOM_MODALITIES"]

# ----------------------------------------------------------------------------- constants
#: Modalities written per case, in DESIGN.md channel order.
PHANTOM_MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")

#: BraTS 2018 grid, SimpleITK (z, y, x) order, 1 mm; origin in LPS mm (x, y, z).
BRATS_SHAPE_ZYX: tuple[int, int, int] = (155, 240, 240)
BRATS_ORIGIN_XYZ: tuple[float, float, float] = (0.0, -239.0, 0.0)
#: Where the centre of the brain's bounding box sits on the BraTS grid (voxel index, z y x),
#: measured on Brats18_CBICA_AAB_1; the template brain is centred there.
BRATS_BRAIN_CENTRE_ZYX: tuple[float, float, float] = (70.0, 128.0, 117.0)
#: Centre of the MNI152 brain mask's bounding box after reorientation to (z, y, x) LPS order.
#: The template brain reaches the bottom of its grid (brainstem); shift up so that BraTS-like
#: inferior slices are cut.
TEMPLATE_BRAIN_CENTRE_ZYX: tuple[float, float, float] = (84.0, 115.0, 98.0)

#: Tissue intensities relative to white matter (= 1) per modality. Classes: cerebrospinal fluid,
#: grey matter, white matter, peritumoral oedema, tumour rim (enhancing in T1ce, or solid
#: non-enhancing tumour), necrotic core.
CONTRAST: dict[str, dict[str, float]] = {
    "flair": {"csf": 0.22, "gm": 1.16, "wm": 1.0, "oedema": 2.05, "rim": 1.75, "core": 1.35},
    "t1": {"csf": 0.32, "gm": 0.77, "wm": 1.0, "oedema": 0.72, "rim": 0.74, "core": 0.42},
    "t1ce": {"csf": 0.30, "gm": 0.78, "wm": 1.0, "oedema": 0.72, "rim": 1.45, "core": 0.40},
    "t2": {"csf": 3.2, "gm": 1.45, "wm": 1.0, "oedema": 2.4, "rim": 1.9, "core": 2.9},
}
#: Non-enhancing (lower-grade-looking) tumours: the solid part replaces the rim, no necrosis.
NON_ENHANCING_RIM: dict[str, float] = {"flair": 1.9, "t1": 0.72, "t1ce": 0.78, "t2": 2.1}
NON_ENHANCING_FRACTION = 0.25
#: White-matter intensity in output units per modality (scanner-like range 0..~1000).
WM_LEVEL: dict[str, float] = {"flair": 150.0, "t1": 470.0, "t1ce": 450.0, "t2": 190.0}
GAIN_LOG_SD = 0.2                   # per case and modality, log-normal gain on WM_LEVEL

#: Rician noise SD relative to white matter (BraTS FLAIR is the grainiest).
NOISE_SD: dict[str, float] = {"flair": 0.06, "t1": 0.035, "t1ce": 0.04, "t2": 0.05}
TEXTURE_SD = 0.03                   # fine multiplicative tissue texture
TEXTURE_NODE_MM = 1.8
#: The template is an average of many brains, so its tissue borders are blurred; raising the
#: fractions to this power (then renormalising) restores crisp grey/white borders.
TISSUE_SHARPEN = 1.7
BIAS_LOG_SD = 0.10                  # smooth multiplicative bias field, log-amplitude
BIAS_NODE_MM = 60.0
ELASTIC_SD_MM = 2.0                 # small elastic warp
ELASTIC_NODE_MM = 24.0
SCALE_RANGE = (0.90, 0.98)          # per-axis affine scale (MNI brains are larger than BraTS')
ROTATION_SD_DEG = (2.0, 2.0, 4.0)   # about the x, y, z axes

NO_TUMOUR_FRACTION = 0.15           # of a cohort's cases
TUMOUR_RADIUS_MM = (8.0, 18.0)      # semi-axes of the enhancing/solid tumour ellipsoid
TUMOUR_NOISE = 0.28                 # irregularity of the tumour outline (level-set units)
TUMOUR_NODE_MM = 7.0
CORE_FRACTION = (0.3, 0.6)          # necrotic core radius / tumour radius
CORE_NOISE = 0.25                   # irregular rim thickness
OEDEMA_FACTOR = (1.3, 2.1)          # oedema radius / tumour radius
OEDEMA_NOISE = 0.35
OEDEMA_NODE_MM = 10.0
OEDEMA_WM_PULL = 0.8                # oedema spreads along white matter, spares cortex
OEDEMA_ANATOMY = 0.3                # how much of the underlying tissue contrast shows through
MASS_EFFECT_REACH = 1.6              # Gaussian reach of the push, in mean tumour radii
MASS_EFFECT = (0.4, 0.7)            # radial compression of tissue near the tumour centre
TUMOUR_TEXTURE_SD = 0.14            # heterogeneity inside the lesion
TUMOUR_TEXTURE_NODE_MM = 4.0
RIM_TEXTURE_SD = 0.15               # patchy enhancement (T1ce only)
EDGE_WIDTH = 0.05                   # tumour boundary softness (level-set units)
OEDEMA_EDGE_WIDTH = 0.15
TUMOUR_MIN_WM = 0.9                 # tumour centre: in white matter ...
TUMOUR_MIN_DEPTH_MM = 18.0          # ... this deep inside the brain ...
TUMOUR_MIN_MIDLINE_MM = 12.0        # ... this far from the midline ...
TUMOUR_MIN_Z = 62                   # ... and above the tentorium (template z index)
MIDLINE_EDGE_MM = 3.0               # softness of the hemisphere limit on tumour and oedema


# ----------------------------------------------------------------------------- template
@dataclass(frozen=True)
class _Template:
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray               # float32 0/1
    tumour_sites: np.ndarray        # (n, 3) template voxel indices (z, y, x)


def _to_zyx_lps(img) -> np.ndarray:
    """nilearn RAS (i, j, k) array -> SimpleITK (z, y, x) order with x to the left, y posterior."""
    arr = np.asarray(img.dataobj, dtype=np.float32)
    return np.ascontiguousarray(arr[::-1, ::-1, :].transpose(2, 1, 0))


@functools.lru_cache(maxsize=1)
def _template() -> _Template:
    """Load the MNI152 maps once per process (a few seconds, most of it importing nilearn)."""
    from nilearn import datasets

    brain = (_to_zyx_lps(datasets.load_mni152_brain_mask(resolution=1)) > 0.5).astype(np.float32)
    gm = _to_zyx_lps(datasets.load_mni152_gm_template(resolution=1)) * brain
    wm = _to_zyx_lps(datasets.load_mni152_wm_template(resolution=1)) * brain
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    return _Template(gm=gm, wm=wm, csf=csf, brain=brain, tumour_sites=_tumour_sites(brain, wm))


def _tumour_sites(brain: np.ndarray, wm: np.ndarray, step: int = 2) -> np.ndarray:
    """Template voxels (every ``step``-th, which keeps the distance transform cheap) where a
    glioma may be centred: deep cerebral white matter, off the midline, above the tentorium."""
    sub = (slice(None, None, step),) * 3
    depth = ndimage.distance_transform_edt(brain[sub] > 0, sampling=step)
    grid = np.meshgrid(*[np.arange(0, n, step) for n in brain.shape], indexing="ij", sparse=True)
    ok = ((wm[sub] >= TUMOUR_MIN_WM) & (depth >= TUMOUR_MIN_DEPTH_MM)
          & (np.abs(grid[2] - TEMPLATE_BRAIN_CENTRE_ZYX[2]) >= TUMOUR_MIN_MIDLINE_MM)
          & (grid[0] >= TUMOUR_MIN_Z))
    return np.argwhere(ok) * step


# ----------------------------------------------------------------------------- geometry
def phantom_geometry(shape_scale: float = 1.0) -> tuple[tuple[int, int, int],
                                                      tuple[float, float, float],
                                                      tuple[float, float, float]]:
    """Shape (z, y, x), spacing (x, y, z) and origin (x, y, z) of a phantom grid.

    ``shape_scale`` < 1 samples the same field of view with fewer, larger voxels (fast tests).
    """
    if not 0.05 <= shape_scale <= 1.0:
        raise ValueError(f"shape_scale must be in [0.05, 1], got {shape_scale}")
    shape = tuple(max(2, int(round(n * shape_scale))) for n in BRATS_SHAPE_ZYX)
    spacing_zyx = tuple(n / m for n, m in zip(BRATS_SHAPE_ZYX, shape))
    # keep the field of view: the first voxel centre moves in by half the extra voxel size
    origin = tuple(o + 0.5 * (s - 1.0)
                   for o, s in zip(BRATS_ORIGIN_XYZ, spacing_zyx[::-1]))
    return shape, spacing_zyx[::-1], origin


def _axes_mm(shape_scale: float) -> list[np.ndarray]:
    """Voxel centres of the phantom grid in BraTS 1 mm index units, per axis (z, y, x)."""
    shape, spacing_xyz, _ = phantom_geometry(shape_scale)
    return [np.arange(n, dtype=np.float64) * s + 0.5 * (s - 1.0)
            for n, s in zip(shape, spacing_xyz[::-1])]


# ----------------------------------------------------------------------------- smooth fields
def _bspline_weights(pos: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Cubic B-spline basis of ``nodes`` evaluated at ``pos``, rows scaled to unit L2 norm so that
    unit-variance node noise gives a unit-variance field everywhere."""
    step = nodes[1] - nodes[0]
    t = np.abs(pos[:, None] - nodes[None, :]) / step
    w = np.where(t < 1.0, 2.0 / 3.0 - t ** 2 + 0.5 * t ** 3,
                 np.where(t < 2.0, (2.0 - t) ** 3 / 6.0, 0.0))
    return (w / np.sqrt((w ** 2).sum(axis=1, keepdims=True))).astype(np.float32)


def _nodes(lo: float, hi: float, step: float) -> np.ndarray:
    n = int(np.ceil((hi - lo) / step)) + 3
    return lo - step + step * np.arange(n)


def _smooth_field(rng: np.random.Generator, axes: list[np.ndarray], node_mm: float,
                  extent: list[tuple[float, float]] | None = None) -> np.ndarray:
    """Unit-variance smooth random field on the grid ``axes`` (mm, z y x): Gaussian noise on a
    coarse node lattice, upsampled with separable cubic B-splines (cheap: three small matrix
    products). The lattice covers ``extent`` (default: the axes' span), so the random draw does
    not depend on the output resolution."""
    if extent is None:
        extent = [(float(a[0]), float(a[-1])) for a in axes]
    nodes = [_nodes(lo, hi, node_mm) for lo, hi in extent]
    coarse = rng.standard_normal(tuple(len(n) for n in nodes), dtype=np.float32)
    wz, wy, wx = (_bspline_weights(a, n) for a, n in zip(axes, nodes))
    f = np.tensordot(wz, coarse, axes=(1, 0))          # (z, cy, cx)
    f = np.tensordot(f, wy, axes=(1, 1))               # (z, cx, y)
    f = np.tensordot(f, wx, axes=(1, 1))               # (z, y, x)
    return f


_FOV = [(0.0, float(n - 1)) for n in BRATS_SHAPE_ZYX]


# ----------------------------------------------------------------------------- case drawing
@dataclass(frozen=True)
class _Tumour:
    centre: np.ndarray              # output mm (z, y, x)
    rotation: np.ndarray            # 3x3
    radii: np.ndarray               # mm
    core: float
    oedema: float
    mass: float
    enhancing: bool
    side: float                     # +1 / -1: the template hemisphere (x beyond / before midline)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrix in (z, y, x) coordinates from angles about x, y, z (degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[np.cos(ax), -np.sin(ax), 0], [np.sin(ax), np.cos(ax), 0], [0, 0, 1]])
    ry = np.array([[np.cos(ay), 0, -np.sin(ay)], [0, 1, 0], [np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[1, 0, 0], [0, np.cos(az), -np.sin(az)], [0, np.sin(az), np.cos(az)]])
    return rz @ ry @ rx


def _draw_affine(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Output mm -> template voxel: t = M @ q + b. The brain shrinks by SCALE_RANGE and turns a
    little; the template brain centre lands on the BraTS brain centre."""
    scale = rng.uniform(*SCALE_RANGE, size=3)
    rot = _rotation(rng.normal(0.0, ROTATION_SD_DEG))
    m = rot @ np.diag(1.0 / scale)
    shift = rng.normal(0.0, 2.0, size=3)
    b = np.asarray(TEMPLATE_BRAIN_CENTRE_ZYX) - m @ (np.asarray(BRATS_BRAIN_CENTRE_ZYX) + shift)
    return m, b


def _draw_tumour(rng: np.random.Generator, m: np.ndarray, b: np.ndarray) -> _Tumour:
    sites = _template().tumour_sites
    site = sites[rng.integers(len(sites))] + rng.uniform(-1.0, 1.0, size=3)
    centre = np.linalg.solve(m, site - b)
    return _Tumour(
        centre=centre,
        rotation=_rotation(rng.uniform(-180.0, 180.0, size=3)),
        radii=rng.uniform(*TUMOUR_RADIUS_MM) * rng.uniform(0.7, 1.3, size=3),
        core=float(rng.uniform(*CORE_FRACTION)),
        oedema=float(rng.uniform(*OEDEMA_FACTOR)),
        mass=float(rng.uniform(*MASS_EFFECT)),
        enhancing=bool(rng.random() >= NON_ENHANCING_FRACTION),
        side=float(np.sign(site[2] - TEMPLATE_BRAIN_CENTRE_ZYX[2])),
    )


# ----------------------------------------------------------------------------- rendering
def _soft_below(level: np.ndarray, threshold: float, width: float) -> np.ndarray:
    """Smooth indicator of ``level < threshold`` (partial volume at lesion borders)."""
    return (0.5 - 0.5 * np.tanh((level - threshold) / width)).astype(np.float32)


def _local_box(centre: np.ndarray, half_mm: float, axes: list[np.ndarray]) -> tuple[slice, ...]:
    box = []
    for c, a in zip(centre, axes):
        lo, hi = np.searchsorted(a, [c - half_mm, c + half_mm])
        box.append(slice(int(lo), int(max(hi, lo + 1))))
    return tuple(box)


def _sample(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=0.0,
                                   output=np.float32)


def _ellipsoid_norm(t: _Tumour, box_axes: list[np.ndarray]) -> np.ndarray:
    """|R (q - c) / radii| on a local grid: 1 on the ellipsoid surface."""
    d = np.meshgrid(*[a - c for a, c in zip(box_axes, t.centre)], indexing="ij", sparse=True)
    acc = 0.0
    for row, r in zip(t.rotation, t.radii):
        u = row[0] * d[0] + row[1] * d[1] + row[2] * d[2]
        acc = acc + (u / r) ** 2
    return np.sqrt(acc).astype(np.float32)


def _brain_box(m: np.ndarray, b: np.ndarray, axes: list[np.ndarray],
               push_mm: float) -> tuple[slice, ...]:
    """Output-grid box that surely holds the warped brain: the template brain's bounding box
    mapped back through the affine, plus room for the elastic warp and the mass effect's largest
    push. All the expensive work happens inside it."""
    brain = _template().brain
    lo_hi = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        nz = np.flatnonzero(brain.any(axis=other))
        lo_hi.append((nz[0], nz[-1]))
    corners = np.array(np.meshgrid(*lo_hi, indexing="ij")).reshape(3, -1).T.astype(np.float64)
    q = np.linalg.solve(m, (corners - b).T).T
    margin = 4.0 * ELASTIC_SD_MM + push_mm + 4.0
    return tuple(slice(int(np.searchsorted(a, lo - margin)),
                       int(np.searchsorted(a, hi + margin, side="right")))
                 for a, lo, hi in zip(axes, q.min(axis=0), q.max(axis=0)))


def _source_coords(rng: np.random.Generator, m: np.ndarray, b: np.ndarray,
                   axes: list[np.ndarray]) -> np.ndarray:
    """Template voxel sampled by each output voxel: affine plus a small elastic warp."""
    coords = np.empty((3,) + tuple(len(a) for a in axes), dtype=np.float32)
    for i in range(3):
        coords[i] = b[i]
        for j in range(3):
            shape = [1, 1, 1]
            shape[j] = -1
            coords[i] += (m[i, j] * axes[j]).astype(np.float32).reshape(shape)
        coords[i] += ELASTIC_SD_MM * _smooth_field(rng, axes, ELASTIC_NODE_MM, _FOV)
    return coords


def _mass_effect_scale(t: _Tumour) -> float:
    return float(t.radii.mean()) * MASS_EFFECT_REACH


def _max_push_mm(t: _Tumour | None) -> float:
    """Largest displacement of the mass effect, mass * s * exp(-1/2) at r = s."""
    return 0.0 if t is None else t.mass * _mass_effect_scale(t) * float(np.exp(-0.5))


def _apply_mass_effect(coords: np.ndarray, t: _Tumour, m: np.ndarray,
                       axes: list[np.ndarray]) -> None:
    """Push tissue radially away from the tumour centre (in place). Backward map: what is seen
    at distance r came from r (1 - mass exp(-r^2 / 2 s^2)), monotone for mass < 1. Applied in a
    box of +-4 s, beyond which the push is below 0.01 mm."""
    s = _mass_effect_scale(t)
    box = _local_box(t.centre, 4.0 * s, axes)
    box_axes = [a[sl] for a, sl in zip(axes, box)]
    d = np.meshgrid(*[a - c for a, c in zip(box_axes, t.centre)], indexing="ij", sparse=True)
    r2 = d[0] ** 2 + d[1] ** 2 + d[2] ** 2
    pull = -t.mass * np.exp(-r2 / (2.0 * s ** 2))
    for i in range(3):
        disp = (m[i, 0] * d[0] + m[i, 1] * d[1] + m[i, 2] * d[2]) * pull
        coords[(i,) + box] += disp.astype(np.float32)


def _sample_tissues(coords: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Brain mask and tissue fractions (csf, gm, wm summing to 1 in the brain, 0 outside)."""
    tpl = _template()
    brain_p = _sample(tpl.brain, coords)
    brain = brain_p > 0.5
    pts = coords[:, brain]
    gm = _sample(tpl.gm, pts)
    wm = _sample(tpl.wm, pts)
    csf = np.maximum(brain_p[brain] - gm - wm, 0.0)
    gm, wm, csf = (np.power(v, TISSUE_SHARPEN) for v in (gm, wm, csf))
    total = np.maximum(gm + wm + csf, 1e-6)
    fractions = {}
    for name, v in (("csf", csf), ("gm", gm), ("wm", wm)):
        full = np.zeros(brain.shape, dtype=np.float32)
        full[brain] = v / total
        fractions[name] = full
    return brain, fractions


@dataclass
class _Lesion:
    box: tuple[slice, ...]          # within the brain box
    oedema: np.ndarray              # soft weights on the box
    rim: np.ndarray
    core: np.ndarray
    texture: np.ndarray             # multiplicative heterogeneity
    rim_texture: np.ndarray         # extra, patchy enhancement of the rim
    seg: np.ndarray                 # bool on the box
    enhancing: bool


def _draw_lesion_shape(rng: np.random.Generator, t: _Tumour, box_axes: list[np.ndarray],
                       reach: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level sets (< 1 inside) of the solid tumour, its necrotic core and the oedema. A steep
    radial envelope closes the oedema well before the box faces, so it is never cut flat."""
    norm = _ellipsoid_norm(t, box_axes)
    level = norm + TUMOUR_NOISE * _smooth_field(rng, box_axes, TUMOUR_NODE_MM)
    level_core = level / t.core + CORE_NOISE * _smooth_field(rng, box_axes, TUMOUR_NODE_MM)
    d = np.meshgrid(*[a - c for a, c in zip(box_axes, t.centre)], indexing="ij", sparse=True)
    envelope = 2.0 * ((d[0] ** 2 + d[1] ** 2 + d[2] ** 2) / reach ** 2) ** 4
    level_ed = (norm / t.oedema + OEDEMA_NOISE * _smooth_field(rng, box_axes, OEDEMA_NODE_MM)
                + envelope.astype(np.float32))
    return level, level_core, level_ed


def _hemisphere(coords: np.ndarray, t: _Tumour) -> np.ndarray:
    """Soft indicator of the tumour's hemisphere, from the (mass-displaced) template midline:
    gliomas and their oedema rarely cross it."""
    offset = t.side * (coords[2] - TEMPLATE_BRAIN_CENTRE_ZYX[2])
    return np.clip(0.5 + offset / MIDLINE_EDGE_MM, 0.0, 1.0).astype(np.float32)


def _make_lesion(rng: np.random.Generator, t: _Tumour, box: tuple[slice, ...],
                 box_axes: list[np.ndarray], brain: np.ndarray,
                 fractions: dict[str, np.ndarray], hemisphere: np.ndarray,
                 reach: float) -> _Lesion:
    """Soft tissue weights of oedema, rim and core, and the whole-tumour mask."""
    level, level_core, level_ed = _draw_lesion_shape(rng, t, box_axes, reach)
    inside = brain[box] * hemisphere
    w_solid = _soft_below(level, 1.0, EDGE_WIDTH) * inside
    if t.enhancing:
        w_core = np.minimum(_soft_below(level_core, 1.0, EDGE_WIDTH), w_solid)
    else:
        w_core = np.zeros_like(w_solid)
    # oedema follows the white matter, spares the cortex and does not fill the ventricles
    level_ed = level_ed - OEDEMA_WM_PULL * (fractions["wm"][box] - 0.5)
    w_oed = _soft_below(level_ed, 1.0, OEDEMA_EDGE_WIDTH) * inside * (1.0 - fractions["csf"][box])
    w_oed = np.clip(w_oed - w_solid, 0.0, 1.0)
    texture = 1.0 + TUMOUR_TEXTURE_SD * _smooth_field(rng, box_axes, TUMOUR_TEXTURE_NODE_MM)
    rim_texture = 1.0 + RIM_TEXTURE_SD * _smooth_field(rng, box_axes, TUMOUR_TEXTURE_NODE_MM)
    seg = ((w_solid + w_oed) > 0.5) & brain[box]
    return _Lesion(box=box, oedema=w_oed, rim=w_solid - w_core, core=w_core,
                   texture=texture.astype(np.float32), rim_texture=rim_texture.astype(np.float32),
                   seg=seg, enhancing=t.enhancing)


def make_phantom_case(rng: np.random.Generator, *, shape_scale: float = 1.0,
                      tumour: bool | None = None) -> dict[str, np.ndarray]:
    """One synthetic case in memory: ``flair t1 t1ce t2`` (float32), ``seg`` (uint8 whole tumour)
    and ``brain`` (uint8 mask), all in SimpleITK (z, y, x) order on :func:`phantom_geometry`.

    ``tumour=None`` draws one with probability 1 - NO_TUMOUR_FRACTION.
    """
    if tumour is None:
        tumour = bool(rng.random() >= NO_TUMOUR_FRACTION)
    full_axes = _axes_mm(shape_scale)
    m, b = _draw_affine(rng)
    t = _draw_tumour(rng, m, b) if tumour else None
    bbox = _brain_box(m, b, full_axes, _max_push_mm(t))
    axes = [a[s] for a, s in zip(full_axes, bbox)]
    coords = _source_coords(rng, m, b, axes)
    if t is not None:
        _apply_mass_effect(coords, t, m, axes)
        # lesion box: oedema reaches about radius x oedema factor x (1 + shape noise)
        reach = float(t.radii.max() * max(t.oedema, 1.0) * 2.2 + 8.0)
        tbox = _local_box(t.centre, reach, axes)
        tbox_axes = [a[s] for a, s in zip(axes, tbox)]
        hemisphere = _hemisphere(coords[(slice(None),) + tbox], t)
    brain, fractions = _sample_tissues(coords)
    del coords
    lesion = None
    if t is not None:
        lesion = _make_lesion(rng, t, tbox, tbox_axes, brain, fractions, hemisphere, reach)
    texture = 1.0 + TEXTURE_SD * _smooth_field(rng, axes, TEXTURE_NODE_MM, _FOV)

    shape = tuple(len(a) for a in full_axes)
    out: dict[str, np.ndarray] = {}
    for mod in PHANTOM_MODALITIES:
        img = _mix_intensities(mod, fractions, texture, lesion)
        img *= np.exp(BIAS_LOG_SD * _smooth_field(rng, axes, BIAS_NODE_MM, _FOV))
        full = np.zeros(shape, dtype=np.float32)
        full[bbox] = _noise_and_gain(rng, mod, img, brain)
        out[mod] = full
    seg = np.zeros(shape, dtype=np.uint8)
    brain_full = np.zeros(shape, dtype=np.uint8)
    brain_full[bbox] = brain
    if lesion is not None:
        seg[bbox][lesion.box] = lesion.seg
    out["seg"] = seg
    out["brain"] = brain_full
    return out


def _mix_intensities(mod: str, fractions: dict[str, np.ndarray], texture: np.ndarray,
                     lesion: _Lesion | None) -> np.ndarray:
    """Relative intensity (white matter = 1): tissue mixture, texture and the lesion."""
    c = CONTRAST[mod]
    img = c["csf"] * fractions["csf"] + c["gm"] * fractions["gm"] + c["wm"] * fractions["wm"]
    img *= texture
    if lesion is not None:
        rim_level = c["rim"] if lesion.enhancing else NON_ENHANCING_RIM[mod]
        local = img[lesion.box]
        # oedema raises water content but some of the underlying anatomy still shows
        oedema = c["oedema"] * (1.0 - OEDEMA_ANATOMY + OEDEMA_ANATOMY * local) * lesion.texture
        rim = lesion.rim * rim_level * (lesion.rim_texture if mod == "t1ce" else 1.0)
        solid = (rim + lesion.core * c["core"]) * lesion.texture
        keep = 1.0 - lesion.oedema - lesion.rim - lesion.core
        img[lesion.box] = local * keep + lesion.oedema * oedema + solid
    return img


def _noise_and_gain(rng: np.random.Generator, mod: str, img: np.ndarray,
                    brain: np.ndarray) -> np.ndarray:
    """Rician magnitude noise and a scanner gain on brain voxels; exactly 0 elsewhere."""
    values = img[brain]
    sd = np.float32(NOISE_SD[mod])
    n1 = rng.standard_normal(values.shape, dtype=np.float32)
    n2 = rng.standard_normal(values.shape, dtype=np.float32)
    values = np.sqrt((values + sd * n1) ** 2 + (sd * n2) ** 2)
    gain = WM_LEVEL[mod] * float(np.exp(rng.normal(0.0, GAIN_LOG_SD)))
    out = np.zeros(img.shape, dtype=np.float32)
    out[brain] = values * np.float32(gain)
    return out


# ----------------------------------------------------------------------------- cohort on disk
def tumour_plan(cases: int, seed: int) -> list[bool]:
    """Which cases of a cohort get a tumour: round(NO_TUMOUR_FRACTION * cases) do not, at random
    positions, so that a cohort of 4+ cases always has healthy volumes and the count is exact."""
    healthy = int(round(NO_TUMOUR_FRACTION * cases))
    order = np.random.default_rng([seed, 0x7E]).permutation(cases)
    plan = [True] * cases
    for i in order[:healthy]:
        plan[int(i)] = False
    return plan


def _write_case(case_dir: Path, arrays: dict[str, np.ndarray], shape_scale: float) -> None:
    _, spacing, origin = phantom_geometry(shape_scale)
    case_dir.mkdir(parents=True, exist_ok=True)
    for key in PHANTOM_MODALITIES + ("seg",):
        img = sitk.GetImageFromArray(arrays[key])
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        sitk.WriteImage(img, str(case_dir / f"{case_dir.name}_{key}.nii.gz"), useCompression=True)


def build_phantom_cohort(out_dir: Path, cases: int, seed: int, *, shape_scale: float = 1.0,
                         show_progress: bool = True) -> list[Path]:
    """Write ``cases`` BraTS-2018-style folders ``out_dir/Phantom_NNN/`` and return them.

    The same ``seed`` gives identical files. An existing non-empty case folder is never
    overwritten (ValueError), so a phantom cannot silently replace data.
    """
    from tqdm import tqdm

    if cases < 1:
        raise ValueError(f"cases must be >= 1, got {cases}")
    out_dir = Path(out_dir)
    dirs = [out_dir / f"Phantom_{i:03d}" for i in range(cases)]
    for d in dirs:
        if d.exists() and any(d.iterdir()):
            raise ValueError(f"refusing to overwrite non-empty case folder {d}")
    plan = tumour_plan(cases, seed)
    for i, d in enumerate(tqdm(dirs, desc="phantom", unit="case", file=sys.stderr,
                               disable=not show_progress)):
        arrays = make_phantom_case(np.random.default_rng([seed, i]), shape_scale=shape_scale,
                                   tumour=plan[i])
        _write_case(d, arrays, shape_scale)
    return dirs

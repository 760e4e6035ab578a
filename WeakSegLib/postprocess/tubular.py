"""Graph-based reconstruction of a thin tube (the optic nerve, thesis §4.2.2.2).

A network's nerve prediction is often broken (gaps) and carries attached false positives.
Between two landmarks at the nerve's ends, a shortest path through the voxels — cheap
inside the prediction, cheaper still far from its border — gives a centre line, and the
tube is rebuilt from spheres along it, so the result is connected by construction.

Conventions: arrays are (z, y, x); the tube runs along y (anterior → posterior for the
optic nerve) and the path is forced to advance one y step per node. Radii and costs are in
voxels, as in the thesis; with anisotropic ``spacing`` distances are measured in units of
the finest spacing (so a "voxel" radius means the same physical length along every axis).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from .components import keep_largest_component
from .opening import open_1d

Y_AXIS = 1
_EPS = 1e-6  # keeps zero-cost edges as explicit edges of the sparse graph


def _scale(spacing: Sequence[float] | None, ndim: int = 3) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    s = np.asarray(spacing, float)
    if s.shape != (ndim,) or np.any(s <= 0):
        raise ValueError(f"spacing must be {ndim} positive values, got {spacing}")
    return s / s.min()


def end_landmarks(structure: np.ndarray, n_points: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Barycentres of the ``n_points`` voxels nearest each end of ``structure`` along y.

    A barycentre of several voxels lies nearer the centre line than any single end voxel.
    Ties on the cut-off y slice are all included so that the barycentre is not biased
    towards the low z/x corner by raster order.
    """
    coords = np.argwhere(np.asarray(structure, bool))
    if coords.size == 0:
        raise ValueError("empty structure: no landmarks")
    ys = np.sort(coords[:, Y_AXIS])
    k = min(int(n_points), len(ys)) - 1
    first = coords[coords[:, Y_AXIS] <= ys[k]].mean(axis=0)
    second = coords[coords[:, Y_AXIS] >= ys[len(ys) - 1 - k]].mean(axis=0)
    return first, second


def landmark_near(structure: np.ndarray, target: np.ndarray, n_points: int = 30,
                  spacing: Sequence[float] | None = None) -> np.ndarray:
    """Barycentre of the ``n_points`` voxels of ``structure`` closest to ``target`` (e.g. the eye)."""
    structure = np.asarray(structure, bool)
    target = np.asarray(target, bool)
    if not structure.any() or not target.any():
        raise ValueError("empty structure or target: no landmark")
    distance = distance_transform_edt(~target, sampling=_scale(spacing, structure.ndim))
    coords = np.argwhere(structure)
    order = np.argsort(distance[structure], kind="stable")[: int(n_points)]
    return coords[order].mean(axis=0)


def refine_by_intensity(
    prediction: np.ndarray,
    intensity: np.ndarray,
    landmark: Sequence[float],
    radius: float = 5.0,
    quantile: float = 98.0,
    fraction: float = 0.8,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Set to negative the predicted voxels brighter than ``fraction`` × the local bright level.

    The nerve is wrapped in fat, hyperintense on T1: the ``quantile`` of intensities in a
    cube of half-size ``radius`` around the eye-side landmark estimates the fat level.
    Only meaningful for non-negative intensities; if that level is <= 0 nothing is changed.
    """
    prediction = np.asarray(prediction, bool)
    intensity = np.asarray(intensity, float)
    if intensity.shape != prediction.shape:
        raise ValueError(f"intensity shape {intensity.shape} != prediction shape {prediction.shape}")
    scale = _scale(spacing, prediction.ndim)
    centre = np.rint(np.asarray(landmark, float)).astype(int)
    half = np.ceil(radius / scale).astype(int)
    box = tuple(slice(max(c - h, 0), min(c + h + 1, n)) for c, h, n in zip(centre, half, prediction.shape))
    level = float(np.percentile(intensity[box], quantile))
    if level <= 0:
        return prediction.copy()
    return prediction & ~(intensity > fraction * level)


def _radius_along_y(y: np.ndarray | float, y0: float, y1: float, r_start: float, r_end: float):
    t = 0.0 if y1 == y0 else np.clip((np.asarray(y, float) - y0) / (y1 - y0), 0.0, 1.0)
    return r_start + (r_end - r_start) * t


def centre_line(
    label_mask: np.ndarray,
    start: Sequence[float],
    end: Sequence[float],
    r_start: float = 7.0,
    r_end: float = 3.0,
    c_label: float = 100.0,
    c_target: float = 0.001,
    margin: int | None = None,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Shortest path (scipy Dijkstra) from ``start`` to ``end`` with y strictly increasing.

    Nodes are the voxels of the cuboid spanning both landmarks (widened by ``margin`` in z
    and x, default ``ceil(r_start)``); each node (z, y, x) has children (z+dz, y+1, x+dx),
    dz, dx ∈ {-1, 0, 1}. An edge weighs the cost of the node it enters:
    ``c_label`` outside the label, else ``max(R(y) − d_border, 0)`` (clipped so Dijkstra's
    weights stay non-negative), plus ``c_target`` × distance to ``end``. R(y) goes linearly
    from ``r_start`` at the start's y to ``r_end`` at the end's y. If ``end`` itself is not
    reachable (too far sideways for the y span) the path stops at the reachable voxel of the
    end's y slice nearest to it. Returns integer (n, 3) voxel coordinates, start first.
    """
    label_mask = np.asarray(label_mask, bool)
    shape = np.array(label_mask.shape)
    scale = _scale(spacing, label_mask.ndim)
    p0 = np.clip(np.rint(np.asarray(start, float)).astype(int), 0, shape - 1)
    p1 = np.clip(np.rint(np.asarray(end, float)).astype(int), 0, shape - 1)
    if p1[Y_AXIS] < p0[Y_AXIS]:
        raise ValueError("the end landmark must not lie before the start along y")
    if p1[Y_AXIS] == p0[Y_AXIS]:
        return p0[None, :]
    margin = int(np.ceil(r_start)) if margin is None else int(margin)
    lo = np.minimum(p0, p1) - margin
    hi = np.maximum(p0, p1) + margin + 1
    lo[Y_AXIS], hi[Y_AXIS] = p0[Y_AXIS], p1[Y_AXIS] + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
    roi = tuple(slice(a, b) for a, b in zip(lo, hi))

    d_border = distance_transform_edt(label_mask, sampling=scale)[roi]
    grid = np.indices(d_border.shape).reshape(3, -1).T + lo
    radius = _radius_along_y(grid[:, Y_AXIS], p0[Y_AXIS], p1[Y_AXIS], r_start, r_end)
    inside = label_mask[roi].ravel()
    cost = np.where(inside, np.maximum(radius - d_border.ravel(), 0.0), c_label)
    cost = cost + c_target * np.linalg.norm((grid - p1) * scale, axis=1) + _EPS

    index = np.arange(cost.size).reshape(d_border.shape)
    sources, targets = [], []
    for dz in (-1, 0, 1):
        for dx in (-1, 0, 1):
            src = index[max(-dz, 0): index.shape[0] - max(dz, 0), :-1, max(-dx, 0): index.shape[2] - max(dx, 0)]
            dst = index[max(dz, 0): index.shape[0] - max(-dz, 0), 1:, max(dx, 0): index.shape[2] - max(-dx, 0)]
            sources.append(src.ravel())
            targets.append(dst.ravel())
    src = np.concatenate(sources)
    dst = np.concatenate(targets)
    graph = coo_matrix((cost[dst], (src, dst)), shape=(cost.size, cost.size)).tocsr()

    start_node = int(np.ravel_multi_index(tuple(p0 - lo), d_border.shape))
    dist, pred = dijkstra(graph, directed=True, indices=start_node, return_predecessors=True)
    last_plane = index[:, -1, :].ravel()
    reachable = last_plane[np.isfinite(dist[last_plane])]
    miss = np.linalg.norm((grid[reachable] - p1) * scale, axis=1)
    node = int(reachable[np.lexsort((dist[reachable], miss))[0]])
    path = [node]
    while node != start_node:
        node = int(pred[node])
        path.append(node)
    return grid[np.array(path[::-1])]


def paint_tube(
    line: np.ndarray,
    radii: Sequence[float] | np.ndarray,
    refined: np.ndarray,
    r1: float = 2.5,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Union of spheres along ``line``: radius ``r1`` all positive, radius ``radii[i]`` only where ``refined``."""
    refined = np.asarray(refined, bool)
    shape = np.array(refined.shape)
    scale = _scale(spacing, refined.ndim)
    out = np.zeros_like(refined)
    for point, r2 in zip(np.asarray(line, int), np.broadcast_to(np.asarray(radii, float), (len(line),))):
        half = np.ceil(max(r1, r2) / scale).astype(int)
        lo, hi = np.maximum(point - half, 0), np.minimum(point + half + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        offsets = np.indices(hi - lo).transpose(1, 2, 3, 0) + lo - point
        d = np.linalg.norm(offsets * scale, axis=-1)
        out[box] |= (d <= r1) | ((d <= r2) & refined[box])
    return out


def reconstruct_tube(
    prediction: np.ndarray,
    intensity: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
    *,
    start: Sequence[float] | None = None,
    end: Sequence[float] | None = None,
    n_points: int = 30,
    r_start: float = 7.0,
    r_end: float = 3.0,
    r1: float = 2.5,
    c_label: float = 100.0,
    c_target: float = 0.001,
    fat_radius: float = 5.0,
    fat_quantile: float = 98.0,
    fat_fraction: float = 0.8,
    opening_length: int | None = 2,
    margin: int | None = None,
) -> np.ndarray:
    """Rebuild a tubular structure as one connected component joining its two landmarks.

    Steps (thesis §4.2.2.2): landmarks = barycentres of the ``n_points`` predicted voxels at
    each y end (or ``start``/``end`` given, e.g. from :func:`landmark_near` with the eye and
    chiasm); optional intensity refinement around ``start``; Dijkstra centre line; spheres of
    radius ``r1`` (all positive) and R(y) (positive where the refined prediction is);
    1D openings of ``opening_length`` and largest component (``None`` skips the opening).
    Readings chosen where the text is loose: the path may run towards lower y (the volume is
    mirrored internally); R(y) interpolates between the two landmarks' y; R − d_border is
    clipped at 0; the ``r1`` spheres survive the opening (they are positive by definition),
    and the result is reduced to its largest component, which therefore holds the centre line.
    """
    prediction = np.asarray(prediction, bool)
    if prediction.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) prediction, got shape {prediction.shape}")
    if not prediction.any() and (start is None or end is None):
        return prediction.copy()
    if start is None or end is None:
        first, second = end_landmarks(prediction, n_points)
        start = first if start is None else start
        end = second if end is None else end
    start, end = np.asarray(start, float), np.asarray(end, float)

    flip = end[Y_AXIS] < start[Y_AXIS]
    if flip:  # mirror along y so that the path always advances towards +y
        ny = prediction.shape[Y_AXIS] - 1
        prediction = prediction[:, ::-1]
        intensity = None if intensity is None else np.asarray(intensity)[:, ::-1]
        start, end = start.copy(), end.copy()
        start[Y_AXIS], end[Y_AXIS] = ny - start[Y_AXIS], ny - end[Y_AXIS]

    refined = prediction
    if intensity is not None:
        refined = refine_by_intensity(prediction, intensity, start, fat_radius, fat_quantile,
                                      fat_fraction, spacing)
    line = centre_line(refined, start, end, r_start, r_end, c_label, c_target, margin, spacing)
    y0, y1 = float(line[0, Y_AXIS]), float(line[-1, Y_AXIS])
    radii = _radius_along_y(line[:, Y_AXIS], y0, y1, r_start, r_end)
    tube = paint_tube(line, radii, refined, r1, spacing)
    if opening_length:
        core = paint_tube(line, 0.0, refined, r1, spacing)  # S1 spheres: positive whatever opens
        tube = open_1d(tube, opening_length, keep_largest=False) | core
    tube = keep_largest_component(tube)
    return tube[:, ::-1].copy() if flip else tube

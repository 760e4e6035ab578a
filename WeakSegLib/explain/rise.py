"""RISE saliency (Petsiuk et al. 2018), the seed source of Pipeline row 2.

Mask i: a g×g grid of Bernoulli(p) cells, bilinearly upsampled to (g+1)·cell px and cropped at
a random shift in [0, cell) — as in the authors' code — so mask edges fall anywhere. Masks come
from one seeded ``torch.Generator`` on the CPU, so mask i is identical on every device and every
rank; they are cached per (size, N, grid, p, seed, device).

saliency = Σ_i σ(f(x ⊙ M_i)) · M_i / (N·p), then min-max per image to [0, 1]. The sum is split
into ``rise_partial_sums`` over any subset of mask indices, so ranks can each take a shard and
add their partial sums (``rise_saliency(..., rank, world_size, all_reduce)``).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import eval_mode, fold_batchnorm, logits_of, minmax_per_image, model_device

_CACHE_SIZE = 4
_MASK_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_GENERATE_CHUNK = 256          # masks upsampled at a time while building the set


def generate_masks(size: tuple[int, int], n_masks: int, grid: int, p: float, seed: int,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """The RISE mask set ``[N, H, W]`` (float32 in [0, 1]), cached; deterministic in ``seed``."""
    h, w = int(size[0]), int(size[1])
    if n_masks < 1 or grid < 1 or not 0.0 < p <= 1.0:
        raise ValueError(f"RISE needs n_masks ≥ 1, grid ≥ 1 and 0 < p ≤ 1 "
                         f"(got {n_masks}, {grid}, {p})")
    device = torch.device(device)
    key = (h, w, n_masks, grid, float(p), seed, str(device))
    if key in _MASK_CACHE:
        _MASK_CACHE.move_to_end(key)
        return _MASK_CACHE[key]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    cell_h, cell_w = math.ceil(h / grid), math.ceil(w / grid)
    cells = (torch.rand(n_masks, 1, grid, grid, generator=gen) < p).float()
    shift_y = torch.randint(0, cell_h, (n_masks,), generator=gen)
    shift_x = torch.randint(0, cell_w, (n_masks,), generator=gen)
    up_size = ((grid + 1) * cell_h, (grid + 1) * cell_w)
    rows = torch.arange(h)
    cols = torch.arange(w)
    masks = torch.empty(n_masks, h, w)
    for start in range(0, n_masks, _GENERATE_CHUNK):
        sl = slice(start, start + _GENERATE_CHUNK)
        up = F.interpolate(cells[sl], size=up_size, mode="bilinear", align_corners=False)[:, 0]
        n = up.shape[0]
        r = (shift_y[sl, None] + rows)[:, :, None]                  # [n, H, 1]
        c = (shift_x[sl, None] + cols)[:, None, :]                  # [n, 1, W]
        masks[sl] = up[torch.arange(n)[:, None, None], r, c].clamp_(0.0, 1.0)  # float round-off
    masks = masks.to(device)
    _MASK_CACHE[key] = masks
    while len(_MASK_CACHE) > _CACHE_SIZE:
        _MASK_CACHE.popitem(last=False)
    return masks


def clear_mask_cache() -> None:
    """Free cached masks (e.g. between cohorts of different slice sizes)."""
    _MASK_CACHE.clear()


def mask_shard(n_masks: int, rank: int, world_size: int) -> torch.Tensor:
    """Contiguous block of mask indices for ``rank`` of ``world_size``; blocks cover 0..N-1."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    bounds = [n_masks * r // world_size for r in range(world_size + 1)]
    return torch.arange(bounds[rank], bounds[rank + 1])


def rise_partial_sums(model: nn.Module, images: torch.Tensor,
                      mask_indices: Sequence[int] | torch.Tensor | None = None, *,
                      n_masks: int = 4000, grid: int = 8, p: float = 0.5, seed: int = 0,
                      batch: int = 250, fold_bn: bool = True,
                      bf16: bool = False) -> torch.Tensor:
    """Σ over ``mask_indices`` (all when None) of σ(f(x ⊙ M_i))·M_i, ``[B, H, W]`` float32 on the
    model's device, unnormalised so that sums over disjoint shards add up to the full sum.

    At most ``batch`` masked images go through the model at once, which bounds memory. With
    ``fold_bn`` the forwards run on an eval, channels-last copy whose conv+BN pairs are folded
    (same scores up to rounding, ~45 % less CPU time for a VGG-BN classifier). With ``bf16``
    on a CPU with native bfloat16 (AMX / AVX512-BF16) the forwards run under bfloat16
    autocast (~2× less CPU time; the sums stay float32); elsewhere it is ignored.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    device = model_device(model, images.device)
    masks = generate_masks(tuple(images.shape[-2:]), n_masks, grid, p, seed, device)
    if mask_indices is None:
        index = torch.arange(n_masks)
    else:
        index = torch.as_tensor(mask_indices, dtype=torch.long).reshape(-1)
        if index.numel() and (index.min() < 0 or index.max() >= n_masks):
            raise ValueError(f"mask indices must lie in [0, {n_masks})")
    index = index.to(device)
    x_all = images.to(device=device, dtype=torch.float32)
    sums = torch.zeros(images.shape[0], *images.shape[-2:], device=device)
    step = max(1, int(batch))
    net = fold_batchnorm(model, channels_last=True) if fold_bn else model
    low = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and cpu_bf16(device))
    with eval_mode(net), torch.no_grad(), low:
        for b in range(x_all.shape[0]):
            x = x_all[b:b + 1]
            for start in range(0, index.numel(), step):
                m = masks[index[start:start + step]]                # [n, H, W]
                scores = torch.sigmoid(logits_of(net, x * m[:, None]).float())
                sums[b] += torch.tensordot(scores, m, dims=1)
    return sums


def cpu_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU that computes bfloat16 natively (oneDNN says so): there
    bf16 autocast halves RISE's time; on other CPUs it would be emulated, and slower."""
    if torch.device(device).type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def rise_saliency(model: nn.Module, images: torch.Tensor, *, n_masks: int = 4000,
                  grid: int = 8, p: float = 0.5, seed: int = 0, batch: int = 250,
                  fold_bn: bool = True, bf16: bool = False, rank: int = 0, world_size: int = 1,
                  all_reduce: Callable[[torch.Tensor], None] | None = None,
                  normalise: str = "expected") -> torch.Tensor:
    """RISE maps ``[B, H, W]`` in [0, 1] (on the model's device).

    ``normalise='expected'`` (default) divides by N·p, the paper's expected mask coverage;
    ``'coverage'`` divides each pixel by how often the masks actually revealed it, i.e. the mean
    score of the masks that show the pixel. With 250 masks the actual coverage varies over the
    image more than a weak classifier's scores do, and the paper's maps become that coverage
    pattern: on fold 0 of the real sample they correlate 0.99 between slices (0.59 with
    'coverage', whose plain positive seed overlap is 0.15 instead of 0.07).

    With ``world_size > 1`` this rank computes only its shard of masks and ``all_reduce``
    (in-place sum across ranks; default ``torch.distributed.all_reduce``) completes the sum, so
    every rank ends with the same maps as a single-rank run.
    """
    index = mask_shard(n_masks, rank, world_size) if world_size > 1 else None
    sums = rise_partial_sums(model, images, index, n_masks=n_masks, grid=grid, p=p, seed=seed,
                             batch=batch, fold_bn=fold_bn, bf16=bf16)
    if world_size > 1:
        if all_reduce is None:
            import torch.distributed as dist
            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError("world_size > 1 needs torch.distributed or an all_reduce")
            all_reduce = dist.all_reduce
        all_reduce(sums)
    if normalise == "coverage":
        masks = generate_masks(tuple(images.shape[-2:]), n_masks, grid, p, seed, sums.device)
        return minmax_per_image(sums / masks.sum(dim=0).clamp_min(1e-6))
    if normalise != "expected":
        raise ValueError(f"normalise must be 'coverage' or 'expected', got {normalise!r}")
    return minmax_per_image(sums / (n_masks * p))

"""Where and how a stage computes: device choice, torch.distributed ranks, seeding, AMP."""
from __future__ import annotations

import contextlib
import functools
import os
import random
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .config import RuntimeConfig
from .data.errors import InputError


def release_memory() -> bool:
    """Give freed heap back to the OS between the cases of a batch (issue 17). Every case
    allocates and frees a few hundred MB of same-sized arrays; glibc keeps the freed pages
    in its arenas, so without a trim the process's footprint creeps up over a long batch.
    Returns whether the C library could trim (glibc only; elsewhere only Python's gc runs)."""
    import gc

    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda was asked for but torch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise InputError(None, f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU,
    nccl on CUDA); a plain run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(local)
    return DistInfo(rank, world, local)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_backend(runtime: RuntimeConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = runtime.cudnn_benchmark


@contextlib.contextmanager
def autocast(runtime: RuntimeConfig, device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA for the paper profile; plain float32 otherwise."""
    if runtime.amp_bf16 and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def to_device(batch: np.ndarray | torch.Tensor, device: torch.device, runtime: RuntimeConfig
              ) -> torch.Tensor:
    tensor = torch.as_tensor(batch)
    if runtime.pin_memory and device.type == "cuda":
        tensor = tensor.pin_memory()
    tensor = tensor.to(device, non_blocking=True)
    if runtime.channels_last and tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def batches(indices: np.ndarray, batch_size: int, drop_last: bool = False
            ) -> Iterator[np.ndarray]:
    stop = len(indices) - (len(indices) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        chunk = indices[start:start + batch_size]
        if len(chunk):
            yield chunk

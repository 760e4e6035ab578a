"""Explainers selectable by name ("rise", "gradcampp"), built from ``SeedConfig``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from ..config import SeedConfig
from .gradcampp import gradcampp_saliency
from .rise import rise_saliency


class Explainer(Protocol):
    """Saliency of a one-logit model: images ``[B, C, H, W]`` → maps ``[B, H, W]`` in [0, 1]."""

    def __call__(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor: ...


ExplainerFactory = Callable[[SeedConfig], Explainer]
_FACTORIES: dict[str, ExplainerFactory] = {}


def register_explainer(name: str, factory: ExplainerFactory) -> None:
    """Add a seed source; ``factory(cfg)`` returns the configured explainer."""
    _FACTORIES[name] = factory


def available_explainers() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def get_explainer(name: str, cfg: SeedConfig | None = None) -> Explainer:
    """The explainer ``name`` configured from ``cfg`` (defaults: ``SeedConfig()``)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown seed source {name!r}; choose one of "
                         f"{list(available_explainers())}") from None
    return factory(cfg if cfg is not None else SeedConfig())


def configured_rise(model: nn.Module, images: torch.Tensor, cfg: SeedConfig, rank: int = 0,
                    world_size: int = 1) -> torch.Tensor:
    """RISE with every setting of ``cfg``: the seeds stage (sharded over ranks) and the
    registry's explainer share this one reading of the config."""
    return rise_saliency(model, images, n_masks=cfg.rise_masks, grid=cfg.rise_grid,
                         p=cfg.rise_p, seed=cfg.rise_seed, batch=cfg.rise_batch, rank=rank,
                         world_size=world_size, normalise=cfg.rise_normalise, bf16=cfg.rise_bf16)


def _rise(cfg: SeedConfig) -> Explainer:
    def explain(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return configured_rise(model, images, cfg)
    return explain


def _gradcampp(cfg: SeedConfig) -> Explainer:
    def explain(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return gradcampp_saliency(model, images)     # batch 32: backward memory, not RISE
    return explain


register_explainer("rise", _rise)
register_explainer("gradcampp", _gradcampp)

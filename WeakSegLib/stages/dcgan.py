"""Stage 3: a DCGAN on the FLAIR of healthy training slices (seed 000 §2.2.1, Pipeline row 3).

G learns to map unit-Gaussian codes to healthy FLAIR slices; the converter (stage 4) starts its
decoder from G and its encoder and new discriminator D' from D, so it begins in the space of
healthy anatomy. The adversarial pieces (D step, G loss, per-rank epoch seeding) live here and
the converter reuses them: it is the same game with a U-Net in G's place.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import GanConfig
from ..models.dcgan import BLOCKS, Discriminator, Generator
from ..models.weights import load_model, save_model
from .base import RunContext, Stage, run_epochs
from .common import (epoch_generator, even_shard, mean_records, seed_epoch, unwrap,
                     wrap_model)
from .figures import plot_history, slice_panels
from ..runtime import autocast, batches, to_device

#: Below this many healthy training slices the DCGAN also takes the validation set's.
MIN_HEALTHY = 8
#: G's (and the converter's) target for D(fake): the non-saturating generator loss.
GENERATOR_TARGET = 1.0
_SALT = 3            # epoch_generator salt: this stage's draws differ from other stages'
_SAMPLES = 16


# --------------------------------------------------------------------------- shared pieces
def adam(model: nn.Module, lr: float, beta1: float) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, 0.999))


def _probability(model: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
    with autocast(ctx.profile.runtime, ctx.device):
        return model(x).float().reshape(-1)


def _bce(prob: torch.Tensor, target: float) -> torch.Tensor:
    """BCE on D's sigmoid output, outside autocast (binary_cross_entropy is unsafe under it)."""
    return F.binary_cross_entropy(prob, torch.full_like(prob, target))


def discriminator_step(d: nn.Module, optimiser: torch.optim.Optimizer, real: torch.Tensor,
                       fake: torch.Tensor, cfg: GanConfig, ctx: RunContext) -> dict[str, float]:
    """One D update on a real and a generated batch of the same size, one-sided label smoothing
    (real ``cfg.real_label``, fake ``cfg.fake_label``). Each half is back-propagated right after
    its forward, so a DDP-wrapped D pairs every forward with a backward."""
    optimiser.zero_grad(set_to_none=True)
    p_real = _probability(d, real, ctx)
    loss_real = _bce(p_real, cfg.real_label)
    loss_real.backward()
    p_fake = _probability(d, fake.detach(), ctx)
    loss_fake = _bce(p_fake, cfg.fake_label)
    loss_fake.backward()
    optimiser.step()
    return {"d_loss": float(loss_real.detach() + loss_fake.detach()),
            "d_real": float(p_real.detach().mean()), "d_fake": float(p_fake.detach().mean())}


def generator_loss(d: nn.Module, fake: torch.Tensor, ctx: RunContext) -> torch.Tensor:
    """BCE of D(fake) against "real": rewards whatever produced ``fake`` for fooling D."""
    return _bce(_probability(d, fake, ctx), GENERATOR_TARGET)


# --------------------------------------------------------------------------- the DCGAN
def healthy_flair(ctx: RunContext, stage: str) -> np.ndarray:
    """FLAIR ``(N, 1, S, S)`` of training slices labelled healthy; with fewer than
    ``MIN_HEALTHY`` of them the validation set's are added (said in a log event)."""
    real = ctx.train.flair[ctx.train.labels == 0]
    if len(real) < MIN_HEALTHY:
        extra = ctx.val.flair[ctx.val.labels == 0] if len(ctx.val) else real[:0]
        ctx.events.log(f"{stage}: only {len(real)} healthy training slices (< {MIN_HEALTHY}); "
                       f"using every healthy slice available, {len(real) + len(extra)} with "
                       "the validation cases'", level="warning", stage=stage)
        real = np.concatenate([real, extra])
    if not len(real):
        raise ValueError(f"{stage}: no slice is labelled healthy (label 0), so there is nothing "
                         "to learn healthy anatomy from; add cases or slices without tumour")
    return np.ascontiguousarray(real[:, None], dtype=np.float32)


def build_gan(cfg: GanConfig, size: int) -> tuple[Generator, Discriminator]:
    """G and D for ``size`` px FLAIR slices at the profile's latent and widths."""
    if cfg.blocks != BLOCKS:
        raise ValueError(f"gan.blocks = {cfg.blocks}, but the DCGAN has exactly {BLOCKS} blocks")
    return (Generator(size, cfg.latent, cfg.width_divisor),
            Discriminator(size, in_channels=1, width_divisor=cfg.width_divisor))


def gan_step(g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, real: torch.Tensor, cfg: GanConfig,
             ctx: RunContext) -> dict[str, float]:
    """One D update then one G update (seed 000 eq. 1–3) on a batch of real healthy FLAIR."""
    z = torch.randn(real.shape[0], cfg.latent, device=real.device)
    with autocast(ctx.profile.runtime, ctx.device):
        fake = g(z).float()
    record = discriminator_step(d, opt_d, real, fake, cfg, ctx)
    loss = generator_loss(d, fake, ctx)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return {**record, "g_loss": float(loss.detach())}


def load_gan(run_dir: Path, device: torch.device) -> tuple[Generator, Discriminator]:
    """The trained G and D of a run folder (fresh copies, train mode)."""
    stage_dir = Path(run_dir) / DcganStage.name
    g, _ = load_model(stage_dir / "generator.pt", Generator.architecture, device)
    d, _ = load_model(stage_dir / "discriminator.pt", Discriminator.architecture, device)
    return g, d


class DcganStage(Stage):
    name = "dcgan"
    config_section = "gan"

    def run(self, ctx: RunContext) -> list[Path]:
        cfg, seed = ctx.profile.gan, ctx.profile.runtime.seed
        real = healthy_flair(ctx, self.name)
        torch.manual_seed(seed)
        g_raw, d_raw = build_gan(cfg, real.shape[-1])
        g, d = wrap_model(g_raw, ctx), wrap_model(d_raw, ctx)
        opt_g, opt_d = adam(g, cfg.lr, cfg.beta1), adam(d, cfg.lr, cfg.beta1)
        sched_g, sched_d = (torch.optim.lr_scheduler.StepLR(o, cfg.halve_every, gamma=0.5)
                            for o in (opt_g, opt_d))

        def one_epoch(epoch: int) -> dict[str, float]:
            seed_epoch(seed, epoch, ctx.dist)
            g.train()
            d.train()
            (order,) = even_shard(ctx.dist, epoch_generator(seed, epoch, _SALT)
                                  .permutation(len(real)))
            records = [gan_step(g, d, opt_g, opt_d,
                                to_device(real[chunk], ctx.device, ctx.profile.runtime), cfg, ctx)
                       for chunk in batches(order, cfg.batch_size,
                                            drop_last=len(order) > cfg.batch_size)]
            lr = opt_g.param_groups[0]["lr"]
            sched_g.step()
            sched_d.step()
            return {**mean_records(records), "lr": lr}

        history = run_epochs(ctx, self.name, cfg.epochs, cfg.time_budget_s,
                             {"generator": g, "discriminator": d, "opt_generator": opt_g,
                              "opt_discriminator": opt_d, "sched_generator": sched_g,
                              "sched_discriminator": sched_d}, one_epoch)
        if not ctx.dist.is_main:
            return []
        return self._write(ctx, unwrap(g), unwrap(d), real, history)

    def _write(self, ctx: RunContext, g: Generator, d: Discriminator, real: np.ndarray,
               history: list[dict[str, float]]) -> list[Path]:
        stage_dir = ctx.stage_dir(self.name)
        meta = {"stage": self.name, "epochs": len(history), "n_healthy": len(real)}
        paths = [save_model(stage_dir / "generator.pt", g, meta),
                 save_model(stage_dir / "discriminator.pt", d, meta)]
        paths.append(ctx.write_json(self.name, "metrics.json",
                                    {"n_healthy": len(real), "history": history}))
        paths.append(self._samples(ctx, g, real, stage_dir / "figures" / "samples.png"))
        paths.append(plot_history(history, ["d_loss", "g_loss", "d_real", "d_fake"],
                                  stage_dir / "figures" / "history.png",
                                  f"{self.name}: losses and D's mean output on real / generated"))
        return paths

    @staticmethod
    @torch.no_grad()
    def _samples(ctx: RunContext, g: Generator, real: np.ndarray, path: Path) -> Path:
        """16 samples of G (eval mode, fixed latents) on the left, 16 real healthy on the right."""
        g.eval()
        z = torch.randn(_SAMPLES, g.latent, generator=torch.Generator().manual_seed(0))
        fake = g(z.to(ctx.device)).float().cpu().numpy()[:, 0]
        shown = real[np.linspace(0, len(real) - 1, min(_SAMPLES, len(real))).astype(int), 0]
        side = int(np.sqrt(_SAMPLES))
        rows = []
        for r in range(side):
            row = {f"generated {c + 1}": fake[r * side + c] for c in range(side)}
            row.update({f"real {c + 1}": shown[(r * side + c) % len(shown)] for c in range(side)})
            rows.append({"image": fake[r * side], **row})
        columns = [(f"{kind} {c + 1}", "image") for kind in ("generated", "real")
                   for c in range(side)]
        return slice_panels(rows, columns, path, "DCGAN: 16 generated FLAIR slices (left) beside "
                            "16 real healthy ones (right)")

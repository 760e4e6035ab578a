"""Stage 4: the converter that turns a tumour slice's FLAIR into a healthy variant v
(seed 000 §2.2.2, Pipeline row 4).

A U-Net whose decoder is the DCGAN's G and whose encoder is D's first blocks is trained on true-
positive tumour slices with 100·L1(x, v on negative seeds) + 1·BCE(D'(v), real) + 1·KL(μ, σ),
against a new discriminator D' (started from D) that sees healthy FLAIR as real. The segmenters
later compare x with v: where they differ is where the tumour was. Healthy slices get v = x.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ConverterConfig
from ..data.slices import SliceSet
from ..models.dcgan import Discriminator, Generator
from ..models.unet import UNet, UNetOutput
from ..models.weights import load_model, save_model
from .base import RunContext, Stage, run_epochs
from .run_folder import load_seeds, load_train_scores, write_case_arrays
from .common import (epoch_generator, even_shard, mean_records, seed_epoch, unwrap,
                     wrap_model)
from .dcgan import adam, discriminator_step, generator_loss, healthy_flair, load_gan
from .figures import seed_codes, slice_panels
from ..runtime import autocast, batches, to_device

_SALT = 4            # epoch_generator salt of this stage
_FIGURE_ROWS = 6


# --------------------------------------------------------------------------- training
def select_training_slices(labels: np.ndarray, scores: np.ndarray, negative: np.ndarray,
                           cfg: ConverterConfig) -> tuple[np.ndarray, dict[str, int]]:
    """Seed 000 §2.2.2: true-positive tumour slices (their seeds are trustworthy) whose negative
    seed leaves enough of the slice (< ``max_negative_fraction``) for D' to judge."""
    tumour = np.asarray(labels) == 1
    true_positive = tumour & (np.asarray(scores) >= cfg.min_classifier_score)
    fraction = negative.reshape(len(negative), -1).mean(axis=1)
    keep = true_positive & (fraction < cfg.max_negative_fraction)
    counts = {"n_tumour": int(tumour.sum()), "n_true_positive": int(true_positive.sum()),
              "n_selected": int(keep.sum())}
    return np.flatnonzero(keep), counts


class FullOutput(nn.Module):
    """Calls ``UNet.forward_full`` as its forward, so DDP sees μ and log σ² (the KL) too."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> UNetOutput:
        return self.unet.forward_full(x)


def build_converter(generator: Generator, discriminator: Discriminator) -> UNet:
    """FLAIR → healthy FLAIR U-Net at G's size, latent and widths, started from the DCGAN."""
    kwargs = generator.arch_kwargs
    unet = UNet(size=kwargs["size"], in_channels=1, out_channels=1, latent=kwargs["latent"],
                width_divisor=kwargs["width_divisor"], out_activation="sigmoid")
    unet.init_from_dcgan(generator, discriminator)
    return unet


def negative_l1(x: torch.Tensor, v: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean |x − v| over the negative-seed pixels of the batch: keep what is surely not tumour."""
    return ((x - v).abs() * negative).sum() / negative.sum().clamp_min(1.0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The VAE's KL(N(μ, σ²) ‖ N(0, 1)), summed over the code, averaged over the batch: keeps
    the codes where G was trained."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def converter_step(model: nn.Module, d: nn.Module, opt_model: torch.optim.Optimizer,
                   opt_d: torch.optim.Optimizer, x: torch.Tensor, negative: torch.Tensor,
                   real: torch.Tensor, ctx: RunContext) -> dict[str, float]:
    """One D' update (healthy ``real`` vs v) then one U-Net update; ``model`` returns a
    ``UNetOutput`` (a ``FullOutput``, possibly DDP-wrapped)."""
    cfg, gan = ctx.profile.converter, ctx.profile.gan
    with autocast(ctx.profile.runtime, ctx.device):
        out = model(x)
    v = out.image.float()
    record = discriminator_step(d, opt_d, real, v.detach(), gan, ctx)
    l1 = negative_l1(x, v, negative)
    adversarial = generator_loss(d, v, ctx)
    kl = kl_divergence(out.mu.float(), out.logvar.float())
    loss = cfg.l1_weight * l1 + cfg.adversarial_weight * adversarial + cfg.kl_weight * kl
    opt_model.zero_grad(set_to_none=True)
    loss.backward()
    opt_model.step()
    return {"loss": float(loss.detach()), "l1": float(l1.detach()),
            "adversarial": float(adversarial.detach()), "kl": float(kl.detach()), **record}


@torch.no_grad()
def healthy_variants(unet: UNet, data: SliceSet, ctx: RunContext, batch_size: int = 64
                     ) -> np.ndarray:
    """v for every slice of ``data`` (eval mode: μ, not a sample); v = x where labelled healthy."""
    was_training = unet.training
    unet.eval()
    variants = data.flair.astype(np.float32, copy=True)
    for chunk in batches(np.flatnonzero(data.labels == 1), batch_size):
        x = to_device(variants[chunk, None], ctx.device, ctx.profile.runtime)
        with autocast(ctx.profile.runtime, ctx.device):
            variants[chunk] = unet(x).float()[:, 0].cpu().numpy()
    unet.train(was_training)
    return variants


def load_converter(run_dir: Path, device: torch.device) -> UNet:
    model, _ = load_model(Path(run_dir) / ConverterStage.name / "model.pt", UNet.architecture,
                          device)
    return model.eval()


def difference_inside_outside(data: SliceSet, variants: np.ndarray) -> dict[str, float] | None:
    """Mean |x − v| on tumour-labelled slices inside the true mask vs in the brain outside it:
    large inside and small outside means the tumour went and the anatomy stayed. A flat grey v
    also scores "large inside" (tumour is bright), so the correlation of x and v in the brain
    outside the mask says whether the anatomy really stayed (near 1) or was lost (near 0)."""
    tumour = data.labels == 1
    if data.masks is None or not tumour.any():
        return None
    x, v = data.flair[tumour], variants[tumour]
    diff = np.abs(x - v)
    inside = data.masks[tumour].astype(bool)
    brain = (x > 0) & ~inside

    def mean(where: np.ndarray) -> float:
        return float(diff[where].mean()) if where.any() else float("nan")

    valid = brain.sum() > 1 and x[brain].std() > 0 and v[brain].std() > 0
    correlation = float(np.corrcoef(x[brain], v[brain])[0, 1]) if valid else float("nan")
    return {"n_slices": int(tumour.sum()), "inside_mask": mean(inside),
            "outside_mask_brain": mean(brain), "outside_mask_all": mean(~inside),
            "outside_mask_brain_correlation": correlation}


class ConverterStage(Stage):
    name = "converter"
    config_section = "converter"
    requires = ("classifier", "seeds", "dcgan")

    def run(self, ctx: RunContext) -> list[Path]:
        cfg, seed = ctx.profile.converter, ctx.profile.runtime.seed
        data = ctx.train
        seeds = load_seeds(ctx.run_dir, data)
        train_idx, counts = self._training_slices(ctx, seeds["negative"])
        healthy = healthy_flair(ctx, self.name)
        torch.manual_seed(seed)
        generator, discriminator = load_gan(ctx.run_dir, ctx.device)
        model = wrap_model(FullOutput(build_converter(generator, discriminator)), ctx)
        d = wrap_model(discriminator, ctx)          # D' starts as a copy of D
        opt_model, opt_d = adam(model, cfg.lr, cfg.beta1), adam(d, cfg.lr, cfg.beta1)
        flair, negative = data.flair, seeds["negative"]
        runtime = ctx.profile.runtime

        def one_epoch(epoch: int) -> dict[str, float]:
            seed_epoch(seed, epoch, ctx.dist)
            model.train()
            d.train()
            rng = epoch_generator(seed, epoch, _SALT)
            order = rng.permutation(train_idx)
            order, partner = even_shard(ctx.dist, order,
                                        rng.integers(len(healthy), size=len(order)))
            records = []
            for pos in batches(np.arange(len(order)), cfg.batch_size,
                               drop_last=len(order) > cfg.batch_size):
                rows = order[pos]
                x = to_device(flair[rows, None], ctx.device, runtime)
                neg = to_device(negative[rows, None].astype(np.float32), ctx.device, runtime)
                real = to_device(healthy[partner[pos]], ctx.device, runtime)
                records.append(converter_step(model, d, opt_model, opt_d, x, neg, real, ctx))
            return mean_records(records)

        history = run_epochs(ctx, self.name, cfg.epochs, cfg.time_budget_s,
                             {"model": model, "discriminator": d, "opt_model": opt_model,
                              "opt_discriminator": opt_d}, one_epoch)
        if not ctx.dist.is_main:
            return []
        return self._write(ctx, unwrap(model).unet, seeds, train_idx,
                           {**counts, "history": history})

    def _training_slices(self, ctx: RunContext, negative: np.ndarray
                         ) -> tuple[np.ndarray, dict[str, int]]:
        data, cfg = ctx.train, ctx.profile.converter
        scores = load_train_scores(ctx.run_dir, data)
        train_idx, counts = select_training_slices(data.labels, scores, negative, cfg)
        if not len(train_idx):
            train_idx = np.flatnonzero(data.labels == 1)
            if not len(train_idx):
                raise ValueError(f"{self.name}: no training slice is labelled tumour, so there "
                                 "is nothing to convert; add cases with tumour slices")
            ctx.events.log(f"{self.name}: no true-positive tumour slice with a negative seed "
                           f"under {cfg.max_negative_fraction:.0%} of the slice ({counts}); "
                           f"training on all {len(train_idx)} tumour slices instead",
                           level="warning", stage=self.name)
        counts["n_train_slices"] = len(train_idx)
        for key, value in counts.items():
            ctx.events.metric(self.name, key, value)
        return train_idx, counts

    def _write(self, ctx: RunContext, unet: UNet, seeds: dict[str, np.ndarray],
               train_idx: np.ndarray, metrics: dict) -> list[Path]:
        stage_dir = ctx.stage_dir(self.name)
        paths = [save_model(stage_dir / "model.pt", unet,
                            {"stage": self.name, "epochs": len(metrics["history"]),
                             "channels": ["flair"], "n_train_slices": metrics["n_train_slices"]})]
        variants = {}
        for split, data in (("train", ctx.train), ("val", ctx.val)):
            variants[split] = healthy_variants(unet, data, ctx)
            paths += write_case_arrays(ctx.run_dir / "variants", data,
                                       {"variant": variants[split].astype(np.float16)})
            difference = difference_inside_outside(data, variants[split])
            if difference is not None:
                metrics[f"{split}_abs_difference"] = difference
                for key in ("inside_mask", "outside_mask_brain", "outside_mask_brain_correlation"):
                    ctx.events.metric(self.name, f"{split}_abs_difference_{key}", difference[key])
        paths.append(ctx.write_json(self.name, "metrics.json", metrics))
        paths.append(self._figure(ctx, seeds, variants["train"], train_idx,
                                  stage_dir / "figures" / "variants.png"))
        return paths

    @staticmethod
    def _figure(ctx: RunContext, seeds: dict[str, np.ndarray], variants: np.ndarray,
                train_idx: np.ndarray, path: Path) -> Path:
        """Seed 000 Fig. 4 style: image, saliency, seeds, healthy variant, |image − variant|."""
        data = ctx.train
        picks = train_idx[np.linspace(0, len(train_idx) - 1,
                                      min(_FIGURE_ROWS, len(train_idx))).astype(int)]
        rows = []
        for i in picks:
            row = {"image": data.flair[i], "saliency": seeds["saliency"][i],
                   "seeds": seed_codes(seeds["positive"][i], seeds["negative"][i]),
                   "healthy variant": variants[i],
                   "|image - variant|": np.abs(data.flair[i] - variants[i])}
            if data.masks is not None:
                row["truth"] = data.masks[i]
            rows.append(row)
        columns = [("image", "image"), ("saliency", "map"), ("seeds", "seeds"),
                   ("healthy variant", "image"), ("|image - variant|", "map")]
        titles = [f"{data.case_name(i)} z={data.slice_index[i]}" for i in picks]
        return slice_panels(rows, columns, path, "converter: tumour slices, saliency, seeds "
                            "(positive red, negative blue), healthy variant, |difference| "
                            "(truth in green)", titles)

"""Stage 1: the slice classifier (VGG16-BN) that everything downstream explains or queries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..evaluation.metrics import classifier_metrics
from ..models.classifier import VGG16BNClassifier
from ..models.weights import load_model, save_model
from .base import RunContext, Stage, run_epochs
from .augment import augment
from .common import (BestScore, balanced_indices, epoch_generator, predict_scores,
                     recalibrate_batchnorm, shard, unwrap, wrap_model)
from .figures import plot_history
from ..runtime import autocast, batches, to_device


def build_classifier(ctx: RunContext) -> VGG16BNClassifier:
    cfg = ctx.profile.classifier
    return VGG16BNClassifier(in_channels=len(ctx.train.channels), width_divisor=cfg.width_divisor,
                             upsample=cfg.upsample, pool=cfg.pool)


def load_classifier(run_dir: Path, device: torch.device) -> VGG16BNClassifier:
    model, _ = load_model(run_dir / ClassifierStage.name / "model.pt",
                          VGG16BNClassifier.architecture, device)
    return model.eval()


class ClassifierStage(Stage):
    name = "classifier"
    config_section = "classifier"

    def run(self, ctx: RunContext) -> list[Path]:
        cfg, seed = ctx.profile.classifier, ctx.profile.runtime.seed
        torch.manual_seed(seed)
        model = wrap_model(build_classifier(ctx), ctx)
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                      betas=cfg.betas)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        loss_fn = nn.BCEWithLogitsLoss()
        best_path = ctx.stage_dir(self.name) / "model.pt"
        val = ctx.val if len(ctx.val) else ctx.train
        best = BestScore()

        def one_epoch(epoch: int) -> dict[str, float]:
            torch.manual_seed(seed + epoch)
            model.train()
            order = shard(balanced_indices(ctx.train.labels, epoch_generator(seed, epoch)),
                          ctx.dist)
            losses = []
            rng = epoch_generator(seed, epoch, salt=1 + ctx.dist.rank)
            for chunk in batches(order, cfg.batch_size, drop_last=len(order) > cfg.batch_size):
                x = to_device(ctx.train.images[chunk], ctx.device, ctx.profile.runtime)
                if cfg.augment:
                    x, _ = augment(x, [], rng, cfg.affine_degrees, cfg.affine_scale,
                                   cfg.affine_translate, cfg.intensity_jitter, cfg.gamma)
                y = torch.as_tensor(ctx.train.labels[chunk], dtype=torch.float32,
                                    device=ctx.device)
                with autocast(ctx.profile.runtime, ctx.device):
                    loss = loss_fn(model(x).float().reshape(-1), y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            recalibrate_batchnorm(unwrap(model), ctx.train.images[order], ctx)
            scores = predict_scores(model, val.images, ctx)
            metrics = classifier_metrics(val.labels, scores)
            auc = metrics["auc"] if np.isfinite(metrics["auc"]) else 0.0
            scheduler.step(auc)
            if best.improves(auc) and ctx.dist.is_main:
                save_model(best_path, unwrap(model), {"stage": self.name, "epoch": epoch + 1,
                                                       "channels": ctx.train.channels,
                                                       "val_auc": auc})
            return {"loss": float(np.mean(losses)), "val_auc": auc,
                    "val_sensitivity": metrics["sensitivity"],
                    "val_specificity": metrics["specificity"],
                    "lr": optimiser.param_groups[0]["lr"]}

        history = run_epochs(ctx, self.name, cfg.epochs, cfg.time_budget_s,
                             {"model": model, "optimiser": optimiser, "scheduler": scheduler,
                              "best": best},
                             one_epoch)
        return self._finish(ctx, history)

    def _finish(self, ctx: RunContext, history: list[dict[str, float]]) -> list[Path]:
        if not ctx.dist.is_main:
            return []
        stage_dir = ctx.stage_dir(self.name)
        model = load_classifier(ctx.run_dir, ctx.device)
        scores = {split: predict_scores(model, data.images, ctx)
                  for split, data in (("train", ctx.train), ("val", ctx.val))}
        np.savez_compressed(stage_dir / "scores.npz", **scores)
        metrics = {split: classifier_metrics(data.labels, scores[split])
                   for split, data in (("train", ctx.train), ("val", ctx.val)) if len(data)}
        for split, values in metrics.items():
            for name in ("auc", "sensitivity", "specificity"):
                ctx.events.metric(self.name, f"{split}_{name}", values[name])
        metrics_path = ctx.write_json(self.name, "metrics.json",
                                      {"best": metrics, "history": history})
        figure = plot_history(history, ["loss", "val_auc"], stage_dir / "figures" / "history.png",
                              f"{self.name}: training loss and validation AUC")
        return [stage_dir / "model.pt", stage_dir / "scores.npz", metrics_path, figure]

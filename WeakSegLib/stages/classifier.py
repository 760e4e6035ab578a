"""Stage 1: the slice classifier (VGG16-BN) that everything downstream explains or queries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

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


def averaging_start(epochs: int, average_last: float | None) -> int | None:
    """The first epoch (0-based) whose weights join the average, or None for no averaging."""
    if average_last is None:
        return None
    if not 0 < average_last <= 1:
        raise ValueError(f"classifier.average_last {average_last}: must lie in (0, 1] or None")
    return max(0, epochs - max(1, int(round(average_last * epochs))))


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
        scheduler = None if cfg.plateau_patience is None else \
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimiser, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        loss_fn = nn.BCEWithLogitsLoss()
        best_path = ctx.stage_dir(self.name) / "model.pt"
        val = ctx.val if len(ctx.val) else ctx.train
        if cfg.train_on_validation and cfg.average_last is None:
            raise ValueError("classifier.train_on_validation needs classifier.average_last: "
                             "without weight averaging the validation patients select the epoch")
        fit = ctx.train.joined(ctx.val) if cfg.train_on_validation and len(ctx.val) else ctx.train
        best = BestScore()
        average_from = averaging_start(cfg.epochs, cfg.average_last)
        average = AveragedModel(unwrap(model)) if average_from is not None else None

        def one_epoch(epoch: int) -> dict[str, float]:
            torch.manual_seed(seed + epoch)
            model.train()
            order = shard(balanced_indices(fit.labels, epoch_generator(seed, epoch)),
                          ctx.dist)
            losses = []
            rng = epoch_generator(seed, epoch, salt=1 + ctx.dist.rank)
            for chunk in batches(order, cfg.batch_size, drop_last=len(order) > cfg.batch_size):
                x = to_device(fit.images[chunk], ctx.device, ctx.profile.runtime)
                if cfg.augment:
                    x, _ = augment(x, [], rng, cfg.affine_degrees, cfg.affine_scale,
                                   cfg.affine_translate, cfg.intensity_jitter, cfg.gamma)
                y = torch.as_tensor(fit.labels[chunk], dtype=torch.float32,
                                    device=ctx.device)
                with autocast(ctx.profile.runtime, ctx.device):
                    loss = loss_fn(model(x).float().reshape(-1), y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            recalibrate_batchnorm(unwrap(model), fit.images[order], ctx)
            scores = predict_scores(model, val.images, ctx)
            metrics = classifier_metrics(val.labels, scores)
            auc = metrics["auc"] if np.isfinite(metrics["auc"]) else 0.0
            if scheduler is not None:
                scheduler.step(auc)
            if average is not None and epoch >= average_from:
                average.update_parameters(unwrap(model))
            if best.improves(auc) and ctx.dist.is_main:
                save_model(best_path, unwrap(model), {"stage": self.name, "epoch": epoch + 1,
                                                       "channels": ctx.train.channels,
                                                       "val_auc": auc})
            return {"loss": float(np.mean(losses)), "val_auc": auc,
                    "val_sensitivity": metrics["sensitivity"],
                    "val_specificity": metrics["specificity"],
                    "lr": optimiser.param_groups[0]["lr"]}

        states = {"model": model, "optimiser": optimiser, "best": best,
                  **({"scheduler": scheduler} if scheduler is not None else {}),
                  **({"average": average} if average is not None else {})}
        history = run_epochs(ctx, self.name, cfg.epochs, cfg.time_budget_s, states, one_epoch)
        if average is not None and int(average.n_averaged) > 0 and ctx.dist.is_main:
            # the average replaces the best epoch; a budget spent before averaging began
            # leaves the best epoch in place
            averaged = average.module
            balanced = balanced_indices(fit.labels, epoch_generator(seed, len(history)))
            recalibrate_batchnorm(averaged, fit.images[balanced], ctx)
            save_model(best_path, averaged, {"stage": self.name, "epoch": len(history),
                                             "channels": ctx.train.channels,
                                             "averaged_epochs": int(average.n_averaged)})
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

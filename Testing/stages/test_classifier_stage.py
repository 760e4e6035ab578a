"""Stage 1: a training step lowers the loss; the stage writes its artefacts and loads back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from WeakSegLib.config import apply_overrides, get_profile
from WeakSegLib.data.slices import SliceSet
from WeakSegLib.stages.base import RunContext
from WeakSegLib.stages.classifier import ClassifierStage, build_classifier, load_classifier


def toy_slices(n: int = 32, size: int = 64, seed: int = 0) -> SliceSet:
    """Noise slices; tumour ones carry a bright square somewhere."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 0.4, (n, 2, size, size)).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(4, size - 16, 2)
        images[i, 0, y:y + 12, x:x + 12] = 0.95
        masks[i, y:y + 12, x:x + 12] = 1
    return SliceSet(images, labels, np.arange(n) % 4, np.arange(n), ["a", "b", "c", "d"],
                    ["flair", "t1"], masks)


def tiny_context(tmp_path: Path, *overrides: str) -> RunContext:
    profile = apply_overrides(get_profile("fast"), ["classifier.time_budget_s=none",
                                                    "classifier.batch_size=8", *overrides])
    data = toy_slices()
    return RunContext(tmp_path, profile, torch.device("cpu"), data.for_cases(["a", "b", "c"]),
                      data.for_cases(["d"]), show_progress=False)


def test_one_step_lowers_the_loss(tmp_path: Path) -> None:
    ctx = tiny_context(tmp_path)
    torch.manual_seed(0)
    model = build_classifier(ctx)
    x = torch.as_tensor(ctx.train.images[:16])
    y = torch.as_tensor(ctx.train.labels[:16], dtype=torch.float32)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    losses = []
    for _ in range(3):
        loss = loss_fn(model(x).reshape(-1), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_stage_writes_artefacts_and_learns_the_toy_task(tmp_path: Path) -> None:
    ctx = tiny_context(tmp_path, "classifier.epochs=6", "classifier.lr=0.001")
    artefacts = ClassifierStage().run(ctx)
    names = {p.relative_to(tmp_path).as_posix() for p in artefacts}
    assert {"classifier/model.pt", "classifier/scores.npz", "classifier/metrics.json",
            "classifier/figures/history.png"} <= names
    model = load_classifier(tmp_path, torch.device("cpu"))
    with np.load(tmp_path / "classifier" / "scores.npz") as scores:
        assert scores["train"].shape == (len(ctx.train),)
        train_scores = scores["train"]
    # a bright square is easy: the saved (best) classifier ranks tumour slices first
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(ctx.train.labels, train_scores) > 0.8
    assert isinstance(model, torch.nn.Module) and not model.training


def _killed(*_args) -> None:
    raise KeyboardInterrupt


def replace_epochs(ctx: RunContext, epochs: int) -> RunContext:
    """The context with ``classifier.epochs`` changed (the averaging start stays 3 for 5 and 6)."""
    from dataclasses import replace
    profile = replace(ctx.profile, classifier=replace(ctx.profile.classifier, epochs=epochs))
    return replace(ctx, profile=profile)


def test_averaged_weights_are_saved_and_resume_keeps_the_average(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the last half of 6 epochs (4, 5, 6) averaged, no plateau schedule
    overrides = ("classifier.epochs=6", "classifier.lr=0.001", "classifier.average_last=0.5",
                 "classifier.plateau_patience=none")
    ctx = tiny_context(tmp_path / "whole", *overrides)
    ClassifierStage().run(ctx)
    whole = torch.load(tmp_path / "whole" / "classifier" / "model.pt", weights_only=True)
    assert whole["metadata"]["averaged_epochs"] == 3
    with np.load(tmp_path / "whole" / "classifier" / "scores.npz") as scores:
        from sklearn.metrics import roc_auc_score
        assert roc_auc_score(ctx.train.labels, scores["train"]) > 0.8
    from WeakSegLib.stages.classifier import averaging_start
    assert averaging_start(6, 0.5) == 3 and averaging_start(6, None) is None
    with pytest.raises(ValueError, match="average_last"):
        averaging_start(6, 1.5)
    # killed after epoch 5 (the stage never finished), resumed: the average carries on
    killed = tiny_context(tmp_path / "split", *overrides)
    with monkeypatch.context() as patch:
        patch.setattr(ClassifierStage, "_finish", _killed)
        with pytest.raises(KeyboardInterrupt):
            ClassifierStage().run(replace_epochs(killed, 5))
    ClassifierStage().run(tiny_context(tmp_path / "split", *overrides))
    split = torch.load(tmp_path / "split" / "classifier" / "model.pt", weights_only=True)
    assert split["metadata"]["averaged_epochs"] == 3
    for name, value in whole["state_dict"].items():
        assert torch.allclose(value.float(), split["state_dict"][name].float(), atol=1e-5), name


def test_training_on_the_validation_patients_puts_their_slices_in_the_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """classifier.train_on_validation: every epoch's balanced draw is over the training and the
    validation patients' slices; off, over the training patients' only."""
    import WeakSegLib.stages.classifier as stage

    drawn: list[int] = []
    real = stage.balanced_indices
    monkeypatch.setattr(stage, "balanced_indices",
                        lambda labels, rng: drawn.append(len(labels)) or real(labels, rng))
    for flag in ("false", "true"):
        drawn.clear()
        ctx = tiny_context(tmp_path / flag, "classifier.epochs=2",
                           f"classifier.train_on_validation={flag}")
        ClassifierStage().run(ctx)
        expected = len(ctx.train) + (len(ctx.val) if flag == "true" else 0)
        assert drawn and set(drawn) == {expected}


def test_training_on_the_validation_patients_needs_weight_averaging(tmp_path: Path) -> None:
    ctx = tiny_context(tmp_path, "classifier.average_last=none",
                       "classifier.train_on_validation=true")
    with pytest.raises(ValueError, match="average_last"):
        ClassifierStage().run(ctx)

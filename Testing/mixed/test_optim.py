"""The thesis's optimiser (§2.2.3.2): SGD with momentum on the normalised summed gradient, and
the plateau-halving learning rate (α_init 0.25, α_min 0.001, F, d_loss 0.98)."""
from __future__ import annotations

import pytest
import torch

from WeakSegLib.mixed.optim import NormalisedSGD, PlateauHalving


def test_normalised_step_by_hand() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = NormalisedSGD([p], lr=0.25, momentum=0.9)
    p.grad = torch.tensor([3.0, 4.0])               # ‖g‖ = 5, g/‖g‖ = (0.6, 0.8)
    assert float(opt.step()) == pytest.approx(5.0)
    assert torch.allclose(p.data, torch.tensor([1 - 0.25 * 0.6, 2 - 0.25 * 0.8]))   # v = −α ĝ
    p.grad = torch.tensor([30.0, 40.0])             # 10× the gradient: the same step
    opt.step()                                      # v = 0.9·(−0.15, −0.2) − (0.15, 0.2)
    assert torch.allclose(p.data, torch.tensor([0.85 - 0.285, 1.8 - 0.38]))


def test_norm_is_over_all_parameters_and_summed_batches() -> None:
    a = torch.nn.Parameter(torch.tensor([0.0]))
    b = torch.nn.Parameter(torch.tensor([0.0]))
    opt = NormalisedSGD([a, b], lr=1.0, momentum=0.0)
    for x in (1.0, 2.0):                 # two "batches": gradients add up to (3, 12)
        (x * a + 4 * x * b).sum().backward()
    opt.step()
    norm = (3.0 ** 2 + 12.0 ** 2) ** 0.5
    assert float(a.detach()) == pytest.approx(-3.0 / norm)
    assert float(b.detach()) == pytest.approx(-12.0 / norm)


def test_zero_gradient_changes_nothing() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = NormalisedSGD([p])
    p.grad = torch.zeros(1)
    opt.step()
    assert float(p.detach()) == 1.0


def test_plateau_halving_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = NormalisedSGD([p], lr=1.0)
    schedule = PlateauHalving(opt, initial=0.25, minimum=0.1, period=4, threshold=0.98)
    assert opt.param_groups[0]["lr"] == 0.25          # the schedule sets α_init
    for loss in (10, 10, 10):                         # no check before F iterations
        assert schedule.step(loss) == 0.25
    assert schedule.step(10) == 0.125                 # flat: 10 > 0.98·10 → halve
    assert opt.param_groups[0]["lr"] == 0.125
    for loss in (10, 10, 10, 9.9):                    # −0.5 % < 2 %: halve, 2nd time in a row
        lr = schedule.step(loss)
    assert lr == 0.1 and schedule.period == 8         # floor α_min; F doubled
    for loss in (9, 8, 7, 6, 5, 4, 3, 2):             # falling fast: no change
        assert schedule.step(loss) == 0.1
    state = schedule.state_dict()
    restored = PlateauHalving(NormalisedSGD([p]), 0.25, 0.001, 200, 0.5)
    restored.load_state_dict(state)
    assert restored.state_dict() == state and restored.optimizer.param_groups[0]["lr"] == 0.1


def test_halving_needs_the_threshold() -> None:
    schedule = PlateauHalving(NormalisedSGD([torch.nn.Parameter(torch.zeros(1))]),
                              0.25, 0.001, period=2, threshold=0.98)
    schedule.step(10.0)
    assert schedule.step(9.7) == 0.25                 # 9.7 < 0.98·10: a 3 % decrease is enough
    schedule.step(9.7)
    assert schedule.step(9.6) == 0.125                # 9.6 > 0.98·9.7

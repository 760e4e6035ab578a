"""The training algorithm of the thesis (§2.2.3.2), also used by seed 001.

``NormalisedSGD``: SGD with momentum on the gradient divided by its norm (one norm over all
parameters), v ← μ·v − α·g/‖g‖, θ ← θ + v. The gradient g is the sum of the gradients of several
batches: call ``backward()`` once per batch before ``step()``, without dividing.

``PlateauHalving``: α starts at α_init; every F iterations the mean loss of the last F/2
iterations is compared with the mean of the F/2 before; if it is above d_loss × that, α ←
max(α / 2, α_min). Two such insufficient decreases in a row double F (the loss is expected to
fall more slowly as training goes on). Thesis values: α_init 0.25, α_min 0.001, F 200,
d_loss 0.98.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch


class NormalisedSGD(torch.optim.Optimizer):
    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
                 lr: float = 0.25, momentum: float = 0.9) -> None:
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, "
                             f"momentum={momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure: Any = None) -> torch.Tensor:  # type: ignore[override]
        """One update; returns the gradient norm (0 when nothing was updated)."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return torch.tensor(0.0)
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        if not torch.isfinite(norm) or norm == 0:
            return norm.new_zeros(())     # a zero or broken gradient: no direction to take
        for group in self.param_groups:
            scale = -group["lr"] / norm
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                velocity = state["velocity"]
                velocity.mul_(group["momentum"]).add_(p.grad * scale.to(p.dtype))
                p.add_(velocity)
        return norm


class PlateauHalving:
    def __init__(self, optimizer: torch.optim.Optimizer, initial: float = 0.25,
                 minimum: float = 0.001, period: int = 200, threshold: float = 0.98) -> None:
        if period < 2:
            raise ValueError(f"the check period F must be at least 2 iterations, got {period}")
        self.optimizer = optimizer
        self.lr, self.minimum, self.period, self.threshold = initial, minimum, period, threshold
        self.window: list[float] = []     # the last ``period`` iteration losses
        self.since_check = 0
        self.strikes = 0                  # insufficient decreases in a row
        self.halvings = 0
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def step(self, loss: float) -> float:
        """Record one iteration's loss; returns the learning rate for the next iteration."""
        self.window.append(float(loss))
        del self.window[:-self.period]
        self.since_check += 1
        if self.since_check >= self.period and len(self.window) >= self.period:
            self.since_check = 0
            half = self.period // 2
            previous = sum(self.window[-2 * half:-half]) / half
            current = sum(self.window[-half:]) / half
            if current > self.threshold * previous:
                self.lr = max(self.lr / 2, self.minimum)
                self.halvings += 1
                self.strikes += 1
                if self.strikes == 2:
                    self.period *= 2
                    self.strikes = 0
            else:
                self.strikes = 0
            self._apply()
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "minimum": self.minimum, "period": self.period,
                "threshold": self.threshold, "window": list(self.window),
                "since_check": self.since_check, "strikes": self.strikes,
                "halvings": self.halvings}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.minimum = float(state["lr"]), float(state["minimum"])
        self.period, self.threshold = int(state["period"]), float(state["threshold"])
        self.window = [float(v) for v in state["window"]]
        self.since_check, self.strikes = int(state["since_check"]), int(state["strikes"])
        self.halvings = int(state["halvings"])
        self._apply()

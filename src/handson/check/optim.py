"""Checkers for the exercises of chapter 2, *Optimization*."""
from __future__ import annotations

import math

import torch

from . import _say, close, function_matches


# --------------------------------------------------------------------------- references

def reference_momentum_step(theta, v, grad, lr, beta):
    """One step of SGD with momentum as PyTorch does it: ``v <- beta v + g``, ``theta <- theta - lr v``."""
    v = beta * v + grad
    return theta - lr * v, v


def reference_adam_step(theta, m, s, grad, t, lr, beta1, beta2, eps):
    """One bias-corrected Adam step at step number ``t`` (1 for the first step)."""
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    m_hat = m / (1 - beta1 ** t)
    s_hat = s / (1 - beta2 ** t)
    return theta - lr * m_hat / (s_hat.sqrt() + eps), m, s


def reference_budget_schedule(step, epochs=5, steps_per_epoch=120, peak_lr=0.1, warmup_frac=0.06):
    """Linear warmup over ``warmup_frac`` of the budget, then cosine decay to 0 at the last step."""
    total = epochs * steps_per_epoch
    warmup = round(warmup_frac * total)
    if step < warmup:
        return peak_lr * step / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- checkers

def gd_step(answer, theta0: float = 0.0, lr: float = 0.25, target: float = 3.0) -> bool:
    """One gradient-descent step on ``J(theta) = (theta - target)**2`` from ``theta0``."""
    expected = theta0 - lr * 2 * (theta0 - target)
    return close(answer, expected, atol=1e-9, label="one GD step",
                 hint="the gradient of (theta - target)^2 is 2 (theta - target); "
                      "the new theta is theta0 - lr * gradient")


def momentum_step(your_fn) -> bool:
    """``your_fn(theta, v, grad, lr, beta) -> (new_theta, new_v)``, PyTorch's momentum update."""
    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        shape = (3 + trial, 2)
        v = torch.zeros(shape, dtype=torch.float64) if trial == 0 else \
            torch.randn(shape, generator=g, dtype=torch.float64)
        return (torch.randn(shape, generator=g, dtype=torch.float64), v,
                torch.randn(shape, generator=g, dtype=torch.float64), 0.05 * (trial + 1), 0.9)

    return function_matches(your_fn, reference_momentum_step, make, rtol=1e-9, atol=1e-12,
                            label="momentum_step",
                            hint="update the velocity first, v = beta * v + grad (no (1 - beta) factor), "
                                 "then theta = theta - lr * v; return (theta, v)")


def adam_step(your_fn) -> bool:
    """``your_fn(theta, m, s, grad, t, lr, beta1, beta2, eps) -> (theta, m, s)`` with bias correction."""
    def make(trial):
        g = torch.Generator().manual_seed(200 + trial)
        shape = (4, 1 + trial)
        t = [1, 2, 10, 3, 100][trial % 5]
        first = t == 1
        m = torch.zeros(shape, dtype=torch.float64) if first else 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        s = torch.zeros(shape, dtype=torch.float64) if first else 0.01 * torch.rand(shape, generator=g, dtype=torch.float64)
        return (torch.randn(shape, generator=g, dtype=torch.float64), m, s,
                torch.randn(shape, generator=g, dtype=torch.float64), t, 1e-3, 0.9, 0.999, 1e-8)

    return function_matches(your_fn, reference_adam_step, make, rtol=1e-7, atol=1e-12,
                            label="adam_step",
                            hint="update m and s with (1 - beta) weights, then divide m by (1 - beta1**t) "
                                 "and s by (1 - beta2**t) before the step; eps goes outside the sqrt; "
                                 "return the *uncorrected* m and s")


def budget_schedule(your_fn, epochs: int = 5, steps_per_epoch: int = 120, peak_lr: float = 0.1,
                    warmup_frac: float = 0.06) -> bool:
    """``your_fn(step) -> lr`` for every step of the budget: warmup then cosine decay to 0."""
    total = epochs * steps_per_epoch
    label = "schedule for the budget"
    hint = (f"the budget is {epochs} x {steps_per_epoch} = {total} steps (fit steps the scheduler per "
            f"batch, not per epoch); warm up for round({warmup_frac} * {total}) steps from 0 to peak_lr "
            "(lr = peak * step / warmup), then peak * (1 + cos(pi * progress)) / 2 with progress "
            "going from 0 at the end of the warmup to 1 at the last step")
    try:
        got = [float(your_fn(t)) for t in range(total + 1)]
    except Exception as exc:  # the reader's code may fail in any way
        return _say(False, f"{label}: ", f"your function raised {type(exc).__name__}: {exc}", hint)
    expected = [reference_budget_schedule(t, epochs, steps_per_epoch, peak_lr, warmup_frac)
                for t in range(total + 1)]
    return close(got, expected, rtol=1e-6, atol=1e-9, label=label, hint=hint)


def max_stable_lr(answer, hessian) -> bool:
    """Largest learning rate for which gradient descent on a quadratic with this Hessian converges."""
    h = torch.as_tensor(hessian, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1]:
        raise ValueError(f"hessian must be a square matrix, got shape {tuple(h.shape)}")
    expected = 2.0 / float(torch.linalg.eigvalsh((h + h.T) / 2).max())
    return close(answer, expected, rtol=1e-3, atol=0.0, label="largest stable learning rate",
                 hint="along each eigenvector the error is multiplied by (1 - lr * lambda) per step; "
                      "it shrinks only if |1 - lr * lambda| < 1 for the largest eigenvalue lambda_max")

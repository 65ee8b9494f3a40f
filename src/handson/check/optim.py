"""Checkers for the exercises of chapter 2, *Optimization*.

Each checker prints PASS or a hint; none prints the expected value, a difference, or
solution code. Function checkers run the reader's function on fresh copies of the
inputs (an in-place update is fine) over trials that vary shapes, values and every
hyperparameter the exercise lets vary, and recognise the common wrong variants to
give a specific hint.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import _as_array, _say, close, fresh, function_matches, reader_error

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


# --------------------------------------------------------------------------- wrong variants
# Common mistakes, used only to choose a specific hint (never shown to the reader).

def _momentum_averaged(theta, v, grad, lr, beta):
    v = beta * v + (1 - beta) * grad
    return theta - lr * v, v


def _momentum_old_velocity(theta, v, grad, lr, beta):
    return theta - lr * v, beta * v + grad


def _momentum_nesterov(theta, v, grad, lr, beta):
    v = beta * v + grad
    return theta - lr * (grad + beta * v), v


def _momentum_plus(theta, v, grad, lr, beta):
    v = beta * v + grad
    return theta + lr * v, v


def _momentum_lr_in_velocity(theta, v, grad, lr, beta):
    v = beta * v + lr * grad
    return theta - v, v


def _adam_uncorrected(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    return theta - lr * m / (s.sqrt() + eps), m, s


def _adam_no_eps(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    return theta - lr * (m / (1 - beta1 ** t)) / (s / (1 - beta2 ** t)).sqrt(), m, s


def _adam_eps_inside(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    return theta - lr * (m / (1 - beta1 ** t)) / (s / (1 - beta2 ** t) + eps).sqrt(), m, s


def _adam_returns_corrected(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    m_hat, s_hat = m / (1 - beta1 ** t), s / (1 - beta2 ** t)
    return theta - lr * m_hat / (s_hat.sqrt() + eps), m_hat, s_hat


def _adam_only_m_corrected(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    return theta - lr * (m / (1 - beta1 ** t)) / (s.sqrt() + eps), m, s


def _adam_step_off_by_one(theta, m, s, grad, t, lr, beta1, beta2, eps):
    return reference_adam_step(theta, m, s, grad, t + 1, lr, beta1, beta2, eps)


def _matches_on(your_fn: Callable, reference: Callable, inputs: list[tuple], rtol: float,
                atol: float) -> bool:
    """True if ``your_fn`` agrees with ``reference`` on every input tuple (fresh copies each)."""
    for args in inputs:
        try:
            got, want = your_fn(*fresh(args)), reference(*fresh(args))
        except Exception:  # the reader's function failing is reported elsewhere
            return False
        got_t = got if isinstance(got, tuple) else (got,)
        want_t = want if isinstance(want, tuple) else (want,)
        if len(got_t) != len(want_t):
            return False
        for g, w in zip(got_t, want_t):
            try:
                a, e = _as_array(g), _as_array(w)
            except (TypeError, ValueError):
                return False
            if a.shape != e.shape or not np.allclose(a, e, rtol=rtol, atol=atol):
                return False
    return True


def _specific_hint(your_fn, variants, inputs, rtol, atol, default):
    for variant, hint in variants:
        if _matches_on(your_fn, variant, inputs, rtol, atol):
            return hint
    return default


# --------------------------------------------------------------------------- checkers

def gd_step(answer, theta0: float = 0.0, lr: float = 0.25, target: float = 3.0) -> bool:
    """One gradient-descent step on ``J(theta) = (theta - target)**2`` from ``theta0`` (3 decimals)."""
    expected = theta0 - lr * 2 * (theta0 - target)
    hint = "differentiate J at theta_0, then move against the gradient by lr times its value"
    try:
        value = float(_as_array(answer)) if answer is not None else None
    except (TypeError, ValueError):
        value = None
    if value is not None and math.isfinite(value):
        grad = 2 * (theta0 - target)
        if abs(value - (theta0 + lr * grad)) < 1e-3:
            hint = "check the sign of the step: gradient descent subtracts lr times the gradient"
        elif abs(value - (theta0 - lr * grad / 2)) < 1e-3:
            hint = "the derivative of (theta - 3)^2 has a factor 2 in front"
    return close(answer, expected, places=3, label="one GD step", hint=hint,
                 nudge="the step is theta_1 = theta_0 - alpha * J'(theta_0); start with J'(0)")


def max_stable_lr(answer, hessian) -> bool:
    """Largest learning rate for which GD on a quadratic with this Hessian converges (4 decimals)."""
    h = torch.as_tensor(hessian, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1]:
        raise ValueError(f"hessian must be a square matrix, got shape {tuple(h.shape)}")
    eig = torch.linalg.eigvalsh((h + h.T) / 2)
    expected = 2.0 / float(eig.max())
    hint = ("along each eigenvector the error is multiplied by (1 - lr * lambda) per step; "
            "every factor must stay inside (-1, 1)")
    try:
        value = float(_as_array(answer)) if answer is not None else None
    except (TypeError, ValueError):
        value = None
    if value is not None and math.isfinite(value):
        if abs(value - 2.0 / float(eig.min())) < 1e-3:
            hint = "the sharpest direction (the largest eigenvalue) sets the limit, not the flattest"
        elif abs(value - 1.0 / float(eig.max())) < 1e-3:
            hint = ("that learning rate is safe but not the largest: the factor 1 - lr * lambda may "
                    "go below 0 as long as it stays above -1")
    return close(answer, expected, places=4, label="largest stable learning rate", hint=hint,
                 nudge="the eigenvalues of H are the curvatures; which one limits the step size?")


def momentum_step(your_fn) -> bool:
    """``your_fn(theta, v, grad, lr, beta) -> (new_theta, new_v)``, PyTorch's momentum update."""
    lrs, betas = (0.05, 0.1, 0.01, 0.3, 0.2), (0.9, 0.5, 0.99, 0.3, 0.7)

    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        shape = [(3, 2), (5,), (2, 3, 4), (1,), (4, 4)][trial % 5]
        v = torch.zeros(shape, dtype=torch.float64) if trial == 0 else \
            torch.randn(shape, generator=g, dtype=torch.float64)
        return (torch.randn(shape, generator=g, dtype=torch.float64), v,
                torch.randn(shape, generator=g, dtype=torch.float64), lrs[trial % 5], betas[trial % 5])

    inputs = [make(trial) for trial in range(5)]
    hint = _specific_hint(your_fn, [
        (_momentum_averaged, "your velocity is an average with a (1 - beta) weight on the gradient; "
                             "PyTorch's velocity adds the whole gradient to beta times the old one"),
        (_momentum_old_velocity, "the parameters must move along the *new* velocity, after it has "
                                 "taken in this step's gradient"),
        (_momentum_nesterov, "that is Nesterov's variant; plain momentum steps along the velocity alone"),
        (_momentum_plus, "the step goes against the velocity (gradient descent subtracts)"),
        (_momentum_lr_in_velocity, "in PyTorch the learning rate multiplies the velocity when the "
                                   "parameters move; it is not folded into the velocity"),
    ], inputs, 1e-9, 1e-12, "compare with the momentum equations of section 3, term by term; "
                            "return the new parameters and the new velocity, in that order")
    return function_matches(your_fn, reference_momentum_step, make, rtol=1e-9, atol=1e-12,
                            label="momentum_step", hint=hint,
                            nudge="first update the velocity from the gradient, then move the "
                                  "parameters along it (section 3)")


def adam_step(your_fn) -> bool:
    """``your_fn(theta, m, s, grad, t, lr, beta1, beta2, eps) -> (theta, m, s)`` with bias correction.

    The trials include tiny gradients (where ``eps`` matters), a large ``eps`` (where its
    place outside the square root matters), several step numbers and hyperparameters.
    """
    settings = [  # (t, lr, beta1, beta2, eps, gradient scale, state scale)
        (1, 1e-3, 0.9, 0.999, 1e-8, 1.0, 0.0),
        (2, 1e-2, 0.9, 0.999, 1e-8, 1.0, 1.0),
        (10, 3e-3, 0.8, 0.99, 1e-6, 1.0, 1.0),
        (3, 1e-3, 0.9, 0.999, 1e-8, 1e-9, 1e-9),     # tiny gradients: eps is not negligible
        (100, 1e-2, 0.95, 0.9999, 1e-3, 1e-2, 1e-2),  # large eps: inside vs outside the sqrt
        (1, 1e-2, 0.5, 0.9, 1e-8, 1e-10, 0.0),        # first step with gradients below eps
    ]

    def make(trial):
        t, lr, beta1, beta2, eps, g_scale, state_scale = settings[trial % len(settings)]
        g = torch.Generator().manual_seed(200 + trial)
        shape = [(4, 1), (3,), (2, 5), (6,), (3, 3), (7,)][trial % len(settings)]
        m = state_scale * 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
        s = state_scale ** 2 * torch.rand(shape, generator=g, dtype=torch.float64)
        return (torch.randn(shape, generator=g, dtype=torch.float64), m, s,
                g_scale * torch.randn(shape, generator=g, dtype=torch.float64), t, lr, beta1, beta2, eps)

    inputs = [make(trial) for trial in range(len(settings))]
    hint = _specific_hint(your_fn, [
        (_adam_uncorrected, "the bias corrections are missing: divide the two moving averages by "
                            "(1 - beta**t) before you use them"),
        (_adam_only_m_corrected, "the second moment needs its own bias correction too, with beta2"),
        (_adam_returns_corrected, "return the *uncorrected* moving averages: the next step "
                                  "corrects them again"),
        (_adam_no_eps, "epsilon is missing: with tiny gradients it is what keeps the step finite "
                       "and small"),
        (_adam_eps_inside, "epsilon is added after the square root, not inside it"),
        (_adam_step_off_by_one, "t is the step number counted from 1: use it as given"),
    ], inputs, 1e-7, 1e-12, "compare with Adam's update in section 4, term by term (moving "
                            "averages, bias corrections, then the step with epsilon)")
    return function_matches(your_fn, reference_adam_step, make, trials=len(settings), rtol=1e-7,
                            atol=1e-12, label="adam_step", hint=hint,
                            nudge="update both moving averages, correct their bias for step t, then "
                                  "step (section 4)")


def budget_schedule(your_fn, epochs: int = 5, steps_per_epoch: int = 120, peak_lr: float = 0.1,
                    warmup_frac: float = 0.06) -> bool:
    """``your_fn(step) -> lr`` for every step of the budget: warmup then cosine decay to 0."""
    total = epochs * steps_per_epoch
    label = "schedule for the budget"
    nudge = ("a fixed budget wants a schedule that ends at 0 exactly at its last step; count the "
             "budget in optimizer steps, the unit fit steps the scheduler in")
    if your_fn is None:
        return _say(False, f"{label}: ", "no function yet", nudge)
    try:
        raw = [your_fn(t) for t in range(total + 1)]
    except Exception as exc:  # the reader's code may fail in any way
        return reader_error(exc, f"{label}: ", nudge)
    if any(value is None for value in raw):
        return _say(False, f"{label}: ", "your function returned None for some steps", nudge)
    try:
        got = [float(_as_array(value).reshape(())) for value in raw]
    except (TypeError, ValueError):
        return _say(False, f"{label}: ", "your function must return one number per step", nudge)

    expected = [reference_budget_schedule(t, epochs, steps_per_epoch, peak_lr, warmup_frac)
                for t in range(total + 1)]
    got_a, want = np.array(got), np.array(expected)
    warmup = round(warmup_frac * total)
    if not np.all(np.isfinite(got_a)):
        hint = "some learning rates are nan or inf"
    elif abs(got_a[0]) > 1e-9:
        hint = "a warmup starts from a learning rate of 0 at step 0"
    elif abs(got_a[-1]) > 1e-6:
        hint = "the schedule must reach 0 exactly at the last step of the budget (counted in batches)"
    elif abs(got_a.max() - peak_lr) > 1e-6 * peak_lr:
        hint = "the schedule should reach the peak learning rate once, at the end of the warmup"
    elif int(np.argmax(got_a)) != warmup:
        hint = "the warmup lasts 6% of the whole budget, counted in optimizer steps and rounded"
    else:
        hint = "after the warmup the decay follows half a cosine period, from the peak down to 0"
    return close(got, expected, rtol=1e-6, atol=1e-9, label=label, hint=hint, nudge=nudge)

"""Optimizers and learning-rate schedules written from scratch.

Chapter 2 builds these step by step; each one matches its PyTorch namesake.

Optimizers (subclasses of :class:`torch.optim.Optimizer`, so they work with
:func:`handson.train.fit` and with every ``torch.optim.lr_scheduler``):

* :class:`SGD` -- gradient descent with optional momentum, Nesterov momentum and
  L2 weight decay, the same update as :class:`torch.optim.SGD`;
* :class:`Adam` -- Adam with bias correction (Kingma & Ba 2015), weight decay
  added to the gradient (L2), as :class:`torch.optim.Adam`;
* :class:`AdamW` -- Adam with *decoupled* weight decay (Loshchilov & Hutter 2019),
  as :class:`torch.optim.AdamW`.

Learning-rate schedules are plain functions ``step -> learning rate`` (step 0
is the first optimizer step): :func:`step_lr`, :func:`exponential_lr`,
:func:`cosine_lr`, :func:`warmup_linear_lr`, :func:`warmup_cosine_lr` and
:func:`one_cycle_lr`.  :class:`FunctionLR` turns any such function into a
scheduler object that :func:`handson.train.fit` steps once per batch.

:func:`clip_grad_norm` rescales gradients so that their global norm is at most
``max_norm``, like :func:`torch.nn.utils.clip_grad_norm_`.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from . import validate as _v

__all__ = [
    "SGD", "Adam", "AdamW",
    "step_lr", "exponential_lr", "cosine_lr", "warmup_linear_lr", "warmup_cosine_lr",
    "one_cycle_lr", "FunctionLR", "clip_grad_norm", "decays", "weight_decay_groups",
]


# --------------------------------------------------------------------------- validation

def _check_number(name: str, value, low: float = 0.0, high: float | None = None,
                  high_inclusive: bool = False) -> float:
    """Return ``value`` as float, or raise a clear error if it is not a number in range."""
    return _v.number(value, name, _v.caller(), low=low, high=high,
                     high_open=not high_inclusive)


def _check_betas(betas) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2) such as (0.9, 0.999), got {betas!r}")
    return (_check_number("betas[0]", betas[0], 0.0, 1.0),
            _check_number("betas[1]", betas[1], 0.0, 1.0))


def _check_params(params):
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors (e.g. model.parameters() or "
                        "[w, b]), not a single tensor; wrap it in a list: [w]")
    return params


def _sparse_error(name: str) -> RuntimeError:
    return RuntimeError(f"{name} does not support sparse gradients; use dense embeddings "
                        "(torch.nn.Embedding(..., sparse=False))")


# --------------------------------------------------------------------------- optimizers

def _closure_loss(closure: Callable | None):
    """The loss a ``step(closure)`` call returns: the closure re-evaluated with gradients on."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class SGD(torch.optim.Optimizer):
    r"""Stochastic gradient descent with momentum, as :class:`torch.optim.SGD`.

    For every parameter :math:`\theta` with gradient :math:`g`, one step is::

        g <- g + weight_decay * theta          (L2 penalty in the gradient)
        v <- momentum * v + g                  (v starts at 0, so v_1 = g)
        d <- g + momentum * v  if nesterov else v     (d = g without momentum)
        theta <- theta - lr * d

    Note the velocity sums gradients (``v <- beta v + g``), it is *not* the
    average ``beta v + (1 - beta) g``: with constant gradients it grows to
    ``g / (1 - beta)``, ten times ``g`` for ``beta = 0.9``.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        lr = _check_number("lr", lr)
        momentum = _check_number("momentum", momentum, 0.0, 1.0)
        weight_decay = _check_number("weight_decay", weight_decay)
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")
        defaults = dict(lr=lr, momentum=momentum, nesterov=bool(nesterov),
                        weight_decay=weight_decay)
        super().__init__(_check_params(params), defaults)

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; return the closure's loss if given."""
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, beta = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise _sparse_error("SGD")
                d = p.grad
                if group["weight_decay"] != 0:
                    d = d + group["weight_decay"] * p
                if beta != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d.clone()      # v_1 = g_1
                    else:
                        state["momentum_buffer"].mul_(beta).add_(d)
                    v = state["momentum_buffer"]
                    d = d + beta * v if group["nesterov"] else v
                p.sub_(lr * d)
        return loss


class Adam(torch.optim.Optimizer):
    r"""Adam with bias correction, as :class:`torch.optim.Adam`.

    With step counter :math:`t` (1 at the first step)::

        g <- g + weight_decay * theta            (L2 in the gradient; see AdamW)
        m <- beta1 * m + (1 - beta1) * g         (first moment, starts at 0)
        s <- beta2 * s + (1 - beta2) * g**2      (second moment, starts at 0)
        m_hat = m / (1 - beta1**t)               (bias correction)
        s_hat = s / (1 - beta2**t)
        theta <- theta - lr * m_hat / (sqrt(s_hat) + eps)
    """

    #: True only in :class:`AdamW`: shrink the weights directly instead of via the gradient
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        lr = _check_number("lr", lr)
        betas = _check_betas(betas)
        eps = _check_number("eps", eps)
        weight_decay = _check_number("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(_check_params(params), defaults)

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; return the closure's loss if given."""
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise _sparse_error(type(self).__name__)
                g = p.grad
                if wd != 0:
                    if self.decoupled:
                        p.mul_(1 - lr * wd)          # AdamW: theta <- theta - lr * wd * theta
                    else:
                        g = g + wd * p               # Adam: L2 penalty in the gradient
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, s = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_((1 - beta1) * g)
                s.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1 ** t)
                s_hat = s / (1 - beta2 ** t)
                p.sub_(lr * m_hat / (s_hat.sqrt() + eps))
        return loss


class AdamW(Adam):
    r"""Adam with decoupled weight decay, as :class:`torch.optim.AdamW`.

    Before the Adam step every weight shrinks by the same fraction,
    :math:`\theta \leftarrow (1 - \alpha\lambda)\,\theta`, whatever its gradient
    history; in :class:`Adam` the decay goes through the gradient and is divided
    by :math:`\sqrt{\hat s}` like the rest of it.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# --------------------------------------------------------------------------- schedules

def _check_step(step) -> int:
    return _v.integer(step, "step", _v.caller(), low=0,
                      what="an int >= 0 (0 = the first optimizer step)")


def _check_total(total_steps, warmup_steps: int = 0) -> int:
    func = _v.caller()
    total_steps = _v.positive_int(total_steps, "total_steps", func)
    _v.integer(warmup_steps, "warmup_steps", func, low=0, high=total_steps,
               what=f"an int between 0 and total_steps={total_steps}")
    return total_steps


def _check_lr(value, name: str = "base_lr") -> float:
    """A learning rate of a schedule: a finite number >= 0 (a negative one climbs the loss)."""
    return _v.nonnegative_number(value, name, _v.caller())


def step_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Multiply ``base_lr`` by ``gamma`` every ``step_size`` steps (``torch.optim.lr_scheduler.StepLR``)."""
    _check_step(step)
    _v.positive_int(step_size, "step_size", "step_lr")
    _check_lr(base_lr)
    _v.nonnegative_number(gamma, "gamma", "step_lr")
    return base_lr * gamma ** (step // step_size)


def exponential_lr(step: int, base_lr: float, gamma: float) -> float:
    """``base_lr * gamma**step`` (``torch.optim.lr_scheduler.ExponentialLR``)."""
    _check_step(step)
    _check_lr(base_lr)
    _v.positive_number(gamma, "gamma", "exponential_lr")
    return base_lr * gamma ** step


def cosine_lr(step: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    r"""Half a cosine from ``base_lr`` (step 0) to ``min_lr`` (step ``total_steps``), then flat.

    :math:`\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi t / T))`, as
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)`` for
    ``t <= T`` (PyTorch's version rises again after ``T``; this one stays at ``min_lr``).
    """
    _check_step(step)
    _check_total(total_steps)
    _check_lr(base_lr)
    _check_lr(min_lr, "min_lr")
    t = min(step, total_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * t / total_steps))


def warmup_linear_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup from 0 to ``base_lr`` over ``warmup_steps``, then linear decay to 0 at ``total_steps``.

    The BERT fine-tuning recipe; equal to ``transformers.get_linear_schedule_with_warmup``.
    :func:`handson.text.linear_warmup_factor` is this schedule with ``base_lr=1``.
    """
    _check_step(step)
    _check_total(total_steps, warmup_steps)
    _check_lr(base_lr)
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    return base_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup from 0 to ``base_lr``, then half a cosine down to 0 at ``total_steps``.

    Equal to ``transformers.get_cosine_schedule_with_warmup`` (with its default half cycle).
    """
    _check_step(step)
    _check_total(total_steps, warmup_steps)
    _check_lr(base_lr)
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def one_cycle_lr(step: int, max_lr: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """One-cycle policy: cosine up from ``max_lr/div_factor`` to ``max_lr``, then cosine down.

    The rise lasts ``pct_start * total_steps`` steps and the fall ends at
    ``max_lr / div_factor / final_div_factor`` on the last step ``total_steps - 1``;
    equal to ``torch.optim.lr_scheduler.OneCycleLR`` (its default ``anneal_strategy="cos"``,
    ``three_phase=False``).
    """
    _check_step(step)
    _check_total(total_steps)
    _check_number("pct_start", pct_start, 0.0, 1.0)
    _v.positive_number(max_lr, "max_lr", "one_cycle_lr")
    _v.positive_number(div_factor, "div_factor", "one_cycle_lr")
    _v.positive_number(final_div_factor, "final_div_factor", "one_cycle_lr")
    if step >= total_steps:
        raise ValueError(f"one_cycle_lr is defined for steps 0..{total_steps - 1}, got {step}")
    initial = max_lr / div_factor
    final = initial / final_div_factor
    peak_step = float(pct_start * total_steps) - 1       # PyTorch's phase boundary
    if peak_step <= 0 or peak_step >= total_steps - 1:
        raise ValueError(f"pct_start * total_steps = {pct_start * total_steps:g} leaves no room for the "
                         f"warm-up or the decay phase; choose pct_start so that 1 < pct_start * "
                         f"total_steps < {total_steps} (e.g. pct_start=0.3)")
    if step <= peak_step:
        start, end, pct = initial, max_lr, step / peak_step
    else:
        start, end, pct = max_lr, final, (step - peak_step) / (total_steps - 1 - peak_step)
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


class FunctionLR(torch.optim.lr_scheduler.LRScheduler):
    """Scheduler that sets every group's learning rate to ``lr_fn(step)``.

    Use it to train with any schedule function of this module::

        sched = FunctionLR(optimizer, lambda t: warmup_cosine_lr(t, 0.1, 50, 1000))
        handson.train.fit(..., optimizer=optimizer, scheduler=sched)

    The learning rate is set to ``lr_fn(0)`` when the scheduler is created, and to
    ``lr_fn(k)`` after its ``k``-th ``step()`` (``fit`` steps it once per batch).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lr_fn: Callable[[int], float],
                 last_epoch: int = -1):
        if not callable(lr_fn):
            raise TypeError(f"lr_fn must be a function step -> learning rate, got {type(lr_fn).__name__}")
        self.lr_fn = lr_fn
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lr = float(self.lr_fn(self.last_epoch))
        return [lr for _ in self.optimizer.param_groups]


# --------------------------------------------------------------------------- weight decay

def decays(p: torch.Tensor) -> bool:
    """The book's one weight-decay rule: decay weight matrices and embeddings (``p.dim() >= 2``),
    never vectors (``p.dim() < 2``: biases and LayerNorm / BatchNorm gains and shifts).

    For BERT this is exactly what the Hugging Face ``Trainer`` does (it skips biases and
    LayerNorm weights by name).
    """
    return p.dim() >= 2


def weight_decay_groups(params, weight_decay: float) -> list[dict]:
    """Two optimizer parameter groups by :func:`decays`: ``weight_decay`` on matrices, 0 on vectors.

    ``params``: an ``nn.Module`` or an iterable of tensors; frozen ones (``requires_grad=False``)
    are left out. Pass the result to ``torch.optim.AdamW(groups, lr=...)``.
    """
    weight_decay = _v.nonnegative_number(weight_decay, "weight_decay", _v.caller())
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    params = [p for p in _check_params(params) if p.requires_grad]
    return [{"params": [p for p in params if decays(p)], "weight_decay": weight_decay},
            {"params": [p for p in params if not decays(p)], "weight_decay": 0.0}]


# --------------------------------------------------------------------------- clipping

@torch.no_grad()
def clip_grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float) -> torch.Tensor:
    r"""Scale all gradients by :math:`\min(1, c / (\lVert g \rVert + 10^{-6}))`; return :math:`\lVert g \rVert`.

    :math:`\lVert g \rVert` is the *global* L2 norm over every gradient together, so
    the update keeps its direction.  Same result as ``torch.nn.utils.clip_grad_norm_``.
    """
    max_norm = _check_number("max_norm", max_norm)
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.device, g.dtype))
    return total

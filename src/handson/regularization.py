"""Regularization building blocks, written out so each one can be read and checked.

* :func:`l1_penalty`, :func:`l2_penalty` -- the penalties :math:`\\lambda\\sum_i |w_i|` and
  :math:`\\lambda\\sum_i w_i^2` (scalar tensors you add to the loss; differentiable).
* :class:`Dropout` -- inverted dropout (scales survivors by ``1 / (1 - p)`` while training,
  identity in eval mode), a drop-in for :class:`torch.nn.Dropout`.
* :class:`BatchNorm1d`, :class:`BatchNorm2d` -- batch normalization from scratch, with the
  same parameters, buffers, running-average update and eval behaviour as PyTorch's.
* :func:`label_smoothing_cross_entropy` -- cross-entropy against a smoothed target.
* :class:`EarlyStopping` -- patience-based stopping that remembers (and restores) the best weights;
  plug it into :func:`handson.train.fit` as
  ``callback=lambda h, m: es.step(h["val_loss"][-1], m)``.
* :func:`train_val_test_split` -- seeded, stratified three-way split of indices.

Conventions: the L2 penalty here is ``lam * sum(w**2)`` (no 1/2). Its gradient is ``2 * lam * w``,
so SGD with ``weight_decay=wd`` (which adds ``wd * w`` to the gradient) equals
``l2_penalty(w, wd / 2)``; pass ``half=True`` for the ``(lam / 2) * sum(w**2)`` variant.
"""
from __future__ import annotations

import copy
import math
import numbers
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from . import validate as _v

__all__ = ["l1_penalty", "l2_penalty", "Dropout", "BatchNorm1d", "BatchNorm2d",
           "label_smoothing_cross_entropy", "EarlyStopping", "train_val_test_split"]


# --------------------------------------------------------------------------- penalties

def _check_lam(lam) -> float:
    return _v.nonnegative_number(lam, "lam", _v.caller())


def _as_float_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
    elif _v.is_number(x):
        t = torch.tensor(float(x))
    else:
        raise TypeError(f"{what} must hold tensors, arrays or numbers, got {type(x).__name__}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{what} must be real numbers, got dtype {t.dtype}")
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def _tensors(params) -> list[torch.Tensor]:
    """Normalize the accepted inputs to a non-empty list of floating tensors."""
    if isinstance(params, nn.Module):
        items = list(params.parameters())
        what = "the module's parameters"
    elif isinstance(params, (torch.Tensor, np.ndarray)):
        return [_as_float_tensor(params, "params")]
    elif isinstance(params, (str, bytes, dict)):
        raise TypeError("params must be a tensor, a module, or an iterable of tensors "
                        f"(e.g. model.parameters()), got {type(params).__name__}")
    elif isinstance(params, Iterable):
        items = list(params)
        what = "params"
        if items and all(_v.is_number(v) for v in items):
            return [torch.tensor([float(v) for v in items])]  # a plain list of numbers
    else:
        raise TypeError("params must be a tensor, a module, or an iterable of tensors "
                        f"(e.g. model.parameters()), got {type(params).__name__}")
    if not items:
        raise ValueError(f"{what} is empty: nothing to penalize. If you passed model.parameters() "
                         "a second time, note that it is a generator that is used up after one "
                         "pass; pass list(model.parameters()) instead.")
    return [_as_float_tensor(v, "params") for v in items]


def l1_penalty(params, lam) -> torch.Tensor:
    """``lam * sum(|w|)`` over every entry of every tensor given (a scalar tensor).

    ``params``: one tensor, an ``nn.Module`` (all its parameters), or an iterable
    of tensors such as ``model.parameters()``. Biases are usually left out of the penalty:
    pass ``[p for p in model.parameters() if p.ndim > 1]`` to penalize weight matrices only.

    >>> round(float(l1_penalty(torch.tensor([1.0, 2.0, 3.0]), 0.1)), 6)  # 0.1 * (1 + 2 + 3)
    0.6
    """
    lam = _check_lam(lam)
    return lam * sum(t.abs().sum() for t in _tensors(params))


def l2_penalty(params, lam, half: bool = False) -> torch.Tensor:
    """``lam * sum(w**2)`` (or ``lam / 2 * sum(w**2)`` with ``half=True``), a scalar tensor.

    Same inputs as :func:`l1_penalty`. The gradient is ``2 * lam * w`` (``lam * w`` with
    ``half=True``), so ``torch.optim.SGD(..., weight_decay=wd)`` equals this penalty with
    ``lam = wd / 2`` (or ``lam = wd, half=True``).

    >>> round(float(l2_penalty(torch.tensor([1.0, 2.0, 3.0]), 0.1)), 6)  # 0.1 * (1 + 4 + 9)
    1.4
    """
    lam = _check_lam(lam)
    total = lam * sum(t.pow(2).sum() for t in _tensors(params))
    return total / 2 if half else total


# --------------------------------------------------------------------------- dropout

def _check_p(p) -> float:
    if not _v.is_number(p):
        raise TypeError(f"p must be a number in [0, 1], got {type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1] (the share of units zeroed), got {p}")
    return p


class Dropout(nn.Module):
    """Inverted dropout: while training, zero each entry with probability ``p`` and multiply
    the survivors by ``1 / (1 - p)`` so that the expected output equals the input; in eval
    mode return the input unchanged. Same behaviour as :class:`torch.nn.Dropout` (``p=1``
    gives zeros)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _check_p(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("Dropout needs a floating-point tensor, got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}; "
                            "convert with x.float()")
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p)  # 1 with probability 1 - p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------- batch norm

class _BatchNorm(nn.Module):
    """Shared code of :class:`BatchNorm1d` and :class:`BatchNorm2d`.

    Training: normalize with the batch mean and the *biased* batch variance, then update
    ``running_mean`` / ``running_var`` as ``(1 - momentum) * running + momentum * batch``
    using the *unbiased* batch variance (PyTorch's convention). ``momentum=None`` uses a
    cumulative average instead. Eval: normalize with the running statistics.
    """

    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True):
        super().__init__()
        func = type(self).__name__
        num_features = _v.integer(num_features, "num_features", func, low=1,
                                  what="a positive int (the channel count C)")
        eps = _v.positive_number(eps, "eps", func)
        momentum = _v.probability(momentum, "momentum", func, allow_none=True)
        self.num_features, self.eps, self.momentum, self.affine = int(num_features), float(eps), momentum, affine
        if affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))   # gamma
            self.bias = nn.Parameter(torch.zeros(self.num_features))    # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} needs a floating-point tensor, got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.ndim not in self._ndims:
            shapes = " or ".join(self._shape_names)
            raise ValueError(f"{type(self).__name__} expects input of shape {shapes}, "
                             f"got {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got {x.shape[1]} channels "
                             f"in dim 1 of input {tuple(x.shape)}; the channel dim must be dim 1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        dims = [d for d in range(x.ndim) if d != 1]          # every dim except channels
        shape = [1, -1] + [1] * (x.ndim - 2)                  # broadcast (C,) over x
        if self.training:
            count = x.numel() // x.shape[1]
            if count < 2:
                raise ValueError(f"batch norm needs more than 1 value per channel when training, "
                                 f"got input {tuple(x.shape)}; use a bigger batch or call .eval()")
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)                # normalize with biased variance
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                unbiased = var.detach() * count / (count - 1)    # running stat: unbiased variance
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        if self.affine:
            return x_hat * self.weight.reshape(shape) + self.bias.reshape(shape)
        return x_hat

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` inputs; equal to :class:`torch.nn.BatchNorm1d`.

    Statistics are per channel ``C``, taken over the batch (and length) dims. Parameter and
    buffer names match PyTorch's, so ``load_state_dict`` works both ways.
    """

    _ndims = (2, 3)
    _shape_names = ("(N, C)", "(N, C, L)")


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` images; equal to :class:`torch.nn.BatchNorm2d`."""

    _ndims = (4,)
    _shape_names = ("(N, C, H, W)",)


# --------------------------------------------------------------------------- label smoothing

def label_smoothing_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                  smoothing: float = 0.1, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy against the smoothed target ``(1 - s) * one_hot + s / K``.

    Equals ``torch.nn.CrossEntropyLoss(label_smoothing=s)`` for ``logits (N, K)`` and integer
    ``target (N,)``, including its ``ignore_index``: rows whose target is ``ignore_index``
    (``-100``, the padding label of Hugging Face collators) are left out of the mean. Every
    other target must be a class id in ``[0, K)``.
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError("logits must be a float tensor of shape (N, K), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or target.shape != logits.shape[:1]:
        raise ValueError(f"target must be a long tensor of class ids with shape ({logits.shape[0]},), got "
                         f"{getattr(target, 'dtype', type(target).__name__)} "
                         f"{tuple(target.shape) if isinstance(target, torch.Tensor) else ''}")
    smoothing = _v.probability(smoothing, "smoothing", "label_smoothing_cross_entropy")
    ignore_index = _v.integer(ignore_index, "ignore_index", "label_smoothing_cross_entropy")
    keep = target != ignore_index
    if not bool(keep.all()):                               # drop the ignored rows (as torch does)
        logits, target = logits[keep], target[keep]
    num_classes = logits.shape[1]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        bad = int(target.min()) if int(target.min()) < 0 else int(target.max())
        raise ValueError(f"label_smoothing_cross_entropy(target=...): expected class ids in "
                         f"[0, {num_classes}) (or ignore_index={ignore_index} for rows to skip), "
                         f"got {bad}")
    log_probs = torch.log_softmax(logits, dim=1)                       # (N, K)
    nll = -log_probs.gather(1, target[:, None]).squeeze(1)             # (N,)
    uniform = -log_probs.mean(dim=1)                                   # (N,) cross-entropy with 1/K
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


# --------------------------------------------------------------------------- early stopping

class EarlyStopping:
    """Stop when the validation metric has not improved for ``patience`` epochs in a row.

    ``mode="min"`` for losses, ``"max"`` for accuracies. An epoch counts as an improvement
    when it beats the best value so far by more than ``min_delta``. :meth:`step` returns
    True when training should stop. With a ``model``, the weights of the best epoch are
    kept (a CPU copy of the ``state_dict``); they are loaded back into the model when
    :meth:`step` says stop (if ``restore_best``) or whenever you call :meth:`restore`.

    Use it with the book's loop::

        es = EarlyStopping(patience=3)
        fit(..., callback=lambda h, m: es.step(h["val_loss"][-1], m))
        es.restore(model)   # also needed if training ran out of epochs before stopping
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, mode: str = "min",
                 restore_best: bool = True):
        patience = _v.integer(patience, "patience", "EarlyStopping", low=1,
                              what="an int >= 1 (epochs without improvement)")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' (for a loss) or 'max' (for accuracy), got {mode!r}")
        min_delta = _v.nonnegative_number(min_delta, "min_delta", "EarlyStopping")
        self.patience, self.mode, self.min_delta = int(patience), mode, float(min_delta)
        self.restore_best = restore_best
        self.best: float | None = None      # best metric so far
        self.best_epoch: int | None = None  # 1-based epoch of the best metric
        self.best_state: dict | None = None
        self.epoch = 0                      # number of step() calls so far
        self.num_bad_epochs = 0
        self.stopped = False

    def is_improvement(self, value: float) -> bool:
        """True if ``value`` beats the best so far by more than ``min_delta``."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, val_metric, model: nn.Module | None = None) -> bool:
        """Record one epoch's validation metric; return True if training should stop."""
        if isinstance(val_metric, torch.Tensor):
            if val_metric.numel() != 1:
                raise ValueError(f"val_metric must be one number, got a tensor of shape {tuple(val_metric.shape)}")
            val_metric = val_metric.item()
        if not _v.is_number(val_metric):
            raise TypeError(f"val_metric must be a number (e.g. history['val_loss'][-1]), "
                            f"got {type(val_metric).__name__}")
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
        value = float(val_metric)
        self.epoch += 1
        if self.is_improvement(value):
            self.best, self.best_epoch, self.num_bad_epochs = value, self.epoch, 0
            if model is not None:
                self.best_state = {k: v.detach().to("cpu", copy=True)
                                   for k, v in model.state_dict().items()}
        else:
            self.num_bad_epochs += 1
        self.stopped = self.num_bad_epochs >= self.patience
        if self.stopped and self.restore_best and model is not None:
            self.restore(model)
        return self.stopped

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best weights seen so far into ``model`` and return it."""
        if self.best_state is None:
            raise RuntimeError("no weights were saved yet: call step(val_metric, model) with a model "
                               "at least once before restore()")
        model.load_state_dict(copy.deepcopy(self.best_state))
        return model

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, mode={self.mode!r}, min_delta={self.min_delta}, "
                f"best={self.best}, best_epoch={self.best_epoch}, bad_epochs={self.num_bad_epochs})")


# --------------------------------------------------------------------------- splitting

def train_val_test_split(n_or_labels, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                         stratify: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into train / validation / test index arrays.

    ``n_or_labels``: the number of examples ``n`` (a plain seeded shuffle), or the labels
    (1-D array, list or tensor). With labels and ``stratify=True`` (the default) each part
    keeps the class proportions of the whole; ``stratify=False`` shuffles without looking at
    the labels. The three parts are disjoint, cover every index exactly once and are sorted;
    the same ``seed`` always gives the same split. Uses :func:`handson.data.split_indices`.

    >>> train, val, test = train_val_test_split([0] * 8 + [1] * 12, seed=0)
    >>> len(train), len(val), len(test)
    (16, 2, 2)
    """
    from . import data
    if isinstance(n_or_labels, torch.Tensor):
        n_or_labels = n_or_labels.detach().cpu().numpy()
    if isinstance(n_or_labels, bool):
        raise TypeError("n_or_labels must be an int or a 1-D sequence of labels, got a bool")
    if not isinstance(n_or_labels, (numbers.Integral, np.ndarray, list, tuple)):
        raise TypeError("n_or_labels must be an int (the number of examples) or a 1-D sequence "
                        f"of labels, got {type(n_or_labels).__name__}")
    if isinstance(n_or_labels, numbers.Integral):
        n_or_labels, has_labels = int(n_or_labels), False
    else:
        n_or_labels, has_labels = np.asarray(n_or_labels), True
        if n_or_labels.ndim != 1 or len(n_or_labels) == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence (one label per example), "
                             f"got shape {n_or_labels.shape}")
    if not isinstance(stratify, (bool, np.bool_)):
        raise TypeError(f"stratify must be True or False, got {stratify!r}")
    try:
        fractions = [float(f) for f in fractions]
    except (TypeError, ValueError):
        raise TypeError(f"fractions must be three numbers (train, val, test), got {fractions!r}") from None
    if len(fractions) != 3:
        raise ValueError(f"fractions must be three numbers (train, val, test), got {fractions}")
    train, val, test = data.split_indices(n_or_labels, fractions, seed=seed,
                                          stratify=bool(stratify) and has_labels)
    return train, val, test

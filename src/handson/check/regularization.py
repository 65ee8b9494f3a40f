"""Checkers for the exercises of *Regularization and generalization* (chapter 3)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import _say, close, function_matches, reader_error

#: weights and lambda of exercise 1
EX1_WEIGHTS = (-2.0, 0.5, 1.0, 3.0)
EX1_LAM = 0.01


def penalties(l1, l2, weights=EX1_WEIGHTS, lam: float = EX1_LAM) -> bool:
    """Exercise 1: ``l1 = lam * sum|w|`` and ``l2 = lam * sum w**2`` for the given weights."""
    w = np.asarray(weights, dtype=float)
    ok1 = close(l1, lam * np.abs(w).sum(), rtol=1e-6, atol=1e-9, label="L1 penalty",
                hint="add the absolute values (signs do not matter), then multiply by lambda")
    ok2 = close(l2, lam * (w ** 2).sum(), rtol=1e-6, atol=1e-9, label="L2 penalty",
                hint="square each weight, add the squares, multiply by lambda (no 1/2 in this "
                     "book's convention; a negative weight squared is positive)")
    return ok1 and ok2


def weight_decay_lambda(answer, weight_decay: float = 5e-4) -> bool:
    """Exercise 2: the ``lam`` of ``l2_penalty`` (``lam * sum w**2``) equal to SGD's ``weight_decay``."""
    return close(answer, weight_decay / 2, rtol=1e-6, atol=0, label="lambda",
                 hint="SGD adds weight_decay * w to the gradient; the gradient of lam * sum w**2 is "
                      "2 * lam * w. Set the two equal.")


def _replay(curve, patience: int, min_delta: float, mode: str):
    from ..regularization import EarlyStopping
    es = EarlyStopping(patience=patience, mode=mode, min_delta=min_delta)
    for epoch, value in enumerate(curve, start=1):
        if es.step(float(value)):
            return epoch, es.best_epoch
    return None, es.best_epoch


def stop_epoch(stop, best, curve, patience: int, min_delta: float = 0.0, mode: str = "min") -> bool:
    """Exercise 3: the (1-based) epoch after which early stopping stops, and the epoch restored."""
    want_stop, want_best = _replay(curve, patience, min_delta, mode)
    if want_stop is None:
        want_stop = len(curve)
    if stop is None or best is None:
        return _say(False, "early stopping: ", "no answer yet (stop / best are still None)",
                    "walk through the curve, counting epochs since the last improvement")
    ok_stop = close(stop, want_stop, atol=0, label="stop epoch",
                    hint=f"count epochs without an improvement of more than min_delta={min_delta}; "
                         f"training stops at the end of the epoch where that count reaches "
                         f"patience={patience} (epochs are numbered from 1)")
    ok_best = close(best, want_best, atol=0, label="restored epoch",
                    hint="the weights kept are those of the epoch with the best value before stopping")
    return ok_stop and ok_best


def inverted_dropout(your_fn) -> bool:
    """Exercise 4: ``your_fn(x, p, training) -> tensor`` implements inverted dropout."""
    label = "inverted dropout: "
    hint = ("while training keep each entry with probability 1 - p and divide the kept entries "
            "by (1 - p); in eval mode (training=False) return x unchanged")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 100, generator=g) + 0.5               # positive, so zeros mean dropped
    try:
        for p in (0.0, 0.3, 0.6):
            out_eval = your_fn(x, p, False)
            if out_eval is None or not torch.equal(torch.as_tensor(out_eval), x):
                return _say(False, label, f"with training=False and p={p} the output is not x itself",
                            hint)
            out = your_fn(x, p, True)
            if out is None:
                return _say(False, label, "returned None", hint)
            out = torch.as_tensor(out)
            if out.shape != x.shape:
                return _say(False, label, f"output shape {tuple(out.shape)}, expected {tuple(x.shape)}",
                            hint)
            dropped = (out == 0).double().mean().item()
            if abs(dropped - p) > 0.02:
                return _say(False, label, f"p={p}: {dropped:.3f} of the entries are zero, "
                            f"expected about {p}", hint)
            kept = out != 0
            if kept.any() and not torch.allclose(out[kept], x[kept] / (1 - p), rtol=1e-5, atol=1e-6):
                return _say(False, label, f"p={p}: kept entries are not x / (1 - p)", hint)
    except Exception as exc:  # the reader's code may fail in any way
        return reader_error(exc, label, hint)
    return _say(True, label, "(eval identity, drop rate and 1/(1-p) scaling all right)", None)


def batchnorm_forward(your_fn) -> bool:
    """Exercise 5: ``your_fn(x (N, C), gamma (C,), beta (C,), eps) -> y`` in training mode."""
    def reference(x, gamma, beta, eps):
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)

    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        n, c = 4 + 3 * trial, 2 + trial
        return (torch.randn(n, c, generator=g, dtype=torch.float64) * 3 + 1,
                torch.rand(c, generator=g, dtype=torch.float64) + 0.5,
                torch.randn(c, generator=g, dtype=torch.float64), 1e-5)

    return function_matches(your_fn, reference, make, rtol=1e-6, atol=1e-8, label="batch norm forward",
                            hint="per column: subtract the batch mean, divide by sqrt(var + eps) with "
                                 "the biased variance (unbiased=False), then multiply by gamma and add beta")


def label_smoothing(your_fn) -> bool:
    """Exercise 6: ``your_fn(logits (N, K), target (N,), smoothing) -> scalar`` mean loss."""
    def reference(logits, target, smoothing):
        return F.cross_entropy(logits, target, label_smoothing=smoothing)

    def make(trial):
        g = torch.Generator().manual_seed(200 + trial)
        n, k = 5 + trial, 3 + 2 * trial
        return (torch.randn(n, k, generator=g, dtype=torch.float64) * 2,
                torch.randint(0, k, (n,), generator=g), [0.0, 0.1, 0.2, 0.5, 0.9][trial])

    return function_matches(your_fn, reference, make, rtol=1e-6, atol=1e-8, label="label smoothing",
                            hint="target distribution q = (1 - s) * one_hot + s / K; loss = "
                                 "-(q * log_softmax(logits)).sum(dim=1).mean()")

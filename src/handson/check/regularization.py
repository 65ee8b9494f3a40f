"""Checkers for the exercises of *Regularization and generalization* (chapter 3).

Each checker prints PASS or a hint; none prints the expected value, a difference, or
solution code. Function checkers give the reader's function fresh copies of its inputs,
vary shapes and values over the trials, and recognise common wrong variants to give a
specific hint. Random functions (dropout) are called twice and must draw new masks.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import _as_array, _say, close, function_matches, is_integer, reader_error
from .optim import _specific_hint

#: weights and lambda of exercise 1
EX1_WEIGHTS = (-2.0, 0.5, 1.0, 3.0)
EX1_LAM = 0.01


def _number(x):
    """``x`` as a float if it is one number, else None (for choosing a hint only)."""
    try:
        a = _as_array(x)
    except (TypeError, ValueError):
        return None
    return float(a) if a.size == 1 and np.isfinite(a).all() else None


def penalties(l1, l2, weights=EX1_WEIGHTS, lam: float = EX1_LAM) -> bool:
    """Exercise 1: ``l1 = lam * sum|w|`` and ``l2 = lam * sum w**2`` (to 4 decimals)."""
    w = np.asarray(weights, dtype=float)
    hint1 = "add up the sizes of the weights, then multiply by lambda"
    v1 = _number(l1)
    if v1 is not None and abs(v1 - lam * w.sum()) < 1e-4:
        hint1 = "|w| ignores the sign: a negative weight adds its size, it does not subtract"
    elif v1 is not None and abs(v1 - np.abs(w).sum()) < 1e-4:
        hint1 = "the penalty includes the factor lambda"
    hint2 = "square each weight, add the squares, multiply by lambda"
    v2 = _number(l2)
    if v2 is not None and abs(v2 - lam * (w ** 2).sum() / 2) < 1e-4:
        hint2 = "this chapter's L2 penalty has no factor 1/2"
    elif v2 is not None and abs(v2 - lam * w.sum() ** 2) < 1e-4:
        hint2 = "square each weight before adding, not the sum"
    elif v2 is not None and abs(v2 - (w ** 2).sum()) < 1e-4:
        hint2 = "the penalty includes the factor lambda"
    ok1 = close(l1, lam * np.abs(w).sum(), places=4, label="L1 penalty", hint=hint1,
                nudge="the L1 penalty is lambda times the sum of absolute values (section 3)")
    ok2 = close(l2, lam * (w ** 2).sum(), places=4, label="L2 penalty", hint=hint2,
                nudge="the L2 penalty is lambda times the sum of squares (section 3)")
    return bool(ok1 and ok2)


def weight_decay_lambda(answer, weight_decay: float = 5e-4) -> bool:
    """Exercise 2: the ``lam`` of ``l2_penalty`` (``lam * sum w**2``) equal to SGD's ``weight_decay``."""
    hint = ("write down the gradient of lam * sum w**2 and set it equal to what SGD's "
            "weight_decay adds to the gradient")
    v = _number(answer)
    if v is not None and abs(v - weight_decay) < 1e-12:
        hint = "not quite: the gradient of lam * w**2 is 2 * lam * w, not lam * w"
    elif v is not None and abs(v - 2 * weight_decay) < 1e-12:
        hint = "the factor 2 goes the other way: the penalty's gradient is larger than lam * w"
    return close(answer, weight_decay / 2, rtol=1e-6, atol=0, label="lambda", hint=hint,
                 nudge="SGD's weight_decay adds weight_decay * w to the gradient (section 4)")


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
    nudge = "walk through the curve, counting the epochs since the last improvement"
    if stop is None or best is None:
        return _say(False, "early stopping: ", "no answer yet (stop / best are still None)", nudge)
    hint_stop = (f"count the epochs without an improvement of more than min_delta={min_delta}; "
                 f"training stops at the end of the epoch where that count reaches "
                 f"patience={patience} (epochs are numbered from 1)")
    if is_integer(stop) and is_integer(best) and int(stop) == int(best) + patience + 1:
        hint_stop = "one epoch too late: the epoch that makes the count reach patience is the last one"
    elif is_integer(stop) and int(stop) == want_stop - 1:
        hint_stop = "one epoch too early: epochs are numbered from 1, and the count must reach patience"
    hint_best = "the weights kept are those of the epoch with the best value before stopping"
    if is_integer(best) and int(best) == int(np.argmin(curve) if mode == "min" else np.argmax(curve)) + 1 \
            and int(best) != want_best:
        hint_best = "training stopped before that epoch was reached: the restored epoch comes before the stop"
    ok_stop = close(stop, want_stop, integer=True, label="stop epoch", hint=hint_stop)
    ok_best = close(best, want_best, integer=True, label="restored epoch", hint=hint_best)
    return bool(ok_stop and ok_best)


def inverted_dropout(your_fn) -> bool:
    """Exercise 4: ``your_fn(x, p, training) -> tensor`` implements inverted dropout.

    Checks: evaluation mode is the identity; the share of zeros is p (statistically,
    on 20,000 entries); kept entries are x / (1 - p); two calls on the same input draw
    different masks; different rows get different masks.
    """
    label = "inverted dropout: "
    hint = ("while training, keep each entry with probability 1 - p and scale the kept ones so "
            "that the expectation is unchanged; in evaluation mode return x as it is")
    nudge = "draw a random keep-mask with probability 1 - p per entry (section 5)"
    if your_fn is None:
        return _say(False, label, "no function yet", nudge)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(200, 100, generator=g) + 0.5               # positive, so zeros mean dropped
    try:
        for p in (0.0, 0.3, 0.6):
            out_eval = your_fn(x0.clone(), p, False)
            if out_eval is None:
                return _say(False, label, "your function returned None", nudge)
            if not torch.equal(torch.as_tensor(out_eval), x0):
                return _say(False, label, f"with training=False (p={p}) the output is not x itself",
                            "in evaluation mode dropout does nothing: no mask, no scaling")
            outs = []
            for _ in range(2):                                  # the same input, twice
                out = your_fn(x0.clone(), p, True)
                if out is None:
                    return _say(False, label, "your function returned None", nudge)
                out = torch.as_tensor(out)
                if out.shape != x0.shape:
                    return _say(False, label, f"output shape {tuple(out.shape)}, expected "
                                f"{tuple(x0.shape)}", hint)
                outs.append(out)
            for out in outs:
                dropped = (out == 0).double().mean().item()
                # 20,000 entries: the share of zeros has a standard deviation below 0.0035
                if abs(dropped - p) > 0.02:
                    wrong = "drops the share 1 - p instead of p" if p and abs(dropped - (1 - p)) < 0.02 \
                        else "drops a share of the entries far from p"
                    return _say(False, label, f"p={p}: your function {wrong}", hint)
                kept = out != 0
                if kept.any() and not torch.allclose(out[kept], x0[kept] / (1 - p), rtol=1e-5, atol=1e-6):
                    return _say(False, label, f"p={p}: the kept entries are not scaled right",
                                "the kept entries are divided by the probability of keeping them")
            if p > 0:
                masks = [out != 0 for out in outs]
                if torch.equal(masks[0], masks[1]):
                    return _say(False, label, f"p={p}: two calls on the same input dropped exactly the "
                                "same entries", "dropout draws a new random mask at every call")
                rows_same = (masks[0] == masks[0][:1]).all(dim=1).double().mean().item()
                if rows_same > 0.5:
                    return _say(False, label, f"p={p}: every row gets the same mask",
                                "draw an independent keep/drop decision for every entry, not one "
                                "per column")
    except Exception as exc:  # the reader's code may fail in any way
        return reader_error(exc, label, hint)
    return _say(True, label, "(eval identity, drop rate, 1/(1-p) scaling and fresh masks all right)",
                None)


def _bn_reference(x, gamma, beta, eps):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def _bn_unbiased(x, gamma, beta, eps):
    return gamma * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + eps) + beta


def _bn_eps_outside(x, gamma, beta, eps):
    return gamma * (x - x.mean(0)) / (x.var(0, unbiased=False).sqrt() + eps) + beta


def _bn_rows(x, gamma, beta, eps):
    mu, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


def _bn_no_affine(x, gamma, beta, eps):
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)


def batchnorm_forward(your_fn) -> bool:
    """Exercise 5: ``your_fn(x (N, C), gamma (C,), beta (C,), eps) -> y`` in training mode."""
    eps_values = (1e-5, 1e-3, 0.1, 1e-5, 0.5)

    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        n, c = [(4, 2), (7, 3), (16, 5), (3, 6), (10, 4)][trial % 5]
        scale = 0.1 if trial == 4 else 3.0                     # small variance: eps matters
        return (torch.randn(n, c, generator=g, dtype=torch.float64) * scale + 1,
                torch.rand(c, generator=g, dtype=torch.float64) + 0.5,
                torch.randn(c, generator=g, dtype=torch.float64), eps_values[trial % 5])

    inputs = [make(trial) for trial in range(5)]
    hint = _specific_hint(your_fn, [
        (_bn_unbiased, "training-mode batch norm normalizes with the biased variance (divide by N)"),
        (_bn_eps_outside, "epsilon goes inside the square root, added to the variance"),
        (_bn_rows, "the statistics are per column (feature), computed over the batch dimension 0"),
        (_bn_no_affine, "after normalizing, scale by gamma and shift by beta"),
    ], inputs, 1e-6, 1e-8, "compare with the four batch-norm equations of section 6, step by step")
    return function_matches(your_fn, _bn_reference, make, rtol=1e-6, atol=1e-8,
                            label="batch norm forward", hint=hint,
                            nudge="normalize each column with its batch mean and variance, then "
                                  "scale and shift (section 6)")


def _ls_reference(logits, target, smoothing):
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def _ls_other_classes(logits, target, s):
    k = logits.shape[1]
    q = torch.full_like(logits, s / (k - 1))
    q[torch.arange(len(target)), target] = 1 - s
    return -(q * torch.log_softmax(logits, dim=1)).sum(1).mean()


def _ls_ignores_s(logits, target, s):
    return F.cross_entropy(logits, target)


def _ls_sum(logits, target, s):
    return F.cross_entropy(logits, target, label_smoothing=s, reduction="sum")


def label_smoothing(your_fn) -> bool:
    """Exercise 6: ``your_fn(logits (N, K), target (N,), smoothing) -> scalar`` mean loss."""
    def make(trial):
        g = torch.Generator().manual_seed(200 + trial)
        n, k = 5 + trial, 3 + 2 * trial
        return (torch.randn(n, k, generator=g, dtype=torch.float64) * 2,
                torch.randint(0, k, (n,), generator=g), [0.3, 0.1, 0.2, 0.5, 0.9][trial])

    inputs = [make(trial) for trial in range(5)]
    hint = _specific_hint(your_fn, [
        (_ls_other_classes, "PyTorch spreads s over *all* K classes (s / K each, the true class "
                            "included), not over the K - 1 wrong ones"),
        (_ls_ignores_s, "your loss does not depend on s yet: build the smoothed target q first"),
        (_ls_sum, "return the mean over the examples, not the sum"),
    ], inputs, 1e-6, 1e-8, "compare with the formula for q and the loss in section 8")
    return function_matches(your_fn, _ls_reference, make, rtol=1e-6, atol=1e-8, label="label smoothing",
                            hint=hint, nudge="build the smoothed target distribution q, then take "
                                             "the cross-entropy against it (section 8)")

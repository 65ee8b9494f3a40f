"""Checkers for the exercises of chapter 1 (neural networks and backpropagation)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import close, function_matches
from . import one_number as _one_number


#: The tiny 3-2-1 network of exercises 1 and 2 (same numbers as in the notebook's text).
TINY_NET = {
    "x": [1.0, -2.0, 0.5],
    "W1": [[0.5, -0.25, 1.0], [-1.0, 0.5, 2.0]],
    "b1": [0.1, -0.2],
    "W2": [[1.5, -2.0]],
    "b2": [0.25],
    "y": 0.0,
}


def _tiny_net_tensors():
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in TINY_NET.items()}
    for k in ("W1", "b1", "W2", "b2"):
        t[k].requires_grad_(True)
    return t


def _tiny_forward(t):
    h = torch.relu(t["W1"] @ t["x"] + t["b1"])      # (2,)
    z = (t["W2"] @ h + t["b2"]).squeeze()            # scalar logit
    return torch.sigmoid(z), z


def forward_pass(answer) -> bool:
    """Exercise 1: the output probability ``p = sigmoid(W2 relu(W1 x + b1) + b2)`` of the tiny net."""
    with torch.no_grad():
        p, _ = _tiny_forward(_tiny_net_tensors())
    return close(_one_number(answer), float(p), places=4, label="forward pass",
                 nudge="go through the network one layer at a time: the two hidden "
                       "pre-activations, ReLU, the output logit, then the sigmoid",
                 hint="check each hidden unit: a negative pre-activation is switched off by "
                      "ReLU; and the answer is a probability, so it lies between 0 and 1")


def backprop_gradient(answer) -> bool:
    """Exercise 2: ``dJ/dW1[0, 2]`` of the tiny net with binary cross-entropy and label ``y = 0``."""
    t = _tiny_net_tensors()
    _, z = _tiny_forward(t)
    loss = F.binary_cross_entropy_with_logits(z, t["y"])
    loss.backward()
    return close(_one_number(answer), float(t["W1"].grad[0, 2]), places=4, label="dJ/dW1[0,2]",
                 nudge="start at the output (for a sigmoid with cross-entropy the gradient at "
                       "the logit is simple) and walk back one factor at a time",
                 hint="a weight's gradient is the delta of the unit it feeds times the input "
                      "it multiplies; on the way back you pass the output weight of hidden "
                      "unit 0 and the slope of its ReLU (indices start at 0)")


def stable_softmax(your_fn) -> bool:
    """Exercise 3: ``your_fn(z (batch, num_classes)) -> softmax over the last dim`` that never overflows."""
    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        size = (3 + trial, 4 + trial)
        spread = [1.0, 10.0, 1000.0, 1e4, 1e5][trial % 5]   # later trials overflow a naive exp
        return (torch.randn(size, generator=g, dtype=torch.float64) * spread,)

    return function_matches(your_fn, lambda z: torch.softmax(z, dim=-1), make, trials=5,
                            rtol=1e-6, atol=1e-9, label="stable softmax",
                            nudge="the softmax does not change if the same number is subtracted "
                                  "from every logit of a row",
                            hint="choose the number you subtract per row (not one for the whole "
                                 "batch) so that no exponent is positive, and normalize over "
                                 "the last dimension")


def f1_from_counts(answer, tp: int, fp: int, fn: int) -> bool:
    """Exercise 4: F1 from true positives, false positives and false negatives."""
    expected = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return close(_one_number(answer), expected, places=3, label="F1",
                 nudge="F1 is the harmonic mean of precision and recall; first sort the counts "
                       "into true positives, false positives and false negatives",
                 hint="the masses flagged are the true plus the false positives, the missed "
                      "ones are the false negatives; F1 is the harmonic (not the arithmetic) "
                      "mean, and true negatives do not enter")


def softmax_ce_grad(your_fn) -> bool:
    """Exercise 5: ``your_fn(logits (N, C), targets (N,)) -> dJ/dlogits`` for mean softmax cross-entropy."""
    def make(trial):
        g = torch.Generator().manual_seed(200 + trial)
        n, c = 2 + 3 * trial, 3 + trial
        logits = torch.randn(n, c, generator=g, dtype=torch.float64) * (1 + 5 * trial)
        return logits, torch.randint(0, c, (n,), generator=g)

    def reference(logits, targets):
        z = logits.detach().clone().requires_grad_(True)
        F.cross_entropy(z, targets).backward()
        return z.grad

    return function_matches(your_fn, reference, make, trials=5, rtol=1e-6, atol=1e-9,
                            label="softmax cross-entropy gradient",
                            nudge="start from the one-example formula in the exercise",
                            hint="J is the mean over the batch, not the sum; and the softmax is "
                                 "taken over the classes of each row")

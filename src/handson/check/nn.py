"""Checkers for the exercises of chapter 1 (neural networks and backpropagation)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import close, function_matches

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
    return close(answer, float(p), rtol=1e-4, atol=1e-4, label="forward pass",
                 hint="compute z1 = W1 @ x + b1 (2 numbers), apply ReLU (negative -> 0), then "
                      "z2 = W2 @ h + b2 and p = 1 / (1 + exp(-z2))")


def backprop_gradient(answer) -> bool:
    """Exercise 2: ``dJ/dW1[0, 2]`` of the tiny net with binary cross-entropy and label ``y = 0``."""
    t = _tiny_net_tensors()
    _, z = _tiny_forward(t)
    loss = F.binary_cross_entropy_with_logits(z, t["y"])
    loss.backward()
    return close(answer, float(t["W1"].grad[0, 2]), rtol=1e-4, atol=1e-4, label="dJ/dW1[0,2]",
                 hint="chain rule backwards: dJ/dz2 = p - y, dJ/dh0 = (p - y) * W2[0,0], "
                      "dJ/dz1_0 = dJ/dh0 * relu'(z1_0), dJ/dW1[0,2] = dJ/dz1_0 * x[2]")


def stable_softmax(your_fn) -> bool:
    """Exercise 3: ``your_fn(z (batch, num_classes)) -> softmax over the last dim`` that never overflows."""
    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        size = (3 + trial, 4 + trial)
        spread = [1.0, 10.0, 1000.0, 1e4, 1e5][trial % 5]   # later trials overflow a naive exp
        return (torch.randn(size, generator=g, dtype=torch.float64) * spread,)

    return function_matches(your_fn, lambda z: torch.softmax(z, dim=-1), make, trials=5,
                            rtol=1e-6, atol=1e-9, label="stable softmax",
                            hint="subtract the row maximum before exp: exp(z - max) / sum(exp(z - max)) "
                                 "(use z.amax(dim=-1, keepdim=True))")


def f1_from_counts(answer, tp: int, fp: int, fn: int) -> bool:
    """Exercise 4: F1 from true positives, false positives and false negatives."""
    expected = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return close(answer, expected, rtol=1e-6, atol=1e-6, label="F1",
                 hint="precision = tp / (tp + fp), recall = tp / (tp + fn), "
                      "F1 = 2 P R / (P + R) (equivalently 2 tp / (2 tp + fp + fn)); "
                      "true negatives do not enter")


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
                            hint="dJ/dz = (softmax(z) - one_hot(y)) / N: the mean over the batch "
                                 "divides every row by N")

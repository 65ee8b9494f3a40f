"""Chapter 0 and 1 checkers: right answers (also written another way) pass, wrong ones do not,
and nothing printed gives the answer away."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handson.check import intro, nn as check_nn


def printed(capsys):
    return capsys.readouterr().out


def assert_silent_about(out, *secrets):
    for secret in secrets:
        assert secret not in out, f"the checker printed {secret!r}"


# ---------------------------------------------------------------- chapter 0

def test_batches_per_epoch(capsys):
    assert intro.batches_per_epoch(79, n_examples=10_000, batch_size=128)
    assert intro.batches_per_epoch(np.int64(79), n_examples=10_000, batch_size=128)
    assert intro.batches_per_epoch(math.ceil(10_000 / 128), n_examples=10_000, batch_size=128)
    assert intro.batches_per_epoch(78, n_examples=10_000, batch_size=128, drop_last=True)
    assert "PASS" in printed(capsys)
    for wrong in (78, 80, 79.0, 78.125, "79", True, None):
        assert not intro.batches_per_epoch(wrong, n_examples=10_000, batch_size=128)
    out = printed(capsys)
    assert "integer" in out
    assert_silent_about(out, "79", "ceil", "//", "n / batch_size")


def test_class_share(capsys):
    labels = [1] * 444 + [0] * 428
    for right in (444 / 872, 0.509, 0.5092, np.float32(444 / 872), torch.tensor(labels).float().mean(),
                  torch.tensor([0.509])):
        assert intro.class_share(right, labels, cls=1)
    assert "PASS" in printed(capsys)
    for wrong in (428 / 872, 0.5, 50.92, 0.507, "0.509", None):
        assert not intro.class_share(wrong, labels, cls=1)
    assert_silent_about(printed(capsys), "0.509", "0.51", "444", "872")


def test_accuracy_from_confusion(capsys):
    cm = [[50, 10], [5, 35]]
    for right in (0.85, 85 / 100, np.trace(np.array(cm)) / 100, 0.850):
        assert intro.accuracy_from_confusion(right, cm)
    assert "PASS" in printed(capsys)
    for wrong in (85, 0.5, 50 / 60, 0.875, None):
        assert not intro.accuracy_from_confusion(wrong, cm)
    assert_silent_about(printed(capsys), "0.85", "trace")


def _normalize(images):
    x = images.float() / 255
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True, correction=0)
    return (x - mean) / std


def _normalize_loop(images):            # the same, written channel by channel in float64
    out = torch.empty(images.shape, dtype=torch.float64)
    for c in range(images.shape[1]):
        x = images[:, c].double()
        out[:, c] = (x - x.mean()) / x.std(unbiased=False)
    return out


def test_normalize_images(capsys):
    assert intro.normalize_images(_normalize)
    assert intro.normalize_images(_normalize_loop)
    assert "PASS" in printed(capsys)
    wrong_fns = [
        lambda im: (im.float() / 255 - im.float().mean() / 255) / (im.float() / 255).std(),  # one stat
        lambda im: (lambda x: (x - x.mean(dim=(0, 2, 3), keepdim=True))
                    / x.std(dim=(0, 2, 3), keepdim=True))(im.float() / 255),            # unbiased
        lambda im: (lambda x: (x - x.mean(dim=(0, 1), keepdim=True))
                    / x.std(dim=(0, 1), keepdim=True, correction=0))(im.float() / 255),  # wrong dims
        lambda im: im.float() / 255,                                                    # no standardizing
    ]
    for fn in wrong_fns:
        assert not intro.normalize_images(fn)

    def not_yet(images):
        raise NotImplementedError
    assert not intro.normalize_images(not_yet)
    assert_silent_about(printed(capsys), "mean(dim", "std(", "(0, 2, 3)", "correction")


# ---------------------------------------------------------------- chapter 1

def _tiny():
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in check_nn.TINY_NET.items()}
    h = torch.relu(t["W1"] @ t["x"] + t["b1"])
    z = float(t["W2"] @ h + t["b2"])
    return t, h, z, 1 / (1 + math.exp(-z))


def test_forward_pass(capsys):
    t, _, _, p = _tiny()
    x = torch.tensor([1.0, -2.0, 0.5])
    W1, b1 = torch.tensor([[0.5, -0.25, 1.0], [-1.0, 0.5, 2.0]]), torch.tensor([0.1, -0.2])
    W2, b2 = torch.tensor([[1.5, -2.0]]), torch.tensor([0.25])
    for right in (p, round(p, 4), 0.934, torch.sigmoid(W2 @ torch.relu(W1 @ x + b1) + b2)):
        assert check_nn.forward_pass(right)
    assert "PASS" in printed(capsys)
    no_relu = float(torch.sigmoid(t["W2"] @ (t["W1"] @ t["x"] + t["b1"]) + t["b2"]))
    for wrong in (0.5, 2.65, no_relu, 1 - p, "0.934", None):
        assert not check_nn.forward_pass(wrong)
    assert_silent_about(printed(capsys), f"{p:.4f}", "0.934", "2.65", "exp(")


def test_backprop_gradient(capsys):
    _, _, _, p = _tiny()
    right = (p - 0) * 1.5 * 1.0 * 0.5
    for answer in (right, round(right, 4), 0.7005, np.float64(right)):
        assert check_nn.backprop_gradient(answer)
    assert "PASS" in printed(capsys)
    for wrong in (-right, p * 1.5, (p - 0) * 1.5 * 0.5 * p * (1 - p), 0.0, (p - 1) * 1.5 * 0.5, None):
        assert not check_nn.backprop_gradient(wrong)
    assert_silent_about(printed(capsys), "0.700", "p - y", "W2[0", "x[2]")


def _softmax_loop(z):                     # right, written as a Python loop over rows
    rows = []
    for row in z:
        e = torch.exp(row - row.max())
        rows.append(e / e.sum())
    return torch.stack(rows)


def test_stable_softmax(capsys):
    assert check_nn.stable_softmax(lambda z: torch.exp(z - z.amax(-1, keepdim=True))
                                   / torch.exp(z - z.amax(-1, keepdim=True)).sum(-1, keepdim=True))
    assert check_nn.stable_softmax(_softmax_loop)
    assert check_nn.stable_softmax(lambda z: torch.exp(z - torch.logsumexp(z, -1, keepdim=True)))
    assert "PASS" in printed(capsys)
    wrong_fns = [
        lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True),            # overflows
        lambda z: torch.exp(z - z.max()) / torch.exp(z - z.max()).sum(-1, keepdim=True),  # global max
        lambda z: torch.softmax(z, dim=0),                                      # wrong dimension
        lambda z: None,
    ]
    for fn in wrong_fns:
        assert not check_nn.stable_softmax(fn)
    assert_silent_about(printed(capsys), "amax", "exp(z", "keepdim", "max)")


def test_f1_from_counts(capsys):
    P, R = 30 / 40, 30 / 45
    for right in (60 / 85, 0.706, 0.7059, 0.705, np.float32(60 / 85), torch.tensor([0.706]),
                  2 * P * R / (P + R)):
        assert check_nn.f1_from_counts(right, tp=30, fp=10, fn=15)
    assert check_nn.f1_from_counts(2 * 8 / (16 + 2 + 4), tp=8, fp=2, fn=4)
    assert "PASS" in printed(capsys)
    for wrong in (P, R, (P + R) / 2, 30 / 55, 2 * 30 / (2 * 30 + 40 + 15), 0.71, 0.70, "0.706",
                  None):
        assert not check_nn.f1_from_counts(wrong, tp=30, fp=10, fn=15)
    assert_silent_about(printed(capsys), "0.70", "0.71", "60", "2 tp", "2 P R", "tp / (tp")


def _ce_grad(logits, targets):
    grad = torch.softmax(logits, -1)
    grad[torch.arange(len(targets)), targets] -= 1
    return grad / len(targets)


def _ce_grad_onehot(logits, targets):   # right, written with one_hot and no in-place update
    return (torch.softmax(logits, -1) - F.one_hot(targets, logits.shape[1])) / logits.shape[0]


def test_softmax_ce_grad(capsys):
    assert check_nn.softmax_ce_grad(_ce_grad)
    assert check_nn.softmax_ce_grad(_ce_grad_onehot)
    assert "PASS" in printed(capsys)
    wrong_fns = [
        lambda z, y: torch.softmax(z, -1) - F.one_hot(y, z.shape[1]),            # sum, not mean
        lambda z, y: (F.one_hot(y, z.shape[1]) - torch.softmax(z, -1)) / len(y),  # wrong sign
        lambda z, y: torch.softmax(z, -1) / len(y),                              # no one-hot
        lambda z, y: (torch.softmax(z, 0) - F.one_hot(y, z.shape[1])) / len(y),  # wrong dim
    ]
    for fn in wrong_fns:
        assert not check_nn.softmax_ce_grad(fn)

    def not_yet(logits, targets):
        raise NotImplementedError
    assert not check_nn.softmax_ce_grad(not_yet)
    assert_silent_about(printed(capsys), "one_hot", "softmax(z) -", "/ N", "/ len")


@pytest.mark.parametrize("checker", [check_nn.forward_pass, check_nn.backprop_gradient])
def test_tiny_net_checkers_nudge_when_unanswered(checker, capsys):
    assert not checker(None)
    out = printed(capsys)
    assert "no answer yet" in out and "hint:" in out

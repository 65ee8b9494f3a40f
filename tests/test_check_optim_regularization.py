"""The exercise checkers of chapters 2 and 3 grade right.

For every checker: known-right answers (written at least two legitimate ways where the
exercise allows it) PASS, known-wrong variants do not, and the printed text never holds
the expected value or solution code.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from handson import optim as ho
from handson import regularization as reg
from handson.check import optim as co
from handson.check import regularization as cr


def verdict(capsys, call):
    """Run a checker; return (passed, printed text)."""
    ok = call()
    text = capsys.readouterr().out
    assert text.startswith(("PASS", "NOT YET")), text
    return bool(ok), text


def no_leak(text, *secrets):
    for secret in secrets:
        assert secret not in text, f"the checker printed {secret!r}:\n{text}"


SOLUTION_CODE = ("beta * v", "1 - beta1 ** t", "s_hat", "torch.rand", "unbiased", "log_softmax",
                 "math.cos", "lr * v", "x.mean(")


# --------------------------------------------------------------------------- chapter 2

@pytest.mark.parametrize("answer", [1.5, 0 - 0.25 * 2 * (0 - 3), 1.5004, torch.tensor(1.5)])
def test_gd_step_right(capsys, answer):
    ok, text = verdict(capsys, lambda: co.gd_step(answer))
    assert ok, text


@pytest.mark.parametrize("answer", [None, -1.5, 0.75, 3.0, 1.51, "1.5", True, float("nan")])
def test_gd_step_wrong(capsys, answer):
    ok, text = verdict(capsys, lambda: co.gd_step(answer))
    assert not ok
    no_leak(text, "1.5 ", "1.50", "= 1.5")


H_EX = torch.tensor([[4.0, 1.0], [1.0, 2.0]])
LR_MAX = 2 / (3 + math.sqrt(2))


@pytest.mark.parametrize("answer", [LR_MAX, (2 / torch.linalg.eigvalsh(H_EX).max()).item(), 0.4531,
                                    0.4530, torch.tensor(LR_MAX)])
def test_max_stable_lr_right(capsys, answer):
    ok, text = verdict(capsys, lambda: co.max_stable_lr(answer, H_EX))
    assert ok, text


@pytest.mark.parametrize("answer", [None, 1 / (3 + math.sqrt(2)), 2 / (3 - math.sqrt(2)), 0.5, 0.452,
                                    2 / 6])
def test_max_stable_lr_wrong(capsys, answer):
    ok, text = verdict(capsys, lambda: co.max_stable_lr(answer, H_EX))
    assert not ok
    no_leak(text, "0.453", "0.4531", "4.414")


def momentum_functional(theta, v, grad, lr, beta):
    v = beta * v + grad
    return theta - lr * v, v


def momentum_in_place(theta, v, grad, lr, beta):
    v.mul_(beta).add_(grad)
    theta.sub_(lr * v)
    return theta, v


def momentum_torch(theta, v, grad, lr, beta):
    # through torch.optim.SGD itself: its buffer holds v after the first step
    p = theta.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=beta)
    opt.state[p]["momentum_buffer"] = v.clone()
    p.grad = grad.clone()
    opt.step()
    return p.detach(), opt.state[p]["momentum_buffer"]


@pytest.mark.parametrize("fn", [momentum_functional, momentum_in_place, momentum_torch])
def test_momentum_step_right(capsys, fn):
    ok, text = verdict(capsys, lambda: co.momentum_step(fn))
    assert ok, text


def momentum_stub(theta, v, grad, lr, beta):
    return theta, v


@pytest.mark.parametrize("fn", [momentum_stub, co._momentum_averaged, co._momentum_old_velocity,
                                co._momentum_nesterov, co._momentum_plus, co._momentum_lr_in_velocity,
                                lambda theta, v, grad, lr, beta: (theta - lr * grad, v),
                                lambda theta, v, grad, lr, beta: None])
def test_momentum_step_wrong(capsys, fn):
    ok, text = verdict(capsys, lambda: co.momentum_step(fn))
    assert not ok
    no_leak(text, *SOLUTION_CODE)


def test_momentum_step_hints_name_the_mistake(capsys):
    _, text = verdict(capsys, lambda: co.momentum_step(co._momentum_averaged))
    assert "(1 - beta)" in text
    _, text = verdict(capsys, lambda: co.momentum_step(co._momentum_old_velocity))
    assert "new" in text


def momentum_raises(theta, v, grad, lr, beta):
    raise NotImplementedError


def test_momentum_step_not_implemented(capsys):
    ok, text = verdict(capsys, lambda: co.momentum_step(momentum_raises))
    assert not ok and "not implemented" in text


def adam_functional(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    return theta - lr * (m / (1 - beta1 ** t)) / ((s / (1 - beta2 ** t)).sqrt() + eps), m, s


def adam_in_place(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    s.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (s / (1 - beta2 ** t)).sqrt().add_(eps)
    theta.addcdiv_(m / (1 - beta1 ** t), denom, value=-lr)
    return theta, m, s


def adam_torch(theta, m, s, grad, t, lr, beta1, beta2, eps):
    # through torch.optim.Adam, with its state set to step t - 1
    p = theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
    opt.state[p] = {"step": torch.tensor(float(t - 1)), "exp_avg": m.clone(), "exp_avg_sq": s.clone()}
    p.grad = grad.clone()
    opt.step()
    return p.detach(), opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]


@pytest.mark.parametrize("fn", [adam_functional, adam_in_place, adam_torch, co.reference_adam_step])
def test_adam_step_right(capsys, fn):
    ok, text = verdict(capsys, lambda: co.adam_step(fn))
    assert ok, text


def adam_stub(theta, m, s, grad, t, lr, beta1, beta2, eps):
    return theta, m, s


@pytest.mark.parametrize("fn", [adam_stub, co._adam_uncorrected, co._adam_no_eps, co._adam_eps_inside,
                                co._adam_returns_corrected, co._adam_only_m_corrected,
                                co._adam_step_off_by_one])
def test_adam_step_wrong(capsys, fn):
    ok, text = verdict(capsys, lambda: co.adam_step(fn))
    assert not ok
    no_leak(text, *SOLUTION_CODE)


def test_adam_without_epsilon_is_caught_with_its_own_hint(capsys):
    _, text = verdict(capsys, lambda: co.adam_step(co._adam_no_eps))
    assert "epsilon is missing" in text


@pytest.mark.parametrize("fn", [
    lambda step: ho.warmup_cosine_lr(step, 0.1, warmup_steps=36, total_steps=5 * 120),
    lambda step: co.reference_budget_schedule(step),
    lambda step: torch.tensor(0.1 * step / 36 if step < 36
                              else 0.05 * (1 + math.cos(math.pi * (step - 36) / 564))),
])
def test_budget_schedule_right(capsys, fn):
    ok, text = verdict(capsys, lambda: co.budget_schedule(fn))
    assert ok, text


def transformers_schedule():
    from transformers import get_cosine_schedule_with_warmup
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = get_cosine_schedule_with_warmup(opt, 36, 600)
    lrs = []
    for _ in range(601):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lambda step: lrs[step]


def test_budget_schedule_right_through_transformers(capsys):
    ok, text = verdict(capsys, lambda: co.budget_schedule(transformers_schedule()))
    assert ok, text


@pytest.mark.parametrize("fn", [
    None,
    lambda step: 0.1,                                                      # the stub
    lambda step: ho.warmup_cosine_lr(min(step, 5), 0.1, 0, 5),              # budget in epochs
    lambda step: ho.warmup_cosine_lr(step, 0.1, warmup_steps=30, total_steps=600),
    lambda step: ho.cosine_lr(step, 0.1, 600),                               # no warmup
    lambda step: ho.warmup_linear_lr(step, 0.1, 36, 600),                   # linear decay
    lambda step: None,
    lambda step: "0.1",
])
def test_budget_schedule_wrong(capsys, fn):
    ok, text = verdict(capsys, lambda: co.budget_schedule(fn))
    assert not ok
    no_leak(text, *SOLUTION_CODE, "= 36", " 36 ")


# --------------------------------------------------------------------------- chapter 3

W_EX1 = torch.tensor([-2.0, 0.5, 1.0, 3.0])


@pytest.mark.parametrize("l1, l2", [(0.065, 0.1425),
                                    (reg.l1_penalty(W_EX1, 0.01).item(), reg.l2_penalty(W_EX1, 0.01).item()),
                                    (reg.l1_penalty(W_EX1, 0.01), reg.l2_penalty(W_EX1, 0.01)),
                                    (0.0650, 0.1425)])
def test_penalties_right(capsys, l1, l2):
    ok, text = verdict(capsys, lambda: cr.penalties(l1, l2))
    assert ok, text


@pytest.mark.parametrize("l1, l2", [(None, None), (0.025, 0.1425), (0.065, 0.07125), (6.5, 14.25),
                                    (0.065, 0.0625), ("0.065", "0.1425"), (0.065, None)])
def test_penalties_wrong(capsys, l1, l2):
    ok, text = verdict(capsys, lambda: cr.penalties(l1, l2))
    assert not ok
    no_leak(text, "0.065", "0.1425", "0.14")


@pytest.mark.parametrize("answer", [2.5e-4, 5e-4 / 2, 0.00025, torch.tensor(2.5e-4, dtype=torch.float64)])
def test_weight_decay_lambda_right(capsys, answer):
    ok, text = verdict(capsys, lambda: cr.weight_decay_lambda(answer))
    assert ok, text


@pytest.mark.parametrize("answer", [None, 5e-4, 1e-3, 2.5e-3, "2.5e-4"])
def test_weight_decay_lambda_wrong(capsys, answer):
    ok, text = verdict(capsys, lambda: cr.weight_decay_lambda(answer))
    assert not ok
    no_leak(text, "2.5e-4", "0.00025", "2.5e-04")


STOP_CURVE = [0.92, 0.71, 0.64, 0.66, 0.61, 0.63, 0.65, 0.62, 0.60, 0.64]


def stop_by_package():
    es = reg.EarlyStopping(patience=2)
    stop = next(epoch for epoch, v in enumerate(STOP_CURVE, 1) if es.step(v))
    return stop, es.best_epoch


@pytest.mark.parametrize("stop, best", [(7, 5), stop_by_package(), (torch.tensor(7), torch.tensor(5))])
def test_stop_epoch_right(capsys, stop, best):
    ok, text = verdict(capsys, lambda: cr.stop_epoch(stop, best, STOP_CURVE, patience=2))
    assert ok, text


@pytest.mark.parametrize("stop, best", [(None, None), (8, 5), (6, 5), (7, 9), (10, 9), (7, 7), (7.0, 5.0),
                                        (9, 5), (7, 4)])
def test_stop_epoch_wrong(capsys, stop, best):
    ok, text = verdict(capsys, lambda: cr.stop_epoch(stop, best, STOP_CURVE, patience=2))
    assert not ok


def test_stop_epoch_other_curves():
    # patience 4 sees the later 0.60; min_delta changes what counts as an improvement
    es = reg.EarlyStopping(patience=4)
    stop = next((epoch for epoch, v in enumerate(STOP_CURVE, 1) if es.step(v)), len(STOP_CURVE))
    assert cr.stop_epoch(stop, es.best_epoch, STOP_CURVE, patience=4)
    assert not cr.stop_epoch(7, 5, STOP_CURVE, patience=4)


def test_stop_epoch_text_leaks_nothing(capsys):
    cr.stop_epoch(8, 9, STOP_CURVE, patience=2)
    text = capsys.readouterr().out
    no_leak(text, " 7", " 5", "epoch 7", "epoch 5")


def dropout_by_hand(x, p, training):
    if not training or p == 0:
        return x
    keep = (torch.rand_like(x) >= p).to(x.dtype)
    return x * keep / (1 - p)


def dropout_bernoulli(x, p, training):
    if not training:
        return x
    return x * torch.bernoulli(torch.full_like(x, 1 - p)) / (1 - p)


@pytest.mark.parametrize("fn", [dropout_by_hand, dropout_bernoulli,
                                lambda x, p, training: F.dropout(x, p, training)])
def test_inverted_dropout_right(capsys, fn):
    ok, text = verdict(capsys, lambda: cr.inverted_dropout(fn))
    assert ok, text


def dropout_deterministic(x, p, training):
    # the right drop rate, but the same mask at every call
    if not training:
        return x
    keep = (torch.arange(x.numel()).reshape(x.shape) % 10 >= round(10 * p)).to(x.dtype)
    return x * keep / (1 - p)


def dropout_seeded(x, p, training):
    # a fresh generator with a fixed seed: the same mask at every call
    if not training:
        return x
    g = torch.Generator().manual_seed(0)
    return x * (torch.rand(x.shape, generator=g) >= p).to(x.dtype) / (1 - p)


def dropout_per_column(x, p, training):
    # one mask for the whole batch
    if not training:
        return x
    keep = (torch.rand(1, x.shape[1]) >= p).to(x.dtype)
    return x * keep.expand_as(x) / (1 - p)


@pytest.mark.parametrize("fn", [
    None,
    lambda x, p, training: x,                                                   # the stub
    dropout_deterministic,
    dropout_seeded,
    dropout_per_column,
    lambda x, p, training: x * (torch.rand_like(x) >= p) if training else x,    # no scaling
    lambda x, p, training: x * (torch.rand_like(x) >= p) * (1 - p) if training else x,
    lambda x, p, training: F.dropout(x, p, True),                               # dropout in eval
    lambda x, p, training: dropout_by_hand(x, 1 - p, training) if p else x,     # keeps with p
    lambda x, p, training: None,
])
def test_inverted_dropout_wrong(capsys, fn):
    ok, text = verdict(capsys, lambda: cr.inverted_dropout(fn))
    assert not ok
    no_leak(text, *SOLUTION_CODE)


def test_deterministic_masks_get_the_fresh_mask_hint(capsys):
    for fn in (dropout_deterministic, dropout_seeded):
        _, text = verdict(capsys, lambda: cr.inverted_dropout(fn))
        assert "new random mask" in text


def batchnorm_by_hand(x, gamma, beta, eps):
    mu = x.mean(dim=0)
    var = ((x - mu) ** 2).mean(dim=0)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


def batchnorm_module(x, gamma, beta, eps):
    bn = torch.nn.BatchNorm1d(x.shape[1], eps=eps).double()
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    return bn.train()(x).detach()


@pytest.mark.parametrize("fn", [batchnorm_by_hand, batchnorm_module])
def test_batchnorm_forward_right(capsys, fn):
    ok, text = verdict(capsys, lambda: cr.batchnorm_forward(fn))
    assert ok, text


@pytest.mark.parametrize("fn", [lambda x, gamma, beta, eps: x, cr._bn_unbiased, cr._bn_eps_outside,
                                cr._bn_rows, cr._bn_no_affine,
                                lambda x, gamma, beta, eps: gamma * (x - x.mean(0)) / x.std(0) + beta])
def test_batchnorm_forward_wrong(capsys, fn):
    ok, text = verdict(capsys, lambda: cr.batchnorm_forward(fn))
    assert not ok
    no_leak(text, *SOLUTION_CODE)


def smoothed_ce_explicit(logits, target, s):
    k = logits.shape[1]
    q = torch.full_like(logits, s / k)
    q[torch.arange(len(target)), target] += 1 - s
    return -(q * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def smoothed_ce_mixture(logits, target, s):
    logp = torch.log_softmax(logits, dim=1)
    return (1 - s) * F.nll_loss(logp, target) - s * logp.mean(dim=1).mean()


@pytest.mark.parametrize("fn", [smoothed_ce_explicit, smoothed_ce_mixture, reg.label_smoothing_cross_entropy,
                                lambda logits, target, s: F.cross_entropy(logits, target, label_smoothing=s)])
def test_label_smoothing_right(capsys, fn):
    ok, text = verdict(capsys, lambda: cr.label_smoothing(fn))
    assert ok, text


@pytest.mark.parametrize("fn", [lambda logits, target, s: F.cross_entropy(logits, target),   # the stub
                                cr._ls_other_classes, cr._ls_sum,
                                lambda logits, target, s: (1 - s) * F.cross_entropy(logits, target)])
def test_label_smoothing_wrong(capsys, fn):
    ok, text = verdict(capsys, lambda: cr.label_smoothing(fn))
    assert not ok
    no_leak(text, *SOLUTION_CODE)

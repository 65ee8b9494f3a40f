"""handson.optim: optimizers equal torch.optim step for step; schedules equal torch's schedulers."""
import math

import pytest
import torch

from handson import optim as ho
from handson.check import optim as check_optim


# --------------------------------------------------------------------------- helpers

def _problem(seed):
    """A random non-quadratic problem with two parameter tensors, in float64."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(8, 6, generator=g, dtype=torch.float64)
    y = torch.randn(8, 3, generator=g, dtype=torch.float64)
    w0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    b0 = torch.randn(3, generator=g, dtype=torch.float64)

    def loss_fn(w, b):
        pred = torch.tanh(A @ w + b)
        return ((pred - y) ** 2).mean() + 0.01 * (w ** 4).sum()

    return w0, b0, loss_fn


def _run(make_opt, seed, steps=100):
    w0, b0, loss_fn = _problem(seed)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = make_opt([w, b])
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(w, b).backward()
        opt.step()
    return torch.cat([w.detach().reshape(-1), b.detach()])


def _max_rel_diff(a, b):
    return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max())


SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    dict(lr=0.02, momentum=0.9, nesterov=True),
    dict(lr=0.02, momentum=0.99, nesterov=True, weight_decay=1e-2),
    dict(lr=0.1, weight_decay=0.3),
]

ADAM_SETTINGS = [
    dict(),
    dict(lr=1e-2),
    dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=5e-3, betas=(0.0, 0.9), weight_decay=1e-3),
    dict(lr=1e-2, betas=(0.95, 0.9999), eps=1e-10, weight_decay=0.5),
]


# --------------------------------------------------------------------------- optimizers

@pytest.mark.parametrize("kwargs", SGD_SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_sgd_matches_torch(kwargs, seed):
    mine = _run(lambda p: ho.SGD(p, **kwargs), seed)
    ref = _run(lambda p: torch.optim.SGD(p, **kwargs), seed)
    assert _max_rel_diff(mine, ref) < 1e-6


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_adam_matches_torch(kwargs, seed):
    mine = _run(lambda p: ho.Adam(p, **kwargs), seed)
    ref = _run(lambda p: torch.optim.Adam(p, **kwargs), seed)
    assert _max_rel_diff(mine, ref) < 1e-6


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS + [dict(lr=1e-2, weight_decay=0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_matches_torch(kwargs, seed):
    mine = _run(lambda p: ho.AdamW(p, **kwargs), seed)
    ref = _run(lambda p: torch.optim.AdamW(p, **kwargs), seed)
    assert _max_rel_diff(mine, ref) < 1e-6


def test_adamw_default_weight_decay_matches_torch():
    assert ho.AdamW([torch.zeros(1, requires_grad=True)]).defaults["weight_decay"] == \
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 1e-2


def test_adam_l2_differs_from_adamw_but_sgd_l2_equals_decoupled():
    kwargs = dict(lr=1e-2, weight_decay=0.1)
    assert _max_rel_diff(_run(lambda p: ho.Adam(p, **kwargs), 0),
                         _run(lambda p: ho.AdamW(p, **kwargs), 0)) > 1e-3
    # SGD: L2 in the gradient == shrink weights by (1 - lr * wd) then step
    w0, b0, loss_fn = _problem(3)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = ho.SGD([w, b], lr=0.1, weight_decay=0.2)
    w2, b2 = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    for _ in range(50):
        opt.zero_grad()
        loss_fn(w, b).backward()
        opt.step()
        w2.grad = b2.grad = None
        loss_fn(w2, b2).backward()
        with torch.no_grad():
            for p in (w2, b2):
                p.mul_(1 - 0.1 * 0.2).sub_(0.1 * p.grad)
    assert torch.allclose(w, w2, rtol=1e-12, atol=1e-14) and torch.allclose(b, b2, rtol=1e-12, atol=1e-14)


def test_closure_and_none_grads():
    w = torch.tensor([2.0], requires_grad=True)
    unused = torch.tensor([5.0], requires_grad=True)
    opt = ho.Adam([w, unused], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ((w - 1) ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == pytest.approx(1.0)
    assert float(w.detach()) == pytest.approx(1.9)      # Adam's first step is lr * sign(g)
    assert float(unused.detach()) == 5.0              # no gradient -> untouched


def test_works_with_torch_scheduler_and_fit():
    from handson import train
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x.sum(1) > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    model = torch.nn.Linear(4, 2)
    opt = ho.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    hist = train.fit(model, loader, torch.nn.CrossEntropyLoss(), opt, epochs=3, scheduler=sched,
                     device="cpu", progress=False)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist["lr"] == [0.25, 0.125, 0.0625]


@pytest.mark.parametrize("make", [
    lambda p: ho.SGD(p, lr=-0.1),
    lambda p: ho.SGD(p, lr=0.1, momentum=1.0),
    lambda p: ho.SGD(p, lr=0.1, nesterov=True),
    lambda p: ho.SGD(p, lr=0.1, weight_decay=-1),
    lambda p: ho.Adam(p, betas=(0.9,)),
    lambda p: ho.Adam(p, betas=(0.9, 1.0)),
    lambda p: ho.Adam(p, eps=-1e-8),
    lambda p: ho.AdamW(p, lr=float("nan")),
])
def test_bad_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make([torch.zeros(2, requires_grad=True)])


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="number"):
        ho.SGD([torch.zeros(2, requires_grad=True)], lr="0.1")
    with pytest.raises(TypeError, match="wrap it in a list"):
        ho.Adam(torch.zeros(2, requires_grad=True))


def test_sparse_gradients_rejected():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        ho.SGD(emb.parameters(), lr=0.1).step()


# --------------------------------------------------------------------------- schedules

def _torch_lrs(make_scheduler, steps, base_lr=0.1, momentum=0.9):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr, momentum=momentum)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def _close(mine, ref, tol=1e-12):
    assert len(mine) == len(ref)
    assert max(abs(a - b) for a, b in zip(mine, ref)) < tol


def test_step_lr():
    lrs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.3), 200)
    _close([ho.step_lr(t, 0.1, 30, 0.3) for t in range(200)], lrs)


def test_exponential_lr():
    lrs = _torch_lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.97), 200)
    _close([ho.exponential_lr(t, 0.1, 0.97) for t in range(200)], lrs)


@pytest.mark.parametrize("eta_min", [0.0, 1e-3])
def test_cosine_lr(eta_min):
    lrs = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=150, eta_min=eta_min), 151)
    _close([ho.cosine_lr(t, 0.1, 150, eta_min) for t in range(151)], lrs)
    assert ho.cosine_lr(400, 0.1, 150, eta_min) == pytest.approx(eta_min)


@pytest.mark.parametrize("warmup, total", [(0, 100), (10, 100), (37, 250), (100, 100)])
def test_warmup_schedules_match_transformers(warmup, total):
    transformers = pytest.importorskip("transformers")
    lin = _torch_lrs(lambda o: transformers.get_linear_schedule_with_warmup(o, warmup, total), total + 5)
    cos = _torch_lrs(lambda o: transformers.get_cosine_schedule_with_warmup(o, warmup, total), total + 5)
    _close([ho.warmup_linear_lr(t, 0.1, warmup, total) for t in range(total + 5)], lin)
    _close([ho.warmup_cosine_lr(t, 0.1, warmup, total) for t in range(total + 1)], cos[:total + 1])


@pytest.mark.parametrize("total, pct, div, final_div", [(100, 0.3, 25.0, 1e4), (250, 0.25, 10.0, 100.0),
                                                        (57, 0.5, 25.0, 1e3)])
def test_one_cycle_lr(total, pct, div, final_div):
    lrs = _torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=total, pct_start=pct, div_factor=div,
        final_div_factor=final_div), total)
    _close([ho.one_cycle_lr(t, 0.1, total, pct, div, final_div) for t in range(total)], lrs)
    with pytest.raises(ValueError, match="defined for steps"):
        ho.one_cycle_lr(total, 0.1, total)


def test_function_lr_equals_torch_scheduler():
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40), 41)
    mine = _torch_lrs(lambda o: ho.FunctionLR(o, lambda t: ho.cosine_lr(t, 0.1, 40)), 41)
    _close(mine, ref)
    with pytest.raises(TypeError, match="function"):
        ho.FunctionLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 0.1)


@pytest.mark.parametrize("call", [
    lambda: ho.step_lr(-1, 0.1, 10),
    lambda: ho.step_lr(5, 0.1, 0),
    lambda: ho.cosine_lr(1, 0.1, 0),
    lambda: ho.warmup_linear_lr(1, 0.1, 20, 10),
    lambda: ho.warmup_cosine_lr(1, 0.1, -1, 10),
    lambda: ho.one_cycle_lr(1, 0.1, 10, pct_start=1.5),
    lambda: ho.one_cycle_lr(0, 0.1, 10, pct_start=0.1),     # no room for the warm-up phase
])
def test_bad_schedule_arguments(call):
    with pytest.raises(ValueError):
        call()


def test_schedule_step_must_be_int():
    with pytest.raises(TypeError, match="int"):
        ho.exponential_lr(1.5, 0.1, 0.9)


# --------------------------------------------------------------------------- clipping

@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    torch.manual_seed(0)
    grads = [torch.randn(4, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    mine = [torch.zeros_like(g, requires_grad=True) for g in grads]
    ref = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, q, g in zip(mine, ref, grads):
        p.grad, q.grad = g.clone(), g.clone()
    n1 = ho.clip_grad_norm(mine, max_norm)
    n2 = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert float(n1) == pytest.approx(float(n2), rel=1e-12)
    for p, q in zip(mine, ref):
        assert torch.allclose(p.grad, q.grad, rtol=1e-12, atol=1e-15)
    total = math.sqrt(sum(float((p.grad ** 2).sum()) for p in mine))
    assert total <= max_norm + 1e-9


def test_clip_grad_norm_bad_input():
    with pytest.raises(ValueError):
        ho.clip_grad_norm([torch.zeros(1, requires_grad=True)], -1.0)


# --------------------------------------------------------------------------- checkers

def test_checkers_pass_reference_and_reject_stubs(capsys):
    assert check_optim.gd_step(1.5)
    assert not check_optim.gd_step(None)
    assert check_optim.momentum_step(check_optim.reference_momentum_step)
    assert check_optim.adam_step(check_optim.reference_adam_step)
    assert check_optim.budget_schedule(check_optim.reference_budget_schedule)
    assert check_optim.max_stable_lr(2.0 / 4.0, torch.diag(torch.tensor([4.0, 1.0])))

    def stub(*args):
        raise NotImplementedError

    assert not check_optim.momentum_step(stub)
    assert not check_optim.adam_step(stub)
    assert not check_optim.budget_schedule(stub)
    assert not check_optim.max_stable_lr(None, torch.eye(2))
    out = capsys.readouterr().out
    assert "NOT YET" in out and "PASS" in out


def test_adam_checker_rejects_missing_bias_correction():
    def no_correction(theta, m, s, grad, t, lr, beta1, beta2, eps):
        m = beta1 * m + (1 - beta1) * grad
        s = beta2 * s + (1 - beta2) * grad ** 2
        return theta - lr * m / (s.sqrt() + eps), m, s

    assert not check_optim.adam_step(no_correction)


def test_momentum_checker_rejects_ema_velocity():
    def ema(theta, v, grad, lr, beta):
        v = beta * v + (1 - beta) * grad
        return theta - lr * v, v

    assert not check_optim.momentum_step(ema)

"""Tests for handson.regularization: each piece against PyTorch or a hand computation."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from handson import regularization as reg
from handson.train import fit


# --------------------------------------------------------------------------- penalties

def test_worked_example_l1_l2():
    w = torch.tensor([1.0, 2.0, 3.0])
    assert float(reg.l1_penalty(w, 0.1)) == pytest.approx(0.6)
    assert float(reg.l2_penalty(w, 0.1)) == pytest.approx(1.4)          # not 1.6
    assert float(reg.l2_penalty(w, 0.1, half=True)) == pytest.approx(0.7)


@pytest.mark.parametrize("inputs", [
    [1.0, 2.0, 3.0], (1, 2, 3), np.array([1.0, 2.0, 3.0]), torch.tensor([1, 2, 3]),
    [torch.tensor([1.0]), torch.tensor([[2.0, 3.0]])],
])
def test_penalties_accept_lists_arrays_and_tensor_lists(inputs):
    assert float(reg.l1_penalty(inputs, 0.1)) == pytest.approx(0.6)
    assert float(reg.l2_penalty(inputs, 0.1)) == pytest.approx(1.4)


def test_penalties_over_module_parameters_and_gradients():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    params = list(model.parameters())
    expected_l1 = 0.01 * sum(p.abs().sum() for p in params)
    expected_l2 = 0.01 * sum((p ** 2).sum() for p in params)
    torch.testing.assert_close(reg.l1_penalty(model, 0.01), expected_l1)
    torch.testing.assert_close(reg.l2_penalty(model.parameters(), 0.01), expected_l2)
    # gradients: lam * sign(w) and 2 * lam * w
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(reg.l1_penalty(w, 0.3), w)
    (g2,) = torch.autograd.grad(reg.l2_penalty(w, 0.3), w)
    torch.testing.assert_close(g1, 0.3 * torch.sign(w.detach()))
    torch.testing.assert_close(g2, 0.6 * w.detach())
    assert reg.l1_penalty(w, 0.3).ndim == 0


def test_sgd_weight_decay_equals_l2_with_half_lambda():
    torch.manual_seed(0)
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    a, b = nn.Linear(5, 1), nn.Linear(5, 1)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, weight_decay=0.2)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    for _ in range(5):
        opt_a.zero_grad()
        nn.functional.mse_loss(a(x), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        (nn.functional.mse_loss(b(x), y) + reg.l2_penalty(b.parameters(), 0.1)).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize("bad, err", [(-0.1, ValueError), (float("nan"), ValueError),
                                      ("0.1", TypeError), (None, TypeError)])
def test_penalty_bad_lambda(bad, err):
    with pytest.raises(err, match="lam"):
        reg.l1_penalty(torch.ones(3), bad)


def test_penalty_bad_inputs():
    gen = (p for p in nn.Linear(2, 2).parameters())
    list(gen)  # used up
    with pytest.raises(ValueError, match="generator"):
        reg.l2_penalty(gen, 0.1)
    with pytest.raises(TypeError):
        reg.l1_penalty("weights", 0.1)
    with pytest.raises(TypeError):
        reg.l1_penalty(torch.tensor([True, False]), 0.1)


# --------------------------------------------------------------------------- dropout

def test_dropout_train_statistics_and_scale():
    torch.manual_seed(0)
    x = torch.rand(200, 500) + 0.5
    drop = reg.Dropout(0.3).train()
    y = drop(x)
    zeros = (y == 0).float().mean().item()
    assert zeros == pytest.approx(0.3, abs=0.01)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7)            # survivors scaled by 1/(1-p)
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.01)   # expectation preserved
    ref = nn.Dropout(0.3).train()(x)
    assert (ref == 0).float().mean().item() == pytest.approx(zeros, abs=0.01)


def test_dropout_outputs_are_zero_or_scaled_input():
    x = torch.ones(10_000)
    torch.manual_seed(1)
    ours = reg.Dropout(0.5)(x)
    assert set(ours.unique().tolist()) <= {0.0, 2.0}


def test_dropout_eval_is_identity_and_edge_cases():
    x = torch.randn(4, 6)
    for p in (0.0, 0.5, 1.0):
        assert torch.equal(reg.Dropout(p).eval()(x), nn.Dropout(p).eval()(x))
    assert torch.equal(reg.Dropout(0.0).train()(x), x)
    assert torch.equal(reg.Dropout(1.0).train()(x), torch.zeros_like(x))


def test_dropout_bad_inputs():
    with pytest.raises(ValueError, match="p must be in"):
        reg.Dropout(1.5)
    with pytest.raises(TypeError):
        reg.Dropout("0.5")
    with pytest.raises(TypeError, match="floating"):
        reg.Dropout(0.5)(torch.ones(3, dtype=torch.long))


# --------------------------------------------------------------------------- batch norm

@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 7)])
def test_batchnorm1d_matches_torch(shape, momentum):
    torch.manual_seed(0)
    ours, ref = reg.BatchNorm1d(5, eps=1e-3, momentum=momentum), nn.BatchNorm1d(5, eps=1e-3, momentum=momentum)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    ours.load_state_dict(ref.state_dict())
    for _ in range(4):
        x = torch.randn(*shape) * 3 + 2
        torch.testing.assert_close(ours(x), ref(x))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name))
    ours.eval(), ref.eval()
    x = torch.randn(*shape)
    torch.testing.assert_close(ours(x), ref(x))


def test_batchnorm1d_gradients_match_torch():
    torch.manual_seed(0)
    ours, ref = reg.BatchNorm1d(3), nn.BatchNorm1d(3)
    x1 = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours.double(), ref.double()
    (ours(x1) ** 3).sum().backward()
    (ref(x2) ** 3).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)


def test_batchnorm2d_matches_torch_train_and_eval():
    torch.manual_seed(0)
    ours, ref = reg.BatchNorm2d(4), nn.BatchNorm2d(4)
    for _ in range(3):
        x = torch.randn(6, 4, 5, 5) * 2 - 1
        torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(ours(x), ref(x))


def test_batchnorm_bad_inputs():
    bn = reg.BatchNorm1d(3)
    with pytest.raises(ValueError, match="channels"):
        bn(torch.randn(4, 5))
    with pytest.raises(ValueError, match="shape"):
        bn(torch.randn(4))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(torch.randn(1, 3))
    with pytest.raises(TypeError, match="floating"):
        bn(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        reg.BatchNorm2d(3)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="num_features"):
        reg.BatchNorm1d(0)


# --------------------------------------------------------------------------- label smoothing

def test_label_smoothing_matches_torch():
    torch.manual_seed(0)
    logits, target = torch.randn(7, 5, dtype=torch.float64), torch.randint(0, 5, (7,))
    for s in (0.0, 0.1, 0.5):
        torch.testing.assert_close(reg.label_smoothing_cross_entropy(logits, target, s),
                                   nn.CrossEntropyLoss(label_smoothing=s)(logits, target))
    with pytest.raises(ValueError, match="target"):
        reg.label_smoothing_cross_entropy(logits, target.float(), 0.1)


# --------------------------------------------------------------------------- early stopping

def test_early_stopping_min_mode_patience_and_restore():
    model = nn.Linear(1, 1, bias=False)
    es = reg.EarlyStopping(patience=2)
    curve = [1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.5]
    decisions = []
    for epoch, v in enumerate(curve, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)                  # weight = epoch number
        decisions.append(es.step(v, model))
        if decisions[-1]:
            break
    assert decisions == [False, False, False, False, False, True]
    assert es.best == 0.7 and es.best_epoch == 4
    assert model.weight.item() == 4.0                   # restored on stop


def test_early_stopping_positional_min_delta_and_keyword_api():
    es = reg.EarlyStopping(2, 0.1)                        # EarlyStopping(patience, min_delta)
    assert (es.patience, es.min_delta, es.mode) == (2, 0.1, "min")
    model = nn.Linear(2, 1)
    assert es.step(1.0, model) is False
    assert es.step(0.95, model) is False                  # better by 0.05 < min_delta: a bad epoch
    assert es.step(0.92, model) is True                   # still not 0.1 below 1.0: second bad epoch
    assert es.best == 1.0 and es.best_epoch == 1
    assert reg.l1_penalty(params=[torch.ones(2)], lam=0.5).item() == 1.0
    assert reg.l2_penalty(params=[torch.ones(2)], lam=0.5).item() == 1.0


def test_early_stopping_max_mode_and_min_delta():
    es = reg.EarlyStopping(patience=1, mode="max", min_delta=0.05)
    assert es.step(0.50) is False
    assert es.step(0.53) is True                         # +0.03 is not enough
    assert es.best == 0.50


def test_early_stopping_nan_counts_as_bad_epoch():
    es = reg.EarlyStopping(patience=1)
    es.step(1.0)
    assert es.step(float("nan")) is True


def test_early_stopping_with_fit_callback():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = torch.randint(0, 2, (64,))                      # random labels: nothing to learn
    ds = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    model = nn.Linear(3, 2)
    es = reg.EarlyStopping(patience=2)
    # with random labels and a large step the validation loss soon stops improving
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    history = fit(model, loader, nn.CrossEntropyLoss(), opt, 30, val_loader=loader, device="cpu",
                  progress=False, callback=lambda h, m: es.step(h["val_loss"][-1], m))
    assert es.best == pytest.approx(min(history["val_loss"]))
    assert es.stopped and len(history["epoch"]) == es.best_epoch + es.patience < 30
    es.restore(model)
    from handson.train import evaluate
    assert evaluate(model, loader, nn.CrossEntropyLoss(), device="cpu")["loss"] == pytest.approx(es.best)


def test_early_stopping_bad_inputs():
    with pytest.raises(ValueError, match="patience"):
        reg.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode"):
        reg.EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="min_delta"):
        reg.EarlyStopping(min_delta=-1)
    with pytest.raises(TypeError, match="val_metric"):
        reg.EarlyStopping().step("0.5")
    with pytest.raises(RuntimeError, match="no weights"):
        reg.EarlyStopping().restore(nn.Linear(1, 1))


# --------------------------------------------------------------------------- split

def test_split_disjoint_covering_stratified():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    tr, va, te = reg.train_val_test_split(labels, seed=3)
    assert (len(tr), len(va), len(te)) == (80, 10, 10)
    allidx = np.concatenate([tr, va, te])
    assert len(np.unique(allidx)) == 100 and set(allidx) == set(range(100))
    for part in (tr, va, te):
        shares = np.bincount(labels[part], minlength=3) / len(part)
        np.testing.assert_allclose(shares, [0.6, 0.3, 0.1])
    again = reg.train_val_test_split(torch.as_tensor(labels), seed=3)
    for a, b in zip((tr, va, te), again):
        np.testing.assert_array_equal(a, b)


def test_split_from_n_and_reuses_split_indices():
    from handson.data import split_indices
    ours = reg.train_val_test_split(50, (0.6, 0.2, 0.2), seed=1)
    ref = split_indices(50, (0.6, 0.2, 0.2), seed=1)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)
    assert sum(len(p) for p in ours) == 50


def test_split_defaults_int_n_and_unstratified_labels():
    tr, va, te = reg.train_val_test_split(200)                 # stratify=True, but no labels: shuffle
    assert (len(tr), len(va), len(te)) == (160, 20, 20)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(200))
    labels = np.array([0] * 50 + [1] * 50)
    parts = reg.train_val_test_split(labels, seed=5, stratify=False)
    assert sum(len(p) for p in parts) == 100
    assert len(np.unique(np.concatenate(parts))) == 100
    different = [reg.train_val_test_split(labels, seed=s)[1] for s in (0, 1)]
    assert not np.array_equal(*different)                      # the seed matters


def test_split_bad_inputs():
    with pytest.raises(ValueError, match="three"):
        reg.train_val_test_split(10, (0.5, 0.5))
    with pytest.raises(ValueError):
        reg.train_val_test_split(10, (0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="labels"):
        reg.train_val_test_split(np.zeros((4, 2)))
    with pytest.raises(TypeError):
        reg.train_val_test_split("100")
    with pytest.raises(TypeError, match="stratify"):
        reg.train_val_test_split([0, 1, 0, 1], stratify="yes")
    assert sum(map(len, reg.train_val_test_split(7))) == 7      # the default fractions cover n


# --------------------------------------------------------------------------- checkers

def test_checkers_pass_right_answers_and_never_raise(capsys):
    from handson.check import regularization as chk
    assert chk.penalties(0.065, 0.1425)
    assert not chk.penalties(None, None)
    assert chk.weight_decay_lambda(2.5e-4)
    assert not chk.weight_decay_lambda(5e-4)
    curve = [1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.5]
    assert chk.stop_epoch(6, 4, curve, patience=2)
    assert not chk.stop_epoch(7, 7, curve, patience=2)
    assert not chk.stop_epoch(None, None, curve, patience=2)

    def dropout(x, p, training):
        return reg.Dropout(p).train(training)(x)

    def stub(*args):
        raise NotImplementedError

    assert chk.inverted_dropout(dropout)
    assert not chk.inverted_dropout(stub)
    assert not chk.inverted_dropout(lambda x, p, t: x * (torch.rand_like(x) > p))   # no rescaling

    def bn(x, gamma, beta, eps):
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps) * gamma + beta

    assert chk.batchnorm_forward(bn)
    assert not chk.batchnorm_forward(lambda x, g, b, e: (x - x.mean(0)) / x.std(0) * g + b)
    assert chk.label_smoothing(reg.label_smoothing_cross_entropy)
    assert not chk.label_smoothing(stub)
    out = capsys.readouterr().out
    assert "PASS" in out and "NOT YET" in out

"""handson.nn: activations, losses, the float64 gradient check and the MLP, against torch."""
import math

import pytest
import torch
import torch.nn.functional as F

from handson import nn as hnn
from handson.check import nn as check_nn


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu"])
def test_activations_and_derivatives_match_torch_autograd(name):
    fn, grad_fn = hnn.ACTIVATIONS[name]
    z = torch.linspace(-4, 4, 81, dtype=torch.float64).requires_grad_(True)
    reference = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu}[name]
    torch.testing.assert_close(fn(z), reference(z))
    reference(z).sum().backward()
    torch.testing.assert_close(grad_fn(z.detach()), z.grad)


def test_softmax_cross_entropy_equals_torch_and_survives_huge_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 5, (16,), generator=g)
    torch.testing.assert_close(hnn.softmax_cross_entropy(logits, targets), F.cross_entropy(logits, targets))
    big = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]])
    loss = hnn.softmax_cross_entropy(big, torch.tensor([0, 0]))
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(big, torch.tensor([0, 0])))


def test_log_sum_exp_and_binary_losses():
    z = torch.tensor([[1e4, 1e4], [-1e4, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(hnn.log_sum_exp(z), torch.logsumexp(z, dim=-1))
    logits = torch.tensor([-50.0, -1.0, 0.0, 3.0, 80.0])
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    torch.testing.assert_close(hnn.bce_with_logits(logits, y), F.binary_cross_entropy_with_logits(logits, y))
    torch.testing.assert_close(hnn.mse_loss(logits, y), F.mse_loss(logits, y))


def test_bce_with_logits_gradient_is_right_at_zero_and_for_huge_logits():
    # a network whose ReLUs are all off outputs exactly z = 0: the kink must not fool autograd
    for values in ([0.0, 0.0, 1.0], [-200.0, 0.0, 300.0]):
        y = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
        z1 = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        z2 = z1.detach().clone().requires_grad_(True)
        hnn.bce_with_logits(z1, y).backward()
        F.binary_cross_entropy_with_logits(z2, y).backward()
        torch.testing.assert_close(z1.grad, z2.grad)


@pytest.mark.parametrize("bad_targets, error", [
    (torch.tensor([0.0, 1.0]), TypeError),          # floats instead of class ids
    (torch.tensor([0, 1, 2]), ValueError),          # wrong length
    (torch.tensor([0, 7]), ValueError),             # out of range
])
def test_softmax_cross_entropy_rejects_bad_targets(bad_targets, error):
    with pytest.raises(error):
        hnn.softmax_cross_entropy(torch.zeros(2, 3), bad_targets)


def test_softmax_cross_entropy_rejects_1d_logits_and_int_logits():
    with pytest.raises(ValueError, match="unsqueeze"):
        hnn.softmax_cross_entropy(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(TypeError, match="float"):
        hnn.softmax_cross_entropy(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]))


def test_numerical_gradient_matches_autograd_in_float64():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(3, 4, generator=g, dtype=torch.float64)
    x = torch.randn(4, generator=g, dtype=torch.float64)

    def f(w):
        return torch.tanh(w @ x).pow(2).sum()

    numeric = hnn.numerical_gradient(f, W)
    w = W.clone().requires_grad_(True)
    f(w).backward()
    assert numeric.dtype == torch.float64 and numeric.shape == W.shape
    assert (numeric - w.grad).abs().max() < 1e-8
    assert torch.equal(W, W.clone())  # input untouched


def test_numerical_gradient_rejects_non_scalar_and_bad_eps():
    with pytest.raises(ValueError, match="scalar"):
        hnn.numerical_gradient(lambda w: w * 2, torch.ones(3))
    with pytest.raises(ValueError, match="eps"):
        hnn.numerical_gradient(lambda w: w.sum(), torch.ones(3), eps=0)
    with pytest.raises(TypeError):
        hnn.numerical_gradient("not a function", torch.ones(3))


def test_mlp_shapes_init_and_errors():
    torch.manual_seed(0)
    model = hnn.MLP([30, 16, 8, 1], activation="relu", init="he")
    assert isinstance(model, torch.nn.Module)
    assert model(torch.randn(5, 30)).shape == (5, 1)
    assert sum(p.numel() for p in model.parameters()) == 30 * 16 + 16 + 16 * 8 + 8 + 8 + 1
    assert all(torch.all(layer.bias == 0) for layer in model.layers)
    # He init keeps the weight variance near 2 / fan_in
    wide = hnn.MLP([1000, 1000], init="he")
    assert abs(wide.layers[0].weight.var().item() - 2 / 1000) < 2e-4
    with pytest.raises(ValueError, match="input features"):
        model(torch.randn(5, 29))
    with pytest.raises(ValueError, match="activation"):
        hnn.MLP([3, 2], activation="softplus")
    with pytest.raises(ValueError):
        hnn.MLP([3])


def test_layer_grad_norms_needs_backward_first():
    model = hnn.MLP([4, 3, 1])
    with pytest.raises(ValueError, match="backward"):
        hnn.layer_grad_norms(model)
    model(torch.randn(2, 4)).sum().backward()
    norms = hnn.layer_grad_norms(model)
    assert len(norms) == 2 and all(n >= 0 for n in norms)


def test_load_breast_cancer_flips_labels_to_malignant_positive():
    X, y, names = hnn.load_breast_cancer()
    assert X.shape == (569, 30) and y.shape == (569,) and len(names) == 30
    assert int(y.sum()) == 212          # 212 malignant, 357 benign


def test_chapter1_checkers_accept_right_and_reject_wrong(capsys):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in check_nn.TINY_NET.items()}
    h = torch.relu(t["W1"] @ t["x"] + t["b1"])
    z = float(t["W2"] @ h + t["b2"])
    p = 1 / (1 + math.exp(-z))
    assert check_nn.forward_pass(p)
    assert not check_nn.forward_pass(0.5)
    assert check_nn.f1_from_counts(2 * 8 / (16 + 2 + 4), tp=8, fp=2, fn=4)
    assert not check_nn.f1_from_counts(0.8, tp=8, fp=2, fn=4)
    assert check_nn.stable_softmax(lambda z: torch.softmax(z, dim=-1))
    assert not check_nn.stable_softmax(lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True))

    def grad(logits, targets):
        out = torch.softmax(logits, -1)
        out[torch.arange(len(targets)), targets] -= 1
        return out / len(targets)
    assert check_nn.softmax_ce_grad(grad)
    out = capsys.readouterr().out
    assert "PASS" in out

"""Neural networks from scratch: activations, losses, gradient checks and a small MLP.

Chapter 1 builds each piece by hand and checks it against PyTorch; later
chapters import them from here::

    from handson import nn
    loss = nn.softmax_cross_entropy(logits, targets)        # == F.cross_entropy
    grad = nn.numerical_gradient(lambda w: loss_of(w), w)   # float64 central differences
    model = nn.MLP([30, 16, 1], activation="relu", init="he")
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from . import validate as _v

__all__ = [
    "relu", "relu_grad", "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "gelu", "gelu_grad",
    "ACTIVATIONS", "mse_loss", "bce_with_logits", "log_sum_exp", "softmax_cross_entropy",
    "numerical_gradient", "MLP", "layer_grad_norms", "load_breast_cancer",
]


# --------------------------------------------------------------------------- helpers

def _float_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a floating-point tensor (lists and NumPy arrays of numbers become float64).

    ``None``, or a list holding ``None``, is an error (NumPy would turn it into NaN); errors
    name the public function that was called.
    """
    func = _v.caller()
    converted = not isinstance(x, torch.Tensor)
    x = _v.tensor(x, name, func, convert=True)
    if converted:                     # lists and arrays: float64, as before
        x = x.to(torch.float64)
    return _v.tensor(x, name, func, dtype="floating")


# --------------------------------------------------------------------------- activations

def relu(z: torch.Tensor) -> torch.Tensor:
    """ReLU, ``max(z, 0)`` element-wise."""
    return torch.clamp(_float_tensor(z, "z"), min=0)


def relu_grad(z: torch.Tensor) -> torch.Tensor:
    """Derivative of ReLU: 1 where ``z > 0``, else 0 (we take 0 at ``z = 0``, as PyTorch does)."""
    z = _float_tensor(z, "z")
    return (z > 0).to(z.dtype)


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid ``1 / (1 + exp(-z))``."""
    return torch.sigmoid(_float_tensor(z, "z"))


def sigmoid_grad(z: torch.Tensor) -> torch.Tensor:
    """Derivative of the sigmoid at ``z``: ``s (1 - s)`` with ``s = sigmoid(z)``."""
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent."""
    return torch.tanh(_float_tensor(z, "z"))


def tanh_grad(z: torch.Tensor) -> torch.Tensor:
    """Derivative of tanh at ``z``: ``1 - tanh(z)^2``."""
    t = tanh(z)
    return 1 - t * t


def gelu(z: torch.Tensor) -> torch.Tensor:
    """Exact GELU, ``z * Phi(z)`` with ``Phi`` the standard normal CDF (PyTorch's default)."""
    z = _float_tensor(z, "z")
    return z * 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def gelu_grad(z: torch.Tensor) -> torch.Tensor:
    """Derivative of exact GELU: ``Phi(z) + z * phi(z)`` (``phi`` the normal density)."""
    z = _float_tensor(z, "z")
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return cdf + z * pdf


#: name -> (function, derivative); the names MLP accepts.
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "relu": (relu, relu_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "gelu": (gelu, gelu_grad),
}


# --------------------------------------------------------------------------- losses

def mse_loss(pred, target) -> torch.Tensor:
    """Mean squared error ``mean((pred - target)^2)`` over all elements."""
    pred, target = _float_tensor(pred, "pred"), _float_tensor(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}; "
                         "reshape one of them (e.g. pred.squeeze(-1)) so they match")
    return ((pred - target) ** 2).mean()


def bce_with_logits(logits, targets) -> torch.Tensor:
    """Binary cross-entropy from logits, stable for any logit, mean over elements.

    With ``p = sigmoid(z)``, ``-[y log p + (1 - y) log(1 - p)] = log(1 + exp(z)) - y z``,
    where ``log(1 + exp(z)) = max(z, 0) + log(1 + exp(-|z|))`` never overflows.
    ``torch.logaddexp(z, 0)`` computes exactly that, and autograd differentiates it as the
    smooth function it is, so the slope is ``sigmoid(z) - y`` everywhere, ``z = 0`` included.
    A literal ``clamp(z, min=0) + log1p(exp(-abs(z)))`` has the same value but kinks at
    ``z = 0``, where autograd picks one slope per kink and gets a wrong gradient (chapter 1
    computes it).
    Equals ``torch.nn.functional.binary_cross_entropy_with_logits``, value and gradient.
    """
    z, y = _float_tensor(logits, "logits"), _float_tensor(targets, "targets")
    if z.shape != y.shape:
        raise ValueError(f"logits have shape {tuple(z.shape)} but targets have {tuple(y.shape)}; "
                         "binary targets need one 0/1 value per logit (try logits.squeeze(-1))")
    return (torch.logaddexp(z, torch.zeros_like(z)) - y * z).mean()


def log_sum_exp(z, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(z)))`` along ``dim`` without overflow: ``m + log(sum(exp(z - m)))``."""
    z = _float_tensor(z, "z")
    m = z.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf rows stay -inf
    return (m + torch.log(torch.exp(z - m).sum(dim=dim, keepdim=True))).squeeze(dim)


def softmax_cross_entropy(logits, targets) -> torch.Tensor:
    """Mean categorical cross-entropy of ``softmax(logits)`` against class ids.

    ``logits``: ``(batch_size, num_classes)`` floats (raw scores, *not* probabilities);
    ``targets``: ``(batch_size,)`` integer class ids in ``[0, num_classes)``.
    Per example the loss is ``log_sum_exp(z) - z[y]`` (the log-sum-exp trick), so very
    large logits do not overflow. Equals ``torch.nn.functional.cross_entropy(logits, targets)``.
    """
    z = _float_tensor(logits, "logits")
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (batch_size, num_classes), got shape {tuple(z.shape)}; "
                         "for a single example add a batch dimension with logits.unsqueeze(0)")
    targets = _v.tensor(targets, "targets", "softmax_cross_entropy", convert=True)
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer class ids (torch.long), got dtype {targets.dtype}; "
                        "convert with targets.long() (for one-hot rows use targets.argmax(-1))")
    if targets.ndim != 1 or len(targets) != z.shape[0]:
        raise ValueError(f"targets must be 1-D with one class id per row of logits: got shape "
                         f"{tuple(targets.shape)} for logits of shape {tuple(z.shape)}")
    if len(targets) == 0:
        raise ValueError("softmax_cross_entropy needs at least one example")
    if targets.min() < 0 or targets.max() >= z.shape[1]:
        raise ValueError(f"class ids must lie in [0, {z.shape[1]}), got values from "
                         f"{int(targets.min())} to {int(targets.max())}")
    targets = targets.to(z.device).long()
    correct = z.gather(1, targets.unsqueeze(1)).squeeze(1)   # (batch_size,)
    return (log_sum_exp(z, dim=1) - correct).mean()


# --------------------------------------------------------------------------- gradient check

def numerical_gradient(f: Callable[[torch.Tensor], object], x, eps: float = 1e-6) -> torch.Tensor:
    """Gradient of a scalar function ``f`` at ``x`` by central differences in float64.

    ``df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every element ``i``.
    ``f`` receives a float64 tensor shaped like ``x`` and must return one number.
    The result is a float64 tensor shaped like ``x``; ``x`` itself is not changed.
    Costs ``2 * x.numel()`` calls of ``f``: meant for checking small problems.
    """
    if not callable(f):
        raise TypeError(f"f must be a function of one tensor, got {type(f).__name__}")
    eps = _v.positive_number(eps, "eps", "numerical_gradient")
    point = _float_tensor(x, "x").detach().to(torch.float64).clone()
    flat = point.view(-1)
    grad = torch.zeros_like(flat)

    def value() -> float:
        out = f(point)
        if isinstance(out, torch.Tensor):
            if out.numel() != 1:
                raise ValueError(f"f must return a scalar, got a tensor of shape {tuple(out.shape)}; "
                                 "reduce it, e.g. with .mean() or .sum()")
            return float(out.detach().to(torch.float64))
        return float(out)

    with torch.no_grad():
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + eps
            plus = value()
            flat[i] = old - eps
            minus = value()
            flat[i] = old
            grad[i] = (plus - minus) / (2 * eps)
    return grad.view(point.shape)


# --------------------------------------------------------------------------- the MLP

class MLP(torch.nn.Module):
    """Fully connected network: ``Linear -> activation -> ... -> Linear`` (no activation at the end).

    ``sizes = [num_inputs, hidden_1, ..., num_outputs]``; ``activation`` is one of
    ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"gelu"``. ``init`` chooses the weights:
    ``None`` keeps PyTorch's default, ``"xavier"`` (Glorot normal, for sigmoid/tanh) or
    ``"he"`` (Kaiming normal, for ReLU); both set biases to zero.
    The output is raw scores (logits) of shape ``(batch_size, num_outputs)``.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", init: str | None = None):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least [num_inputs, num_outputs], got {sizes}")
        if not all(_v.is_int(s) and s > 0 for s in sizes):
            raise ValueError(f"every size must be a positive int, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if init not in (None, "xavier", "he"):
            raise ValueError(f"init must be None, 'xavier' or 'he', got {init!r}")
        self.sizes, self.activation, self.init = [int(s) for s in sizes], activation, init
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(n_in, n_out) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))
        self._act = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                     "gelu": F.gelu}[activation]
        if init is not None:
            for layer in self.layers:
                if init == "xavier":
                    torch.nn.init.xavier_normal_(layer.weight)
                else:
                    torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                torch.nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.sizes[0]:
            raise ValueError(f"this MLP expects {self.sizes[0]} input features (last dimension), "
                             f"got input of shape {tuple(x.shape)}")
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self._act(x)
        return x

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation!r}, init={self.init!r}"


def layer_grad_norms(model: torch.nn.Module) -> list[float]:
    """Euclidean norm of ``.grad`` of every ``Linear`` layer's weight, input layer first.

    Call it after ``loss.backward()``; layers without a gradient yet are an error.
    """
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError("the model has no torch.nn.Linear layers")
    norms = []
    for i, layer in enumerate(linears):
        if layer.weight.grad is None:
            raise ValueError(f"layer {i} has no gradient yet; run loss.backward() first")
        norms.append(float(layer.weight.grad.norm()))
    return norms


# --------------------------------------------------------------------------- data

def load_breast_cancer() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The Breast Cancer Wisconsin (Diagnostic) data that ships with scikit-learn.

    Returns ``(X, y, feature_names)``: ``X`` float32 ``(569, 30)`` raw (not standardized)
    features of cell nuclei, ``y`` long ``(569,)`` with **1 = malignant**, 0 = benign
    (scikit-learn codes malignant as 0; we flip it so the class to find is positive).
    The source is recorded for :func:`handson.provenance.report`.
    """
    from sklearn import datasets

    from . import data
    bunch = datasets.load_breast_cancer()
    X = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(1 - bunch.target, dtype=torch.long)
    data._record("breast_cancer", "scikit-learn load_breast_cancer (UCI Breast Cancer Wisconsin "
                 "Diagnostic, 569 examples, 30 features; shipped with the package)")
    return X, y, [str(n) for n in bunch.feature_names]

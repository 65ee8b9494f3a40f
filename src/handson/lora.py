r"""LoRA, low-rank adaptation (Hu et al. 2021, arXiv:2106.09685), written from scratch.

A pretrained linear layer :math:`y = W x + b` (``W`` of shape ``(out, in)``) is frozen
and a trainable low-rank update is added beside it:

.. math:: y = W x + b + \frac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times in},\;
          B \in \mathbb{R}^{out \times r}

``A`` starts Kaiming-uniform (as in ``peft``) and ``B`` at zero, so the adapted layer is
exactly the pretrained one at initialisation; only ``r (in + out)`` numbers are trained
per layer. After training, :meth:`LoRALinear.merge` folds the update into one plain
``nn.Linear`` with weight :math:`W + \frac{\alpha}{r} B A` (no extra cost at inference).

* :class:`LoRALinear` -- one adapted layer;
* :func:`apply_lora` -- replace the matching ``nn.Linear`` layers of a model (e.g. the
  ``query`` and ``value`` projections of a BERT-family encoder) and freeze everything
  else except the classification head;
* :func:`merge_lora` -- replace every :class:`LoRALinear` of a model by its merged layer;
* :func:`count_trainable` -- number of parameters with ``requires_grad``.
"""
from __future__ import annotations

import math
import numbers
from typing import Iterable

import torch
from torch import nn

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "count_trainable", "lora_parameter_count"]


def _check_rank(r) -> int:
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r <= 0:
        raise ValueError(f"the LoRA rank r must be a positive int (8 or 16 are usual), got {r!r}")
    return int(r)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0 \
            or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a positive number (often 2 * r), got {alpha!r}")
    return float(alpha)


def lora_parameter_count(in_features: int, out_features: int, r: int) -> int:
    """Trainable numbers of one LoRA adapter: ``r * (in_features + out_features)``."""
    r = _check_rank(r)
    for name, v in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return r * (int(in_features) + int(out_features))


class LoRALinear(nn.Module):
    r"""A frozen ``nn.Linear`` plus a trainable rank-``r`` update scaled by ``alpha / r``.

    ``forward(x) = base(x) + (alpha / r) * (x @ A.T) @ B.T`` with ``A`` ``(r, in)`` and
    ``B`` ``(out, r)``. ``dropout`` (default 0) is applied to ``x`` on the LoRA path
    only, as in ``peft``. The base layer's parameters get ``requires_grad=False``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, *, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear adapts an nn.Linear layer, got {type(base).__name__}")
        self.r = _check_rank(r)
        self.alpha = _check_alpha(alpha)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.scaling = self.alpha / self.r
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(self.r, base.in_features, dtype=w.dtype,
                                               device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, self.r, dtype=w.dtype,
                                               device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))     # peft's initialisation of A
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) * B @ A``, shape ``(out, in)``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T        # (..., out)
        return self.base(x) + self.scaling * update

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new plain ``nn.Linear`` with weight ``W + (alpha / r) B A`` and the same bias."""
        merged = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                           device=self.base.weight.device, dtype=self.base.weight.dtype)
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def apply_lora(model: nn.Module, target_names: Iterable[str], r: int, alpha: float, *,
               dropout: float = 0.0, trainable: Iterable[str] = ("classifier",)) -> list[str]:
    """Put a :class:`LoRALinear` on every ``nn.Linear`` whose own name is in ``target_names``.

    A module matches when the last part of its dotted name is one of ``target_names``
    (``["query", "value"]`` matches ``bert.encoder.layer.3.attention.self.query``), as
    in ``peft``'s ``target_modules``. Every other parameter is frozen, except those of
    the modules named in ``trainable`` (by default the new ``classifier`` head). The
    model is changed in place; returns the names of the adapted layers.
    """
    if isinstance(target_names, str):
        raise TypeError(f"target_names must be a list of module names such as "
                        f"['query', 'value'], not the string {target_names!r}")
    targets = set(target_names)
    if not targets:
        raise ValueError("target_names is empty: name the linear layers to adapt, e.g. "
                         "['query', 'value']")
    r, alpha = _check_rank(r), _check_alpha(alpha)
    if isinstance(trainable, str):
        trainable = (trainable,)
    trainable = set(trainable)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]
    chosen = [(n, m) for n, m in linears if n.rpartition(".")[2] in targets]
    if not chosen:
        suffixes = sorted({n.rpartition(".")[2] for n, _ in linears})
        raise ValueError(f"no nn.Linear layer of the model is named {sorted(targets)}; its linear "
                         f"layers are named {suffixes[:12]}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name, module in model.named_modules():
        if name and (name in trainable or name.rpartition(".")[2] in trainable):
            for p in module.parameters():
                p.requires_grad_(True)
    for name, module in chosen:
        _replace(model, name, LoRALinear(module, r, alpha, dropout=dropout))
    return [n for n, _ in chosen]


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear`` (in place)."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    if not names:
        raise ValueError("the model has no LoRALinear layer to merge (apply_lora(...) first)")
    for name in names:
        _replace(model, name, model.get_submodule(name).merge())
    return model


def count_trainable(model: nn.Module) -> int:
    """Number of parameters (elements) that the optimizer would update."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

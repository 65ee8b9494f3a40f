"""Attention from the formula up: the pieces of a Transformer encoder.

Everything here is small, batch-first and checked against PyTorch's own
implementations (see ``tests/test_attention.py`` and chapter 4):

* :func:`scaled_dot_product_attention` -- ``softmax(Q K^T / sqrt(d_k)) V``, returning the
  weights too; equals ``torch.nn.functional.scaled_dot_product_attention``.
* :func:`causal_mask`, :func:`padding_mask` -- boolean masks, **True = may attend**
  (the convention of ``F.scaled_dot_product_attention``).
* :class:`MultiHeadAttention` -- equals ``torch.nn.MultiheadAttention(batch_first=True)``
  once the weights are copied with :meth:`MultiHeadAttention.from_torch`.
* :func:`sinusoidal_positional_encoding`, :class:`LayerNorm`, :class:`PositionWiseFFN`.
* :class:`TransformerEncoderBlock` -- equals ``torch.nn.TransformerEncoderLayer``
  (post-norm or pre-norm) via :meth:`TransformerEncoderBlock.from_torch`.
* :func:`time_call`, :func:`peak_memory` -- cost of a call, on CPU or CUDA.

Shape names: ``N`` batch, ``L`` queries (target length), ``S`` keys/values
(source length), ``E`` embedding size, ``h`` heads, ``d_k`` / ``d_v`` per-head sizes.

.. warning::
   ``torch.nn.MultiheadAttention`` and ``torch.nn.TransformerEncoderLayer`` use the
   **opposite** boolean convention (True = may *not* attend). To give one of our
   masks to them, pass ``~mask``.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import validate as _v

__all__ = [
    "scaled_dot_product_attention", "causal_mask", "padding_mask", "MultiHeadAttention",
    "sinusoidal_positional_encoding", "LayerNorm", "PositionWiseFFN", "TransformerEncoderBlock",
    "time_call", "peak_memory",
]


# --------------------------------------------------------------------------- attention
def _check_tensor(name: str, x, min_dim: int = 2) -> None:
    _v.tensor(x, name, _v.caller(), dtype="floating", min_ndim=min_dim,
              shape_hint="(..., length, features)")


def _check_mask(mask, scores_shape: torch.Size) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a boolean tensor (True = may attend), got {kind}; "
                        "build one with causal_mask(...) / padding_mask(...) or compare, "
                        "e.g. `lengths[:, None] > torch.arange(S)`")
    try:
        torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the attention "
                         f"scores' shape {tuple(scores_shape)} (..., L queries, S keys)") from None


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None):
    r"""Attention :math:`\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V`; returns ``(output, weights)``.

    Args:
        q: queries ``(..., L, d_k)``.
        k: keys ``(..., S, d_k)``.
        v: values ``(..., S, d_v)``.
        mask: optional boolean tensor broadcastable to ``(..., L, S)``; ``True`` = the query
            may attend to that key. A query that may attend to no key gets zero weights
            and a zero output (as ``torch.nn.functional.scaled_dot_product_attention`` does).
            With 4-D inputs ``(N, h, L, d)`` a 3-D mask is read per *sequence*, ``(N, L, S)``
            or ``(N, 1, S)`` as :func:`padding_mask` makes it, and applies to every head
            (it becomes ``(N, 1, L or 1, S)``; plain broadcasting would line its batch axis
            up with the heads). Give a per-head mask as ``(N, h, L, S)``.

    Returns:
        ``output (..., L, d_v)`` and ``weights (..., L, S)`` (each row sums to 1).
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, x)
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries and keys need the same feature size d_k: q is {tuple(q.shape)}, "
                         f"k is {tuple(k.shape)} (last dimensions differ)")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"keys and values need the same length S: k is {tuple(k.shape)}, "
                         f"v is {tuple(v.shape)} (second-to-last dimensions differ)")
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)          # (..., L, S)
    if mask is not None:
        if isinstance(mask, torch.Tensor) and scores.dim() == 4 and mask.dim() == 3:
            mask = mask.unsqueeze(1)                            # per sequence -> every head
        _check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)                     # (..., L, S)
    if mask is not None:
        # rows with no allowed key are softmax(all -inf) = nan; make them 0 like torch
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights                                 # (..., L, d_v), (..., L, S)


def causal_mask(L: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(L, L)`` lower-triangular mask: query ``i`` may see keys ``j <= i`` (True = may attend).

    Give it to :func:`scaled_dot_product_attention` or :class:`MultiHeadAttention` as is, and to
    ``torch.nn.MultiheadAttention`` / ``torch.nn.TransformerEncoderLayer`` as ``~causal_mask(L)``.
    """
    L = _v.integer(L, "L", "causal_mask", low=1, what="a positive int (the sequence length)")
    return torch.ones(L, L, dtype=torch.bool, device=device).tril()


def padding_mask(valid_lens, num_keys: int) -> torch.Tensor:
    """Boolean ``(N, 1, num_keys)`` mask: for sequence ``n`` only the first ``valid_lens[n]`` keys.

    The middle axis of size 1 broadcasts over the queries, so the mask can be
    passed as is to :func:`scaled_dot_product_attention` with ``(N, L, d)`` inputs
    and to :class:`MultiHeadAttention`.
    """
    num_keys = _v.positive_int(num_keys, "num_keys", "padding_mask")
    valid_lens = torch.as_tensor(valid_lens)
    if valid_lens.dim() != 1 or valid_lens.is_floating_point():
        raise ValueError(f"valid_lens must be a 1-D tensor/list of ints (one length per sequence), "
                         f"got shape {tuple(valid_lens.shape)} and dtype {valid_lens.dtype}")
    if (valid_lens < 0).any() or (valid_lens > num_keys).any():
        raise ValueError(f"every valid length must lie in [0, {num_keys}], got {valid_lens.tolist()}")
    positions = torch.arange(num_keys, device=valid_lens.device)
    return (positions[None, :] < valid_lens[:, None])[:, None, :]   # (N, 1, S)


# --------------------------------------------------------------------------- multi-head
class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first: ``(N, L, E)`` queries, ``(N, S, E)`` keys/values.

    Each head ``i`` attends with its own projections ``Q W_q^i, K W_k^i, V W_v^i`` of size
    ``E / h``; the heads' outputs are concatenated and mixed by ``W_o``. Parameters:
    ``4 E^2`` weights plus ``4 E`` biases (if ``bias``).

    ``forward(query, key, value, mask=None)`` returns ``(output (N, L, E), weights)`` with
    weights averaged over heads ``(N, L, S)`` (``average_weights=False``: ``(N, h, L, S)``;
    ``need_weights=False``: ``None``, computed by PyTorch's fused kernel, which needs less
    memory). ``mask``: boolean, True = may attend; shape ``(L, S)``, ``(N, L, S)``,
    ``(N, 1, S)`` or ``(N, h, L, S)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}) "
                             "so that every head gets embed_dim // num_heads features")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.W_q = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.W_k = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.W_v = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.W_o = nn.Linear(embed_dim, embed_dim, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, E)`` -> ``(N, h, L, E / h)``."""
        n, length, _ = x.shape
        return x.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, h, L, E / h)`` -> ``(N, L, E)`` (the heads' outputs side by side)."""
        n, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(n, length, self.embed_dim)

    def forward(self, query, key, value, mask=None, need_weights: bool = True,
                average_weights: bool = True):
        for name, x in (("query", query), ("key", key), ("value", value)):
            _check_tensor(name, x, min_dim=1)
            if x.dim() != 3 or x.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} must be (batch, length, {self.embed_dim}) (batch first), "
                                 f"got shape {tuple(x.shape)}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key {tuple(key.shape)} and value {tuple(value.shape)} need the same "
                             "batch size and length")
        if mask is not None and isinstance(mask, torch.Tensor) and mask.dim() == 3:
            mask = mask.unsqueeze(1)                      # (N, 1, L or 1, S): same for all heads
        q = self.split_heads(self.W_q(query))             # (N, h, L, d_k)
        k = self.split_heads(self.W_k(key))               # (N, h, S, d_k)
        v = self.split_heads(self.W_v(value))             # (N, h, S, d_k)
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask)  # (N, h, L, d_k), (N, h, L, S)
            if p > 0:                                     # dropout on the weights, as torch does
                weights = F.dropout(weights, p)
                out = weights @ v
            if average_weights:
                weights = weights.mean(dim=1)             # (N, L, S)
        else:                                             # same maths, fused kernel, no weights
            if mask is not None:
                _check_mask(mask, q.shape[:-1] + (k.shape[-2],))
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None
        return self.W_o(self.merge_heads(out)), weights   # (N, L, E)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """A copy of ``torch.nn.MultiheadAttention``'s weights in this module (same outputs)."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"expected torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("only plain MultiheadAttention is supported (kdim = vdim = embed_dim, "
                             "add_bias_kv=False, add_zero_attn=False)")
        bias = mha.in_proj_bias is not None
        ours = cls(mha.embed_dim, mha.num_heads, bias=bias, dropout=mha.dropout)
        ours.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        with torch.no_grad():
            for i, lin in enumerate((ours.W_q, ours.W_k, ours.W_v)):
                rows = slice(i * mha.embed_dim, (i + 1) * mha.embed_dim)
                lin.weight.copy_(mha.in_proj_weight[rows])
                if bias:
                    lin.bias.copy_(mha.in_proj_bias[rows])
            ours.W_o.weight.copy_(mha.out_proj.weight)
            if bias:
                ours.W_o.bias.copy_(mha.out_proj.bias)
        return ours.train(mha.training)


# --------------------------------------------------------------------------- encoder block
def sinusoidal_positional_encoding(length: int, dim: int) -> torch.Tensor:
    r"""``(length, dim)`` sinusoids of Vaswani et al. (2017), float32.

    :math:`P_{i,2j} = \sin(i / 10000^{2j/d})`, :math:`P_{i,2j+1} = \cos(i / 10000^{2j/d})`
    for position ``i`` and ``d = dim`` (an odd ``dim`` ends with a sine column).
    """
    for name, value in (("length", length), ("dim", dim)):
        if not _v.is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    positions = torch.arange(length, dtype=torch.float64)[:, None]               # (length, 1)
    freqs = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)      # (ceil(dim/2),)
    angles = positions * freqs                                                   # (length, ceil(dim/2))
    P = torch.zeros(length, dim, dtype=torch.float64)
    P[:, 0::2] = torch.sin(angles)
    P[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return P.float()


class LayerNorm(nn.Module):
    r"""Normalize each position's features: :math:`\gamma (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta`.

    ``mu`` and the (biased) variance ``sigma^2`` are taken over the last dimension.
    """

    def __init__(self, num_hiddens: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_hiddens))
        self.bias = nn.Parameter(torch.zeros(num_hiddens)) if bias else None

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        y = (x - mean) / torch.sqrt(var + self.eps) * self.weight
        return y + self.bias if self.bias is not None else y


class PositionWiseFFN(nn.Module):
    """The same two-layer MLP at every position: ``linear2(dropout(act(linear1(x))))``."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, dropout: float = 0.0,
                 activation: str = "relu", bias: bool = True):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(num_hiddens, ffn_num_hiddens, bias=bias)
        self.linear2 = nn.Linear(ffn_num_hiddens, num_hiddens, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):                                 # (N, L, E) -> (N, L, E)
        act = F.relu if self.activation == "relu" else F.gelu
        return self.linear2(self.dropout(act(self.linear1(x))))


class TransformerEncoderBlock(nn.Module):
    """Self-attention and a feed-forward net, each wrapped in a residual and a LayerNorm.

    Post-norm (``norm_first=False``, the 2017 paper)::

        x = norm1(x + dropout(attention(x)))
        x = norm2(x + dropout(ffn(x)))

    Pre-norm (``norm_first=True``, GPT-2 and most recent models)::

        x = x + dropout(attention(norm1(x)))
        x = x + dropout(ffn(norm2(x)))

    ``forward(x (N, L, d_model), mask=None)`` -> ``(N, L, d_model)``; ``mask`` is boolean,
    True = may attend (e.g. :func:`causal_mask` or :func:`padding_mask`). The attention
    weights of the last call are not kept (the fused kernel computes the output without
    them); call ``block.attention(x, x, x, mask)`` to see them.
    """

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float = 0.0,
                 norm_first: bool = False, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 bias: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.attention = MultiHeadAttention(d_model, num_heads, bias=bias, dropout=dropout)
        self.ffn = PositionWiseFFN(d_model, dim_feedforward, dropout, activation, bias=bias)
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _attend(self, x, mask):
        return self.dropout1(self.attention(x, x, x, mask, need_weights=False)[0])

    def forward(self, x, mask=None):
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask)
            return x + self.dropout2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self._attend(x, mask))
        return self.norm2(x + self.dropout2(self.ffn(x)))

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "TransformerEncoderBlock":
        """A copy of ``torch.nn.TransformerEncoderLayer``'s weights (same outputs, batch first)."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"expected torch.nn.TransformerEncoderLayer, got {type(layer).__name__}")
        activation = {1: "relu", 2: "gelu"}.get(layer.activation_relu_or_gelu)
        if activation is None:
            raise ValueError("only activation='relu' or 'gelu' layers can be copied")
        if layer.norm1.normalized_shape != (layer.linear1.in_features,):
            raise ValueError("unexpected LayerNorm shape in the torch layer")
        mha = layer.self_attn
        ours = cls(mha.embed_dim, mha.num_heads, layer.linear1.out_features,
                   dropout=layer.dropout.p, norm_first=layer.norm_first, activation=activation,
                   layer_norm_eps=layer.norm1.eps, bias=layer.linear1.bias is not None)
        ours.attention = MultiHeadAttention.from_torch(mha)
        ours.to(device=layer.linear1.weight.device, dtype=layer.linear1.weight.dtype)
        with torch.no_grad():
            for mine, theirs in ((ours.ffn.linear1, layer.linear1), (ours.ffn.linear2, layer.linear2),
                                 (ours.norm1, layer.norm1), (ours.norm2, layer.norm2)):
                mine.weight.copy_(theirs.weight)
                if theirs.bias is not None:
                    mine.bias.copy_(theirs.bias)
        return ours.train(layer.training)


# --------------------------------------------------------------------------- cost
def time_call(fn: Callable, *args, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn(*args)`` in seconds (synchronizing CUDA if the inputs live there)."""
    on_cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            if on_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(*args)
            if on_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the start/stop lines that PyTorch's C++ profiler writes straight to file descriptor 2.

    (Jupyter forwards that descriptor into the notebook; ``sys.stderr`` is not involved.)
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn: Callable, *args) -> int:
    """Peak bytes of tensor memory allocated while ``fn(*args)`` runs (inputs excluded).

    CUDA inputs: ``torch.cuda.max_memory_allocated``. CPU inputs: the allocations and
    frees recorded by ``torch.autograd.profiler`` with ``profile_memory=True``, replayed
    in time order.
    """
    if any(isinstance(a, torch.Tensor) and a.is_cuda for a in args):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad():
            out = fn(*args)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        del out
        return int(peak)
    with _quiet_native_stderr():
        with torch.no_grad(), torch.autograd.profiler.profile(profile_memory=True,
                                                              use_kineto=False) as prof:
            fn(*args)
    current = peak = 0
    for event in sorted(prof.function_events, key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)

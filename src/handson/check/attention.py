"""Checkers for the exercises of chapter 4, *Attention from the formula up*."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _say, close, function_matches


def mha_parameters(answer, embed_dim: int, num_heads: int, bias: bool = True) -> bool:
    """Number of parameters of multi-head attention with ``embed_dim`` and ``num_heads``."""
    expected = sum(p.numel() for p in torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias)
                   .parameters())
    return close(answer, expected, atol=0, rtol=0, label="multi-head attention parameters",
                 hint="four E x E projections (W_q, W_k, W_v, W_o) plus, with bias, four length-E "
                      "bias vectors; the number of heads does not change the count")


def causal_mask(your_fn) -> bool:
    """``your_fn(n) -> bool (n, n)``, True where query i may attend to key j (j <= i)."""
    def reference(n):
        return torch.ones(n, n, dtype=torch.bool).tril()

    def make(trial):
        return (trial + 1,)

    def checked(n):
        got = your_fn(n)
        if got is None:
            return None                       # function_matches says "returned None"
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise TypeError("return a torch.bool tensor (True = may attend), "
                            f"got {getattr(got, 'dtype', type(got).__name__)}")
        return got

    return function_matches(checked, reference, make, trials=6, atol=0, label="causal mask",
                            hint="row i (a query) may see columns j <= i: torch.ones(n, n, "
                                 "dtype=torch.bool).tril()")


def padding_mask(your_fn) -> bool:
    """``your_fn(valid_lens (N,), num_keys) -> bool (N, 1, num_keys)``."""
    def reference(valid_lens, num_keys):
        return (torch.arange(num_keys)[None, :] < valid_lens[:, None])[:, None, :]

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        num_keys = 3 + trial
        return torch.randint(1, num_keys + 1, (2 + trial,), generator=g), num_keys

    def checked(valid_lens, num_keys):
        got = your_fn(valid_lens, num_keys)
        if got is None:
            return None
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise TypeError("return a torch.bool tensor, got "
                            f"{getattr(got, 'dtype', type(got).__name__)}")
        return got

    return function_matches(checked, reference, make, atol=0, label="padding mask",
                            hint="compare positions torch.arange(num_keys) with each length "
                                 "(broadcast (1, S) < (N, 1)), then add a query axis of size 1")


def scaled_dot_product_attention(your_fn) -> bool:
    """``your_fn(q, k, v, mask=None) -> (output, weights)`` against PyTorch, with and without masks."""
    def reference(q, k, v, mask):
        weights = torch.softmax((q @ k.mT / math.sqrt(q.shape[-1])).masked_fill(~mask, -math.inf), -1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), weights

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        n, L, S, d_k, d_v = 2, 3 + trial, 4 + trial, 4 + 2 * trial, 5
        q, k, v = (torch.randn(n, a, b, generator=g) for a, b in ((L, d_k), (S, d_k), (S, d_v)))
        if trial % 2 == 0:
            mask = torch.ones(L, S, dtype=torch.bool)            # nothing masked
        else:
            mask = torch.rand(n, L, S, generator=g) > 0.4
            mask[..., 0] = True                                  # every query sees something
        return q, k, v, mask

    return function_matches(your_fn, reference, make, trials=6, atol=1e-5,
                            label="scaled_dot_product_attention",
                            hint="scores = q @ k.transpose(-2, -1) / sqrt(d_k); set masked scores "
                                 "(mask False) to -inf BEFORE the softmax over the last axis; "
                                 "output = weights @ v")


def dot_product_variance(your_fn) -> bool:
    """``your_fn(d_k, sigma)`` -> Var(q . k) for q, k with i.i.d. N(0, sigma^2) entries."""
    def reference(d_k, sigma):
        return torch.tensor(d_k * sigma ** 4)

    def make(trial):
        return ([1, 4, 16, 64, 3, 512][trial], [1.0, 0.5, 2.0, 0.1, 1.3, 1.0][trial])

    def checked(d_k, sigma):
        got = your_fn(d_k, sigma)
        return None if got is None else torch.as_tensor(float(got))

    ok = function_matches(checked, reference, make, trials=6, rtol=1e-6, atol=1e-9,
                          label="Var(q . k)",
                          hint="each term q_i k_i has mean 0 and variance E[q_i^2] E[k_i^2] = "
                               "sigma^2 * sigma^2; the d_k terms are independent, so variances add")
    if ok:
        print("  so dividing by sqrt(d_k) brings the scores back to variance sigma^4, "
              "whatever d_k is")
    return ok


def encoder_block_parameters(answer, d_model: int, num_heads: int, dim_feedforward: int) -> bool:
    """Parameters of one Transformer encoder block (with biases)."""
    layer = torch.nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward)
    expected = sum(p.numel() for p in layer.parameters())
    if isinstance(answer, (int, float)) and answer == expected - 4 * d_model:
        return _say(False, "encoder block parameters: ", f"{answer} is {4 * d_model} short",
                    "the two LayerNorms each have a scale and a shift of size d_model")
    return close(answer, expected, atol=0, rtol=0, label="encoder block parameters",
                 hint="attention 4d^2 + 4d; feed-forward d*d_ff + d_ff + d_ff*d + d; "
                      "two LayerNorms 2d each")

"""Checkers for the exercises of chapter 4, *Attention from the formula up*.

Every checker prints PASS or a conceptual hint; none prints the expected value, the
difference to it, or code of the solution.
"""
from __future__ import annotations

import math

import torch

from . import _say, close, function_matches, is_integer


def mha_parameters(answer, embed_dim: int, num_heads: int, bias: bool = True) -> bool:
    """Number of parameters of multi-head attention with ``embed_dim`` and ``num_heads``."""
    expected = sum(p.numel() for p in torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias)
                   .parameters())
    label = "multi-head attention parameters"
    nudge = ("list the learned pieces: which projections does multi-head attention apply, how "
             "big is each weight matrix, and which of them have a bias?")
    hint = ("count every weight matrix and every bias vector of the projections for queries, "
            "keys, values and the output; cutting the projections into heads adds nothing")
    if is_integer(answer) and int(answer) == expected - (4 * embed_dim if bias else 0) and bias:
        hint = "the weight matrices are right; the projections also have biases"
    elif is_integer(answer) and int(answer) == 3 * embed_dim * embed_dim + 3 * embed_dim:
        hint = "the output projection W_o is a learned layer too"
    return close(answer, expected, integer=True, label=label, hint=hint, nudge=nudge)


def _bool_tensor(got, what: str):
    if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
        raise TypeError(f"return {what} as a torch.bool tensor (True = may attend), got "
                        f"{getattr(got, 'dtype', type(got).__name__)}")
    return got


def causal_mask(your_fn) -> bool:
    """``your_fn(n) -> bool (n, n)``, True where query i may attend to key j (j <= i)."""
    def reference(n):
        i = torch.arange(n)
        return i[None, :] <= i[:, None]                 # key index <= query index

    def make(trial):
        return ((1, 2, 5, 3, 8, 13, 4)[trial],)

    def checked(n):
        got = your_fn(n)
        return None if got is None else _bool_tensor(got, "the mask")

    return function_matches(checked, reference, make, trials=7, atol=0, rtol=0, label="causal mask",
                            nudge="rows are queries, columns are keys: which keys may the query at "
                                  "position i see in a model that predicts the next token?",
                            hint="a query may see its own position and every earlier one, never a "
                                 "later one; True marks what it MAY see (rows: queries, columns: "
                                 "keys)")


def padding_mask(your_fn) -> bool:
    """``your_fn(valid_lens (N,), num_keys) -> bool (N, 1, num_keys)``."""
    def reference(valid_lens, num_keys):
        out = torch.zeros(len(valid_lens), 1, num_keys, dtype=torch.bool)
        for row, length in enumerate(valid_lens.tolist()):
            out[row, 0, :length] = True
        return out

    # (batch size, number of keys): shapes vary, lengths cover 1, full and everything between
    shapes = ((1, 1), (2, 3), (3, 7), (5, 4), (4, 10), (6, 6), (3, 9))

    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        n, num_keys = shapes[trial]
        lens = torch.randint(1, num_keys + 1, (n,), generator=g)
        lens[0] = num_keys                                   # one sequence without padding
        if n > 1:
            lens[-1] = 1                                     # one with a single real token
        return lens.to(torch.int32 if trial % 3 == 2 else torch.long), num_keys

    def checked(valid_lens, num_keys):
        got = your_fn(valid_lens, num_keys)
        return None if got is None else _bool_tensor(got, "the mask")

    return function_matches(checked, reference, make, trials=len(shapes), atol=0, rtol=0,
                            label="padding mask",
                            nudge="key position j of sequence n is real when j is smaller than "
                                  "that sequence's length; compare all positions with all lengths "
                                  "at once by broadcasting",
                            hint="mask[n, 0, j] must be True exactly for the first valid_lens[n] key "
                                 "positions (j counts from 0); the result has a query axis of size "
                                 "1 in the middle so that it broadcasts over queries")


def scaled_dot_product_attention(your_fn) -> bool:
    """``your_fn(q, k, v, mask) -> (output, weights)``, with and without masks of several shapes."""
    def reference(q, k, v, mask):
        q64, k64, v64 = q.double(), k.double(), v.double()
        scores = q64 @ k64.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~mask, -math.inf)
        weights = torch.softmax(scores, dim=-1)
        return (weights @ v64).float(), weights.float()

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        # (batch, queries, keys, d_k, d_v): every size varies, L and S differ
        n, L, S, d_k, d_v = ((2, 3, 4, 4, 5), (1, 4, 6, 8, 3), (3, 5, 5, 2, 7),
                             (2, 2, 7, 16, 4), (4, 3, 3, 6, 2), (3, 6, 6, 32, 5))[trial]
        q, k, v = (2 * torch.randn(n, a, b, generator=g) for a, b in ((L, d_k), (S, d_k), (S, d_v)))
        kind = trial % 3
        if kind == 0:                                           # nothing masked, (L, S)
            mask = torch.ones(L, S, dtype=torch.bool)
        elif kind == 1:                                         # random, (N, L, S)
            mask = torch.rand(n, L, S, generator=g) > 0.4
            mask[..., torch.randint(0, S, (1,), generator=g)] = True   # every query sees a key
        else:                                                   # padding-like, (N, 1, S)
            lens = torch.randint(1, S + 1, (n,), generator=g)
            mask = (torch.arange(S)[None, :] < lens[:, None])[:, None, :]
        return q, k, v, mask

    return function_matches(your_fn, reference, make, trials=6, rtol=1e-4, atol=1e-5,
                            label="scaled_dot_product_attention",
                            nudge="follow the formula step by step: scores of every query with every "
                                  "key, the scale, the mask, a softmax per query, then the values",
                            hint="compare the scores with the formula (which axis is transposed, "
                                 "where the 1/sqrt(d_k) goes); a pair whose mask is False must get "
                                 "weight exactly 0 while each query's weights still sum to 1, and "
                                 "True means 'may attend'")


def dot_product_variance(your_fn) -> bool:
    """``your_fn(d_k, sigma)`` -> Var(q . k) for q, k with i.i.d. N(0, sigma^2) entries."""
    def reference(d_k, sigma):
        return torch.tensor(d_k * sigma ** 4, dtype=torch.float64)

    def make(trial):
        return ([1, 4, 16, 64, 3, 512, 7][trial], [1.0, 0.5, 2.0, 0.1, 1.3, 1.0, 3.0][trial])

    def checked(d_k, sigma):
        got = your_fn(d_k, sigma)
        if got is None:
            return None
        if isinstance(got, (str, bytes, bool)):
            raise TypeError(f"return a number, got {type(got).__name__}")
        return torch.as_tensor(float(got), dtype=torch.float64)

    ok = function_matches(checked, reference, make, trials=7, rtol=1e-6, atol=1e-12,
                          label="Var(q . k)",
                          nudge="start with one term q_i k_i: what are its mean and its variance "
                                "when q_i and k_i are independent with mean 0?",
                          hint="for independent zero-mean factors the variance of a product is the "
                               "product of their second moments; then use how variances of "
                               "independent terms combine in a sum (check both d_k and sigma)")
    if ok:
        print("  so dividing the scores by sqrt(d_k) removes the dependence on d_k")
    return ok


def encoder_block_parameters(answer, d_model: int, num_heads: int, dim_feedforward: int) -> bool:
    """Parameters of one Transformer encoder block (with biases)."""
    layer = torch.nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward)
    expected = sum(p.numel() for p in layer.parameters())
    d, f = d_model, dim_feedforward
    hint = ("add up three parts: the attention layer, the two linear layers of the feed-forward "
            "network (weights and biases) and the two LayerNorms")
    if is_integer(answer):
        a = int(answer)
        if a == expected - 4 * d:
            hint = "attention and feed-forward are right; the two LayerNorms have parameters too"
        elif a == expected - 2 * d:
            hint = "an encoder block has two LayerNorms, one after each sub-layer"
        elif a == expected - f - d:
            hint = "the two linear layers of the feed-forward network have biases as well"
        elif a == expected - (2 * d * f + f + d) + (d * f + f):
            hint = "the feed-forward network has two linear layers: d -> d_ff and d_ff -> d"
    return close(answer, expected, integer=True, label="encoder block parameters",
                 nudge="count each part of the block separately: attention, feed-forward network, "
                       "normalization layers",
                 hint=hint)

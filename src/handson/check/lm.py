"""Checkers for the exercises of chapter 7, *Language models: from an LSTM to a tiny GPT*.

Each prints PASS or a hint and never the expected value, the difference or solution code.
Typed numbers are accepted at the precision the exercise states.
"""
from __future__ import annotations

import math

import torch

from . import close, function_matches

# the precision each exercise asks for (the exercise text states it)
PERPLEXITY_PLACES = 1       # "to 1 decimal"
BITS_PLACES = 2             # "to 2 decimals"
FLOPS_RTOL = 0.02           # "to 2 significant figures"


def perplexity(answer, loss_nats: float) -> bool:
    """Perplexity of a model whose mean loss is ``loss_nats`` nats per token (to 1 decimal)."""
    return close(answer, math.exp(loss_nats), places=PERPLEXITY_PLACES, label="perplexity",
                 nudge="perplexity is the effective number of choices per token: undo the "
                       "logarithm that the loss is measured with",
                 hint="the loss is in nats, a natural logarithm, so perplexity is e to the loss; "
                      "a power of 2 belongs to a loss in bits")


def bits_per_char(answer, loss_nats: float) -> bool:
    """Bits per character of a loss of ``loss_nats`` nats per character (to 2 decimals)."""
    return close(answer, loss_nats / math.log(2), places=BITS_PLACES, label="bits per character",
                 nudge="a bit is a log to base 2 and a nat a natural log: change the base of the "
                       "logarithm",
                 hint="log2(p) = ln(p) / ln(2), so a loss in bits is larger than the same loss "
                      "in nats; divide, do not multiply")


def block_parameters(answer, n_embd: int, n_head: int = 4) -> bool:
    """Parameters of one pre-norm GPT block of width ``n_embd`` (MLP width ``4 * n_embd``);
    the answer must be an integer."""
    from ..attention import TransformerEncoderBlock
    block = TransformerEncoderBlock(n_embd, n_head, 4 * n_embd, norm_first=True, activation="gelu")
    expected = sum(p.numel() for p in block.parameters())
    return close(answer, expected, integer=True, label=f"parameters of a block with d={n_embd}",
                 nudge="add up the weight matrices and the bias and gain vectors of the attention, "
                       "the MLP and the two LayerNorms",
                 hint="attention: four d x d matrices and four biases; MLP: a d x 4d and a 4d x d "
                      "matrix with biases of sizes 4d and d; two LayerNorms with a gain and a bias "
                      "of size d each. The heads only split d, they add nothing. The count is a "
                      "whole number: give an int")


def temperature_probs(your_fn) -> bool:
    """``your_fn(logits (B, V), temperature, top_k)`` -> sampling probabilities ``(B, V)``."""
    def reference(logits, temperature, top_k):
        z = logits / temperature
        if top_k is not None:
            kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
            z = z.masked_fill(z < kth, float("-inf"))
        return torch.softmax(z, dim=-1)

    def make(trial):
        g = torch.Generator().manual_seed(100 + trial)
        B, V = (2, 7, 1, 4, 3, 5)[trial], (7, 10, 13, 5, 16, 9)[trial]
        logits = 2 * torch.randn(B, V, generator=g, dtype=torch.float64)
        temperature = (0.5, 1.0, 2.0, 0.8, 1.5, 3.0)[trial]
        top_k = (None, None, 3, 5, 1, 9)[trial]        # 5 = V and 9 = V: top-k keeps everything
        return logits, temperature, top_k

    def checked(logits, temperature, top_k):
        got = your_fn(logits, temperature, top_k)
        if got is not None and not isinstance(got, torch.Tensor):
            got = torch.as_tensor(got)
        return got

    return function_matches(checked, reference, make, trials=6, atol=1e-6,
                            label="temperature / top-k probabilities",
                            nudge="the function should return a tensor of probabilities, one row "
                                  "per row of logits",
                            hint="the temperature rescales the logits before the softmax (a low "
                                 "temperature must sharpen the distribution); top-k removes the "
                                 "smaller logits so that they get probability exactly 0, and each "
                                 "row must still sum to 1")


def causal_attention_weights(your_fn) -> bool:
    """``your_fn(scores (B, T, T)) -> weights (B, T, T)``: causal mask, then softmax over keys."""
    def reference(scores):
        T = scores.shape[-1]
        allowed = torch.ones(T, T, dtype=torch.bool).tril()
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)

    def make(trial):
        g = torch.Generator().manual_seed(200 + trial)
        B, T = (2, 1, 3, 4, 2)[trial], (2, 5, 3, 7, 1)[trial]
        return (torch.randn(B, T, T, generator=g, dtype=torch.float64),)

    def checked(scores):
        got = your_fn(scores)
        if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
            raise ValueError("the weights contain inf or nan: every query must keep at least one "
                             "key it may attend to, and masking belongs before the softmax")
        return got

    return function_matches(checked, reference, make, trials=5, atol=1e-6,
                            label="causal attention weights",
                            nudge="return a tensor of weights of the same shape as the scores",
                            hint="a query may attend to its own position and the earlier ones; the "
                                 "later keys must get weight exactly 0, and each row of weights must "
                                 "still sum to 1, so decide which scores to remove before the "
                                 "softmax normalizes them")


def training_flops(answer, n_params: float, n_tokens: float) -> bool:
    """Training compute ``6 N D`` in FLOPs for ``n_params`` parameters and ``n_tokens`` tokens
    (to 2 significant figures)."""
    return close(answer, 6.0 * n_params * n_tokens, rtol=FLOPS_RTOL, atol=0, label="training FLOPs",
                 nudge="training compute counts the FLOPs of the forward and the backward pass, per "
                       "parameter and per training token",
                 hint="2 FLOPs per parameter per token forward and 4 backward; the tokens are every "
                      "token of every training step (steps x batch size x block size)")


def nanogpt_training_flops(answer) -> bool:
    """Training compute of nanoGPT's character baseline: V=65, T=256, 6 layers, d=384,
    5,000 steps of 64 windows (to 2 significant figures)."""
    from ..lm import gpt_num_parameters
    n_params = gpt_num_parameters(65, 256, 6, 384)
    return training_flops(answer, n_params, 5000 * 64 * 256)

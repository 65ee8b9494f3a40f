"""Checkers for the exercises of chapter 7, *Language models: from an LSTM to a tiny GPT*."""
from __future__ import annotations

import math

import torch

from . import _say, close, function_matches


def perplexity(answer, loss_nats: float) -> bool:
    """Perplexity of a model whose mean loss is ``loss_nats`` nats per token."""
    return close(answer, math.exp(loss_nats), rtol=1e-3, atol=1e-6, label="perplexity",
                 hint="a loss in nats is a natural log: perplexity = e ** loss (math.exp), "
                      "which equals 2 ** bits only when the loss is first converted to bits")


def bits_per_char(answer, loss_nats: float) -> bool:
    """Bits per character of a loss of ``loss_nats`` nats per character."""
    return close(answer, loss_nats / math.log(2), rtol=1e-3, atol=1e-6, label="bits per character",
                 hint="divide by ln 2 (one bit is ln 2 = 0.693 nats)")


def block_parameters(answer, n_embd: int, n_head: int = 4) -> bool:
    """Parameters of one pre-norm GPT block of width ``n_embd`` (MLP width ``4 * n_embd``)."""
    from ..attention import TransformerEncoderBlock
    block = TransformerEncoderBlock(n_embd, n_head, 4 * n_embd, norm_first=True, activation="gelu")
    expected = sum(p.numel() for p in block.parameters())
    return close(answer, expected, atol=0, rtol=0, label=f"parameters of a block with d={n_embd}",
                 hint="attention: four d x d matrices + four biases; MLP: d x 4d and 4d x d matrices "
                      "+ biases of sizes 4d and d; two LayerNorms with a gain and a bias of size d "
                      "each. The heads only split d, they add nothing")


def temperature_probs(your_fn) -> bool:
    """``your_fn(logits (B, V), temperature, top_k)`` -> sampling probabilities ``(B, V)``."""
    def reference(logits, temperature, top_k):
        z = logits / temperature
        if top_k is not None:
            kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
            z = z.masked_fill(z < kth, float("-inf"))
        return torch.softmax(z, dim=-1)

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        logits = 2 * torch.randn(2 + trial, 7 + 3 * trial, generator=g, dtype=torch.float64)
        temperature = (0.5, 1.0, 2.0, 0.8, 1.5)[trial % 5]
        top_k = (None, None, 3, 5, 1)[trial % 5]
        return logits, temperature, top_k

    def checked(logits, temperature, top_k):
        got = your_fn(logits.clone(), temperature, top_k)
        if got is not None and not isinstance(got, torch.Tensor):
            got = torch.as_tensor(got)
        return got

    return function_matches(checked, reference, make, trials=5, atol=1e-6,
                            label="temperature / top-k probabilities",
                            hint="divide the logits by the temperature first; for top-k set every "
                                 "logit below the k-th largest to -inf; then softmax over the last axis")


def causal_attention_weights(your_fn) -> bool:
    """``your_fn(scores (B, T, T)) -> weights (B, T, T)``: causal mask, then softmax over keys."""
    def reference(scores):
        T = scores.shape[-1]
        allowed = torch.ones(T, T, dtype=torch.bool).tril()
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        return (torch.randn(2, 2 + trial, 2 + trial, generator=g, dtype=torch.float64),)

    def checked(scores):
        got = your_fn(scores.clone())
        if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
            raise ValueError("the weights contain inf or nan: mask the scores with -inf *before* "
                             "the softmax, so that the weights of masked keys come out as 0")
        return got

    return function_matches(checked, reference, make, trials=5, atol=1e-6,
                            label="causal attention weights",
                            hint="query i may see keys j <= i: set scores[..., i, j] to -inf where "
                                 "j > i (torch.ones(T, T, dtype=torch.bool).tril() marks the allowed "
                                 "pairs), then softmax over the last axis; rows must sum to 1")


def training_flops(answer, n_params: float, n_tokens: float) -> bool:
    """Training compute ``6 N D`` in FLOPs for ``n_params`` parameters and ``n_tokens`` tokens."""
    if answer is None:
        return _say(False, "training FLOPs: ", "no answer yet (the cell still holds None)",
                    "C = 6 * N * D")
    return close(answer, 6.0 * n_params * n_tokens, rtol=0.02, atol=0, label="training FLOPs",
                 hint="C = 6 N D: 2 FLOPs per parameter per token forward, 4 backward; D counts "
                      "every token of every training step (steps x batch size x block size)")


def nanogpt_training_flops(answer) -> bool:
    """Training compute of nanoGPT's character baseline: V=65, T=256, 6 layers, d=384,
    5,000 steps of 64 windows."""
    from ..lm import gpt_num_parameters
    n_params = gpt_num_parameters(65, 256, 6, 384)
    return training_flops(answer, n_params, 5000 * 64 * 256)

"""Checkers for the exercises of chapter 8, *Inside a modern LLM*."""
from __future__ import annotations

import math
import numbers

from . import NO_ANSWER, _say, close, is_integer

TOY_CORPUS = "aaabdaaabac"


# --------------------------------------------------------------------------- top-p
def _expected_top_p(probs, p) -> set[int]:
    import torch

    from ..llm import top_p_filter
    logits = torch.tensor(probs, dtype=torch.float64).log()[None]
    return set(torch.isfinite(top_p_filter(logits, p))[0].nonzero()[:, 0].tolist())


def top_p_set(answer, probs, p: float) -> bool:
    """The token ids that top-p (nucleus) sampling with threshold ``p`` keeps for ``probs``."""
    label = f"top-p set for p={p}: "
    nudge = ("sort the tokens from most to least likely and add them up until the sum first "
             "reaches p; the answer is the ids (positions in the list) of the tokens you added")
    if answer is None or answer is Ellipsis:
        return _say(False, label, NO_ANSWER, nudge)
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__iter__"):
        return _say(False, label, "give a list or set of token ids, e.g. [0, 2]", nudge)
    items = list(answer.tolist() if hasattr(answer, "tolist") else answer)
    if not all(is_integer(i) or (isinstance(i, int) and not isinstance(i, bool)) for i in items):
        if any(isinstance(i, numbers.Real) and not isinstance(i, bool) and not float(i).is_integer()
               for i in items):
            return _say(False, label, "the answer holds fractions", "give the token ids (the "
                        "positions 0, 1, 2, ... of the probabilities), not the probabilities")
        return _say(False, label, "the ids must be integers", nudge)
    got = {int(i) for i in items}
    if len(got) != len(items):
        return _say(False, label, "an id appears twice", "list each kept token once")
    want = _expected_top_p(probs, p)
    if got == want:
        return _say(True, label, "", None)
    if not got <= set(range(len(probs))):
        return _say(False, label, f"ids must lie in 0..{len(probs) - 1}", nudge)
    mass = sum(probs[i] for i in got)
    if mass < p - 1e-12:
        hint = "the kept tokens must hold probability at least p: keep adding the next most likely"
    elif got > want:
        hint = ("this set reaches p but is not the smallest: stop at the first token that brings "
                "the sum to p or above")
    else:
        hint = "keep the most likely tokens first (sort by probability, not by id)"
    return _say(False, label, "not right yet", hint)


# --------------------------------------------------------------------------- RoPE
def rope_pair(answer, x=(1.0, 2.0), m: int = 3, theta: float = 0.5) -> bool:
    """The pair ``x`` rotated by RoPE at position ``m`` with frequency ``theta`` (to 4 decimals)."""
    a = m * theta
    c, s = math.cos(a), math.sin(a)
    want = (x[0] * c - x[1] * s, x[1] * c + x[0] * s)
    hint = "rotate the 2-D vector by the angle m * theta: (x0 cos - x1 sin, x1 cos + x0 sin)"
    if answer is not None and answer is not Ellipsis:
        try:
            got = [float(v) for v in answer]
        except (TypeError, ValueError):
            got = None
        if got is not None and len(got) == 2:
            back = (x[0] * c + x[1] * s, x[1] * c - x[0] * s)
            once = (x[0] * math.cos(theta) - x[1] * math.sin(theta),
                    x[1] * math.cos(theta) + x[0] * math.sin(theta))
            if all(abs(g - w) <= 1e-4 for g, w in zip(got, back)):
                hint = ("that is the rotation the other way round: with the angle a = m*theta the "
                        "first component is x0 cos a - x1 sin a")
            elif all(abs(g - w) <= 1e-4 for g, w in zip(got, once)):
                hint = "the angle grows with the position: it is m * theta, not theta"
            elif abs(math.hypot(*got) - math.hypot(*x)) > 1e-3:
                hint = ("a rotation keeps the length of the pair; yours changed it. Use "
                        "(x0 cos a - x1 sin a, x1 cos a + x0 sin a) with a = m * theta in radians")
    return close(answer, want, places=4, label="rotated pair", hint=hint,
                 nudge="RoPE turns each pair of features like a 2-D vector, by an angle that is the "
                       "position times the pair's frequency")


# --------------------------------------------------------------------------- KV cache
def kv_cache_bytes(answer, n_layer: int, n_kv_head: int, head_dim: int, seq_len: int,
                   batch_size: int, bytes_per_element: int, n_head: int | None = None) -> bool:
    """Bytes of the KV cache of a model for ``batch_size`` sequences of ``seq_len`` tokens."""
    want = 2 * n_layer * n_kv_head * head_dim * seq_len * batch_size * bytes_per_element
    hint = ("per token and layer the cache holds one key and one value vector for every "
            "key/value head; multiply by the layers, tokens, sequences and bytes per number")
    if is_integer(answer):
        got = int(answer)
        if got * 2 == want:
            hint = "the cache stores keys *and* values: two tensors per layer"
        elif n_head is not None and got == want // n_kv_head * n_head:
            hint = ("with grouped-query attention only the key/value heads are cached, not the "
                    "query heads")
        elif got == want // bytes_per_element:
            hint = "that counts numbers, not bytes: multiply by the bytes per number"
        elif got == want // batch_size:
            hint = "every sequence of the batch has its own cache"
    return close(answer, want, integer=True, label="KV-cache bytes", hint=hint,
                 nudge="what does a decoder keep for every past token so it need not recompute it?")


# --------------------------------------------------------------------------- BPE by hand
def _as_bytes(piece):
    if isinstance(piece, bytes):
        return piece
    if isinstance(piece, str):
        return piece.encode("utf-8")
    raise TypeError


def toy_bpe_merges(answer) -> bool:
    """The first three merges of byte-level BPE on ``'aaabdaaabac'`` (no pre-tokenizer; ties go
    to the pair with the smaller ids), as a list of three pairs of strings."""
    from ..llm import BPETokenizer
    want = BPETokenizer.train(TOY_CORPUS, 259, pattern=None).merges_as_bytes()
    label = "three merges: "
    nudge = ("count every adjacent pair of symbols, merge the most frequent one everywhere, "
             "then count again on the new sequence")
    if answer is None or answer is Ellipsis:
        return _say(False, label, NO_ANSWER, nudge)
    try:
        got = [(_as_bytes(a), _as_bytes(b)) for a, b in answer]
    except (TypeError, ValueError):
        return _say(False, label, "give a list of three pairs of strings, like "
                    "[('x', 'y'), ('xy', 'z'), ...]", nudge)
    if len(got) != len(want):
        return _say(False, label, f"{len(got)} merges, the exercise asks for {len(want)}", nudge)
    if got == want:
        return _say(True, label, "", None)
    first_wrong = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    if first_wrong == 0:
        hint = "the first merge is the pair that occurs most often in the raw text"
    elif first_wrong == 1:
        hint = ("after the first merge the new token is one symbol; count the pairs again. Two "
                "pairs tie: the smaller ids win, and a merged token's id (256, 257, ...) is "
                "larger than any byte")
    else:
        hint = "count the pairs once more on the sequence after the second merge"
    return _say(False, label, f"merge {first_wrong + 1} is not right yet", hint)


# --------------------------------------------------------------------------- parameters
def llama_parameters(answer, vocab_size: int = 32000, n_layer: int = 32, n_head: int = 32,
                     n_kv_head: int = 8, n_embd: int = 4096, ffn_hidden: int = 14336,
                     tie_embeddings: bool = False) -> bool:
    """Parameters of a Llama-style model (defaults: Mistral 7B's configuration)."""
    from ..llm import llama_num_parameters
    want = llama_num_parameters(vocab_size, n_layer, n_head, n_kv_head, n_embd, ffn_hidden,
                                tie_embeddings)
    hint = ("per block: q and o projections d x d each, k and v projections d x (KV heads x "
            "head_dim) each, three SwiGLU matrices d x f, two RMSNorm gains; then the embedding, "
            "the final norm and the output layer")
    if is_integer(answer):
        got, d = int(answer), n_embd
        mha = llama_num_parameters(vocab_size, n_layer, n_head, n_head, n_embd, ffn_hidden,
                                   tie_embeddings)
        if got == mha and mha != want:
            hint = "keys and values have only the KV heads: d x (n_kv_head x head_dim) each"
        elif got == want - vocab_size * d and not tie_embeddings:
            hint = "this model does not tie its output layer to the embedding: count both"
        elif got == want - n_layer * d * ffn_hidden:
            hint = "SwiGLU has three matrices (gate, up, down), not two"
        elif got == want - n_layer * 2 * d - d:
            hint = "the RMSNorm gains count too: two per block and one at the end"
    return close(answer, want, integer=True, label="parameter count", hint=hint,
                 nudge="add up the weight matrices of one block, multiply by the layers, then "
                       "add what sits outside the blocks")

"""Inside a modern LLM: the parts that a Llama-style model adds to chapter 7's GPT.

Everything chapter 8 builds and later chapters may reuse:

* :class:`BPETokenizer` -- byte-level byte-pair encoding trained from scratch
  (``BPETokenizer.train(text, vocab_size)``, ``encode`` / ``decode``, lossless on any
  Unicode text), GPT-2's pre-tokenizer split (:data:`GPT2_SPLIT_PATTERN`) and its
  byte -> printable-character table (:func:`bytes_to_unicode`); :func:`train_hf_bpe` trains
  Hugging Face ``tokenizers``' byte-level BPE with the same settings, for comparison.
* :class:`RMSNorm`, :class:`SwiGLU` (with :func:`swiglu_hidden`, Llama's width rule).
* :func:`rope_cache`, :func:`apply_rope` -- rotary position embeddings in the half-split
  (GPT-NeoX / Hugging Face Llama) convention; :func:`apply_rope_interleaved` is the
  interleaved one (RoFormer, Meta's Llama reference code).
* :func:`repeat_kv`, :class:`GroupedQueryAttention`, :class:`KVCache`, :func:`kv_cache_bytes`.
* :class:`TinyLlama` -- RMSNorm, RoPE, grouped-query attention, SwiGLU, no biases, optional
  tied embeddings; the module names match Hugging Face's ``LlamaForCausalLM``;
  :func:`llama_num_parameters` counts it by formula.
* :func:`top_p_filter`, :func:`top_k_filter`, :func:`sample_token`, :func:`generate` --
  greedy / temperature / top-k / top-p decoding, with or without the KV cache.
* :func:`online_softmax_attention` -- FlashAttention's idea: attention over tiles with a
  running maximum and sum, never holding the full score matrix.
* :func:`bits_per_character` -- the tokenizer-independent loss for comparing vocabularies.

Shape names: ``B`` batch, ``H`` query heads, ``H_kv`` key/value heads, ``T`` sequence
length, ``D`` head dimension, ``V`` vocabulary size, ``d`` = ``n_embd`` model width.
"""
from __future__ import annotations

import heapq
import json
import math
import time
from collections import Counter, defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from .lm import GPT as _BookGPT

_gpt_init_weights = _BookGPT._init_weights

__all__ = [
    "GPT2_SPLIT_PATTERN", "bytes_to_unicode", "hf_byte_order", "BPETokenizer", "train_hf_bpe",
    "hf_merges", "RMSNorm", "SwiGLU", "swiglu_hidden", "rope_cache", "apply_rope",
    "apply_rope_interleaved", "repeat_kv", "KVCache", "GroupedQueryAttention", "LlamaBlock",
    "TinyLlama", "llama_num_parameters", "kv_cache_bytes", "top_k_filter", "top_p_filter",
    "sample_token", "generate", "online_softmax_attention", "bits_per_character",
]


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _float_tensor(name: str, x, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if dim is not None and x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {tuple(x.shape)}")


# =========================================================================== BPE
#: GPT-2's pre-tokenizer: contractions, words with their leading space, numbers, runs of
#: other symbols, whitespace. BPE merges never cross the boundaries of these chunks.
GPT2_SPLIT_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                      r"""|\s+(?!\S)|\s+""")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Printable Latin-1 bytes map to themselves; the others (control characters, the space,
    ...) are shifted to code points from 256 on, so the space becomes ``'Ġ'`` and the
    newline ``'Ċ'``. Byte-level tokenizers store their tokens as strings of these characters.
    """
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    table, shift = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def hf_byte_order() -> list[int]:
    """The id Hugging Face's BPE trainer gives each byte: bytes sorted by their GPT-2 character.

    ``hf_byte_order()[b]`` is the id of byte ``b`` in a byte-level vocabulary trained by
    ``tokenizers`` (no special tokens): the trainer sorts its alphabet by code point.
    """
    table = bytes_to_unicode()
    ranked = sorted(range(256), key=lambda b: ord(table[b]))
    order = [0] * 256
    for rank, b in enumerate(ranked):
        order[b] = rank
    return order


def _splitter(pattern: str | None):
    if pattern is None:
        return lambda text: [text] if text else []
    try:
        import regex
    except ImportError as exc:  # pragma: no cover - regex comes with transformers
        raise ImportError("the GPT-2 split pattern needs the 'regex' package (pip install regex), "
                          "or pass pattern=None for no pre-tokenizer") from exc
    return regex.compile(pattern).findall


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` (left to right) by ``new_id``."""
    out, i, a, b = [], 0, pair[0], pair[1]
    n = len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level byte-pair encoding (Sennrich et al. 2016 on UTF-8 bytes, as in GPT-2).

    The base vocabulary is the 256 byte values (ids 0..255), so every text can be encoded and
    decoding gives it back exactly. Training repeats: count adjacent pairs of tokens inside each
    pre-tokenizer chunk (weighted by how often the chunk occurs), merge the most frequent pair
    into a new token (ids 256, 257, ...). Encoding applies the learned merges in the order they
    were learned.

    Build one with :meth:`train`; ``merges`` is the list of merged id pairs, ``vocab`` maps each
    id to its bytes.
    """

    def __init__(self, merges: list[tuple[int, int]] | None = None,
                 pattern: str | None = GPT2_SPLIT_PATTERN):
        self.pattern = pattern
        self._split = _splitter(pattern)
        self.merges: list[tuple[int, int]] = []
        self.ranks: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self._cache: dict[str, list[int]] = {}
        for pair in merges or []:
            self._add_merge(tuple(pair))

    def _add_merge(self, pair: tuple[int, int]) -> int:
        a, b = pair
        if a not in self.vocab or b not in self.vocab:
            raise ValueError(f"merge {pair} uses an id that is not in the vocabulary yet")
        new_id = 256 + len(self.merges)
        self.merges.append((a, b))
        self.ranks[(a, b)] = new_id
        self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        return new_id

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = GPT2_SPLIT_PATTERN,
              tie_break: str = "ids") -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text``.

        ``pattern``: the pre-tokenizer regex (default GPT-2's; ``None`` = the whole text is one
        chunk, fine for a toy text but slow for a long one). Among pairs with the same count
        the merge goes to the smallest pair of ids; ``tie_break="hf"`` compares the ids that
        Hugging Face's trainer gives the bytes (:func:`hf_byte_order`) instead of the byte
        values. Training stops early if no pair is left to merge.

        The pair counts are updated incrementally: a merge only recounts the chunks that
        contain the merged pair, and a heap with lazy deletion finds the next best pair.
        """
        if not isinstance(text, str):
            raise TypeError(f"train needs a str, got {type(text).__name__}")
        if not text:
            raise ValueError("train needs a non-empty text to count byte pairs in")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int >= 256 (the 256 byte values come first), "
                             f"got {vocab_size!r}")
        if tie_break not in ("ids", "hf"):
            raise ValueError(f"tie_break must be 'ids' or 'hf', got {tie_break!r}")
        tok = cls(pattern=pattern)
        base = hf_byte_order() if tie_break == "hf" else list(range(256))

        def key(pair):                      # merged ids (>= 256) keep their own value
            a, b = pair
            return (base[a] if a < 256 else a, base[b] if b < 256 else b)

        chunks = Counter(tok._split(text))
        words = [list(w.encode("utf-8")) for w in chunks]
        counts = list(chunks.values())
        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for wi, w in enumerate(words):
            for pair in zip(w, w[1:]):
                pair_counts[pair] += counts[wi]
                where[pair].add(wi)
        heap = [(-c, key(p), p) for p, c in pair_counts.items()]
        heapq.heapify(heap)
        while 256 + len(tok.merges) < vocab_size:
            best = None
            while heap:
                neg, _, pair = heapq.heappop(heap)
                current = pair_counts.get(pair, 0)
                if current == -neg and current > 0:
                    best = pair
                    break
                if current > 0:              # stale entry: push the true count back
                    heapq.heappush(heap, (-current, key(pair), pair))
            if best is None:
                break
            new_id = tok._add_merge(best)
            touched = set()
            for wi in list(where.pop(best, ())):
                w, c = words[wi], counts[wi]
                new_w = _merge(w, best, new_id)
                if len(new_w) == len(w):
                    continue
                for pair in zip(w, w[1:]):
                    pair_counts[pair] -= c
                for pair in zip(new_w, new_w[1:]):
                    pair_counts[pair] += c
                    where[pair].add(wi)
                    touched.add(pair)
                words[wi] = new_w
            pair_counts.pop(best, None)
            for pair in touched:
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], key(pair), pair))
        return tok

    @property
    def vocab_size(self) -> int:
        """256 byte tokens plus one token per merge."""
        return 256 + len(self.merges)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"

    def merges_as_bytes(self) -> list[tuple[bytes, bytes]]:
        """The merges as pairs of byte strings, in the order they were learned."""
        return [(self.vocab[a], self.vocab[b]) for a, b in self.merges]

    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, math.inf))
            if pair not in self.ranks:
                break
            ids = _merge(ids, pair, self.ranks[pair])
        if len(self._cache) < 200_000:
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (any Unicode string; the empty string gives ``[]``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode needs a str, got {type(text).__name__}")
        out: list[int] = []
        for chunk in self._split(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def decode(self, ids) -> str:
        """The text of a sequence of ids (list of ints or 1-D integer tensor).

        Bytes that do not form valid UTF-8 (a sequence cut inside a character) become
        U+FFFD, as in GPT-2; the ids of :meth:`encode` always decode to the original text.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1 or ids.is_floating_point():
                raise ValueError(f"decode needs a 1-D integer tensor, got shape {tuple(ids.shape)} "
                                 f"and dtype {ids.dtype}")
            ids = ids.tolist()
        parts = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or i not in self.vocab:
                raise ValueError(f"id {i!r} is not in the vocabulary 0..{self.vocab_size - 1}")
            parts.append(self.vocab[i])
        return b"".join(parts).decode("utf-8", errors="replace")


def train_hf_bpe(text: str, vocab_size: int):
    """Hugging Face ``tokenizers``' byte-level BPE trained on ``text`` with our settings.

    GPT-2's byte-level pre-tokenizer (the same split pattern, no prefix space), the full
    256-byte alphabet, no special tokens, no minimum frequency.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not isinstance(text, str) or not text:
        raise ValueError("train_hf_bpe needs a non-empty str")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                  special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def hf_merges(tokenizer) -> list[tuple[bytes, bytes]]:
    """The merges of a trained ``tokenizers`` BPE model, as pairs of byte strings."""
    inverse = {ch: b for b, ch in bytes_to_unicode().items()}
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    out = []
    for m in merges:
        a, b = m.split(" ") if isinstance(m, str) else m
        out.append((bytes(inverse[c] for c in a), bytes(inverse[c] for c in b)))
    return out


def bits_per_character(total_nats: float, n_characters: int) -> float:
    """A loss summed over a text, per character of that text, in bits: nats / chars / ln 2.

    Unlike the mean loss per token it does not depend on the tokenizer, so models with
    different vocabularies can be compared on the same text.
    """
    if isinstance(n_characters, bool) or not isinstance(n_characters, int) or n_characters < 1:
        raise ValueError(f"n_characters must be a positive int, got {n_characters!r}")
    if not total_nats >= 0:
        raise ValueError(f"total_nats must be >= 0, got {total_nats!r}")
    return float(total_nats) / n_characters / math.log(2)


# =========================================================================== layers
class RMSNorm(nn.Module):
    r"""Root-mean-square normalization: :math:`y = g \odot x / \sqrt{\mathrm{mean}(x^2) + \epsilon}`.

    LayerNorm without the mean subtraction and without the bias (Zhang & Sennrich 2019), as in
    Llama. Computed in float32 and cast back, like ``torch.nn.RMSNorm`` and Hugging Face's
    ``LlamaRMSNorm``.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        _positive_int("dim", dim)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _float_tensor("x", x)
        if x.shape[-1] != self.dim:
            raise ValueError(f"RMSNorm({self.dim}) got an input whose last dimension is "
                             f"{x.shape[-1]} (shape {tuple(x.shape)})")
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


def swiglu_hidden(n_embd: int, multiple_of: int = 256) -> int:
    """Llama's SwiGLU width: ``2/3`` of ``4 d`` (so three matrices cost what two of width
    ``4d`` would), rounded up to a multiple of ``multiple_of``. ``swiglu_hidden(4096) == 11008``."""
    _positive_int("n_embd", n_embd)
    _positive_int("multiple_of", multiple_of)
    hidden = int(2 * 4 * n_embd / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    r"""Gated feed-forward layer of Llama (Shazeer 2020):
    :math:`W_\text{down}\,(\mathrm{SiLU}(W_\text{gate} x) \odot W_\text{up} x)`, no biases.

    Names as in Hugging Face's ``LlamaMLP``: ``gate_proj``, ``up_proj`` (``d -> hidden``) and
    ``down_proj`` (``hidden -> d``).
    """

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        _positive_int("dim", dim)
        _positive_int("hidden", hidden)
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:      # (..., d) -> (..., d)
        _float_tensor("x", x)
        if x.shape[-1] != self.gate_proj.in_features:
            raise ValueError(f"SwiGLU expects the last dimension {self.gate_proj.in_features}, "
                             f"got shape {tuple(x.shape)}")
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


# =========================================================================== RoPE
def rope_cache(seq_len: int, head_dim: int, base: float = 10000.0, device=None,
               dtype: torch.dtype = torch.float32):
    r"""Cosines and sines of the rotary embedding, each ``(seq_len, head_dim)``.

    Pair ``i`` (``0 <= i < head_dim/2``) turns by the angle :math:`m\,\theta_i` at position
    ``m``, with :math:`\theta_i = \text{base}^{-2i/D}`. Half-split layout (GPT-NeoX, Hugging
    Face Llama): column ``i`` and column ``i + D/2`` both hold angle ``i``.
    """
    _positive_int("seq_len", seq_len)
    _positive_int("head_dim", head_dim)
    if head_dim % 2:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be even, got {head_dim}")
    if not base > 1:
        raise ValueError(f"base must be > 1, got {base!r}")
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv_freq[None]  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)                                     # (T, D)
    return angles.cos().to(dtype=dtype, device=device), angles.sin().to(dtype=dtype, device=device)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    r"""Rotate queries or keys ``x (B, H, T, D)`` by their positions (half-split convention).

    ``cos``, ``sin``: ``(T, D)`` rows of :func:`rope_cache` for the positions of ``x`` (slice
    ``cos[start:start + T]`` when the positions start later, as with a KV cache). Feature
    ``j < D/2`` and feature ``j + D/2`` form pair ``j``:
    :math:`(x_j, x_{j+D/2}) \mapsto (x_j\cos - x_{j+D/2}\sin,\; x_{j+D/2}\cos + x_j\sin)`.
    """
    _float_tensor("x", x, dim=4)
    _float_tensor("cos", cos, dim=2)
    _float_tensor("sin", sin, dim=2)
    T, D = x.shape[-2:]
    if D % 2:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be even, got {D}")
    if cos.shape != (T, D) or sin.shape != (T, D):
        raise ValueError(f"cos and sin must be (seq, head_dim) = {(T, D)} for x of shape "
                         f"{tuple(x.shape)}, got {tuple(cos.shape)} and {tuple(sin.shape)}; "
                         "slice the cache to the positions of x")
    return x * cos.to(x.dtype) + _rotate_half(x) * sin.to(x.dtype)


def apply_rope_interleaved(x: torch.Tensor, base: float = 10000.0,
                           start: int = 0) -> torch.Tensor:
    """RoPE in the interleaved convention of RoFormer and Meta's Llama code, via complex numbers.

    Features ``(2i, 2i+1)`` of ``x (B, H, T, D)`` form pair ``i``, read as the complex number
    ``x_{2i} + 1j x_{2i+1}`` and multiplied by ``exp(1j m theta_i)`` (Meta's
    ``apply_rotary_emb``). Positions are ``start .. start + T - 1``.
    """
    _float_tensor("x", x, dim=4)
    T, D = x.shape[-2:]
    if D % 2:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be even, got {D}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an int >= 0, got {start!r}")
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    angles = torch.arange(start, start + T, dtype=torch.float64)[:, None] * inv_freq  # (T, D/2)
    rot = torch.polar(torch.ones_like(angles), angles)                             # e^{i m theta}
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:-1], D // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).flatten(-2).to(x.dtype)                   # (B, H, T, D)


# =========================================================================== attention
def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D)``: each key/value head serves ``n_rep``
    consecutive query heads (query head ``h`` reads key/value head ``h // n_rep``)."""
    _float_tensor("x", x, dim=4)
    _positive_int("n_rep", n_rep)
    if n_rep == 1:
        return x
    B, H_kv, T, D = x.shape
    return x[:, :, None].expand(B, H_kv, n_rep, T, D).reshape(B, H_kv * n_rep, T, D)


class KVCache:
    """The keys and values of every layer for the tokens seen so far (one entry per layer).

    ``keys[layer]`` and ``values[layer]``: ``(B, H_kv, T_seen, D)`` after the positional rotation.
    """

    def __init__(self, n_layer: int):
        _positive_int("n_layer", n_layer)
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def __len__(self) -> int:
        """Tokens held (read from layer 0)."""
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append the new ``k, v (B, H_kv, T_new, D)`` of ``layer``; return all of them."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-2)
            v = torch.cat([self.values[layer], v], dim=-2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def nbytes(self) -> int:
        """Bytes the cached tensors occupy."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with ``n_head`` query heads sharing ``n_kv_head`` key/value heads.

    ``n_kv_head == n_head`` is multi-head attention (MHA), ``n_kv_head == 1`` multi-query
    attention (MQA), anything between grouped-query attention (GQA). Rotary embeddings are
    applied to queries and keys; no biases. Names as in Hugging Face's ``LlamaAttention``.
    """

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int, bias: bool = False):
        super().__init__()
        for name, value in (("n_embd", n_embd), ("n_head", n_head), ("n_kv_head", n_kv_head)):
            _positive_int(name, value)
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        if n_head % n_kv_head:
            raise ValueError(f"n_head ({n_head}) must be a multiple of n_kv_head ({n_kv_head}): "
                             "each key/value head serves the same number of query heads")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, n_embd // n_head
        if self.head_dim % 2:
            raise ValueError(f"head_dim = n_embd / n_head = {self.head_dim} must be even for RoPE")
        self.q_proj = nn.Linear(n_embd, n_head * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(n_embd, n_kv_head * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(n_embd, n_kv_head * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(n_head * self.head_dim, n_embd, bias=bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, layer: int = 0, start: int = 0) -> torch.Tensor:
        """``x (B, T, d)`` at positions ``start .. start+T-1``; ``cos, sin (T, D)`` for them."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)     # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, H_kv, T, D)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, H_kv, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)                     # (B, H_kv, start + T, D)
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)          # (B, H, start + T, D)
        if start == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif T == 1:                                             # one new token sees everything
            out = F.scaled_dot_product_attention(q, k, v)
        else:                                                    # new block after a cached prefix
            q_pos = torch.arange(start, start + T, device=x.device)
            mask = torch.arange(start + T, device=x.device)[None] <= q_pos[:, None]   # (T, start+T)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)          # (B, T, H*D)
        return self.o_proj(out)


class LlamaBlock(nn.Module):
    """Pre-norm block: ``x + attn(RMSNorm(x))``, then ``h + SwiGLU(RMSNorm(h))``."""

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int, ffn_hidden: int, eps: float = 1e-5):
        super().__init__()
        self.input_layernorm = RMSNorm(n_embd, eps)
        self.self_attn = GroupedQueryAttention(n_embd, n_head, n_kv_head)
        self.post_attention_layernorm = RMSNorm(n_embd, eps)
        self.mlp = SwiGLU(n_embd, ffn_hidden)

    def forward(self, x, cos, sin, cache=None, layer=0, start=0):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer, start)
        return h + self.mlp(self.post_attention_layernorm(h))


class TinyLlama(nn.Module):
    """A small Llama-style decoder: token embedding (no position table), ``n_layer`` blocks of
    RMSNorm + grouped-query attention with RoPE + RMSNorm + SwiGLU, a final RMSNorm and the
    output layer (tied to the embedding by default). No biases anywhere.

    ``forward(idx (B, T), cache=None) -> logits (B, T, V)``. With a :class:`KVCache` (from
    :meth:`new_cache`) the positions continue after the cached tokens and the new keys and
    values are appended. Parameter names follow Hugging Face's ``LlamaForCausalLM`` without
    its ``model.`` prefix.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_kv_head: int, n_embd: int, ffn_hidden: int | None = None,
                 rope_base: float = 10000.0, eps: float = 1e-5, tie_embeddings: bool = True):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                            ("n_layer", n_layer), ("n_head", n_head), ("n_kv_head", n_kv_head),
                            ("n_embd", n_embd)):
            _positive_int(name, value)
        ffn_hidden = swiglu_hidden(n_embd, 8) if ffn_hidden is None else ffn_hidden
        _positive_int("ffn_hidden", ffn_hidden)
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_head, self.n_kv_head, self.n_embd, self.ffn_hidden = n_head, n_kv_head, n_embd, ffn_hidden
        self.tie_embeddings = tie_embeddings
        self.embed_tokens = nn.Embedding(vocab_size, n_embd)
        self.layers = nn.ModuleList(LlamaBlock(n_embd, n_head, n_kv_head, ffn_hidden, eps)
                                    for _ in range(n_layer))
        self.norm = RMSNorm(n_embd, eps)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        head_dim = n_embd // n_head
        cos, sin = rope_cache(block_size, head_dim, rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for block in self.layers:          # GPT-2's smaller init for the residual projections
            for lin in (block.self_attn.o_proj, block.mlp.down_proj):
                nn.init.normal_(lin.weight, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    # GPT-2's N(0, 0.02) init, shared with the book's GPT (this model has no biases)
    _init_weights = staticmethod(_gpt_init_weights)

    def new_cache(self) -> KVCache:
        """An empty :class:`KVCache` for this model."""
        return KVCache(self.n_layer)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        from .lm import _check_idx
        _check_idx(idx, self.vocab_size)
        B, T = idx.shape
        start = len(cache) if cache is not None else 0
        if start + T > self.block_size:
            raise ValueError(f"positions {start}..{start + T - 1} exceed block_size "
                             f"{self.block_size}; crop the context or build a longer model")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]   # (T, D)
        x = self.embed_tokens(idx)                                                    # (B, T, d)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, cache, i, start)                                   # (B, T, d)
        return self.lm_head(self.norm(x))                                             # (B, T, V)


def llama_num_parameters(vocab_size: int, n_layer: int, n_head: int, n_kv_head: int, n_embd: int,
                         ffn_hidden: int, tie_embeddings: bool = True) -> int:
    r"""Parameters of :class:`TinyLlama` (or a Llama checkpoint) by formula.

    Per block: queries and output :math:`2d^2`, keys and values :math:`2\,d\,H_{kv} D` with
    :math:`D = d/H`, SwiGLU :math:`3 d f`, two RMSNorm gains :math:`2d`. Plus the embedding
    :math:`Vd`, the final RMSNorm :math:`d`, and a separate output layer :math:`Vd` when untied.
    """
    for name, value in (("vocab_size", vocab_size), ("n_layer", n_layer), ("n_head", n_head),
                        ("n_kv_head", n_kv_head), ("n_embd", n_embd), ("ffn_hidden", ffn_hidden)):
        _positive_int(name, value)
    if n_embd % n_head or n_head % n_kv_head:
        raise ValueError("n_embd must be divisible by n_head, and n_head by n_kv_head")
    d, f = n_embd, ffn_hidden
    kv = n_kv_head * (n_embd // n_head)
    block = 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d
    return n_layer * block + d + vocab_size * d * (1 if tie_embeddings else 2)


def kv_cache_bytes(n_layer: int, n_kv_head: int, head_dim: int, seq_len: int = 1,
                   batch_size: int = 1, bytes_per_element: int = 2) -> int:
    """Memory of a KV cache: ``2 (K and V) x layers x KV heads x head_dim x tokens x bytes``."""
    for name, value in (("n_layer", n_layer), ("n_kv_head", n_kv_head), ("head_dim", head_dim),
                        ("seq_len", seq_len), ("batch_size", batch_size),
                        ("bytes_per_element", bytes_per_element)):
        _positive_int(name, value)
    return 2 * n_layer * n_kv_head * head_dim * seq_len * batch_size * bytes_per_element


# =========================================================================== decoding
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row ``(B, V)``; the others become ``-inf``."""
    _float_tensor("logits", logits, dim=2)
    _positive_int("k", k)
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]                    # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al. 2020) of logits ``(B, V)``: keep, in each row, the
    smallest set of most likely tokens whose probabilities sum to at least ``p``; the others
    become ``-inf``. ``p`` must lie in ``(0, 1]``; ``p = 1`` keeps everything.

    A token is dropped when the tokens ranked above it already hold probability ``>= p``; the
    most likely token is always kept. The sum is taken in float64.
    """
    _float_tensor("logits", logits, dim=2)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"p must be a number in (0, 1], got {p!r}")
    if p == 1:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)      # (B, V)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    before = probs.cumsum(-1) - probs                                        # mass ranked above
    drop_sorted = before >= p
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of ``logits (B, V)`` -> ``(B, 1)``.

    ``temperature == 0`` is greedy (argmax). Otherwise: divide by the temperature, apply the
    top-k filter, then the top-p filter, and draw from the softmax (Hugging Face's order).
    """
    _float_tensor("logits", logits, dim=2)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None:
        _positive_int("top_k", top_k)
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    z = logits.float() / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.multinomial(torch.softmax(z, dim=-1), 1, generator=generator)


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None, return_logits: bool = False,
             timings: list | None = None):
    """Append ``max_new_tokens`` ids to the prompt ``idx (B, T)``; returns ``(B, T + new)``.

    ``use_cache=True`` (a model with ``new_cache()``, such as :class:`TinyLlama`): the prompt
    is read once and each later step feeds only the newest token, reusing the cached keys and
    values; prompt plus new tokens must fit in ``model.block_size``. ``use_cache=False``
    recomputes the whole context (the last ``block_size`` tokens) at every step; it works for
    any model ``idx -> logits``, chapter 7's GPT included.

    Default decoding is greedy; see :func:`sample_token` for temperature, top-k and top-p.
    ``return_logits=True`` also returns the logits of every step ``(B, new, V)``; a list given
    as ``timings`` receives the seconds of each step.
    """
    from .lm import _check_prompt
    vocab = getattr(model, "vocab_size", None)
    if vocab is None:
        raise TypeError("generate needs a language model with a vocab_size attribute")
    _check_prompt(idx, max_new_tokens, vocab)
    block = getattr(model, "block_size", None)
    if use_cache:
        if not hasattr(model, "new_cache"):
            raise TypeError(f"{type(model).__name__} has no KV cache (no new_cache method); "
                            "call generate(..., use_cache=False)")
        if block is not None and idx.shape[1] + max_new_tokens > block:
            raise ValueError(f"prompt ({idx.shape[1]}) + max_new_tokens ({max_new_tokens}) exceed "
                             f"block_size {block}; the cache cannot slide, use use_cache=False")
        cache = model.new_cache()
    was_training = model.training
    model.eval()
    steps = []
    try:
        for step in range(max_new_tokens):
            started = time.perf_counter()
            if use_cache:
                logits = model(idx if step == 0 else idx[:, -1:], cache=cache)[:, -1]   # (B, V)
            else:
                context = idx if block is None else idx[:, -block:]
                logits = model(context)[:, -1]                                           # (B, V)
            nxt = sample_token(logits, temperature, top_k, top_p, generator)             # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            if return_logits:
                steps.append(logits.float())
            if timings is not None:
                if idx.is_cuda:
                    torch.cuda.synchronize()
                timings.append(time.perf_counter() - started)
    finally:
        model.train(was_training)
    if return_logits:
        empty = idx.new_zeros((idx.shape[0], 0, vocab), dtype=torch.float32)
        return idx, (torch.stack(steps, dim=1) if steps else empty)
    return idx


# =========================================================================== FlashAttention's idea
def online_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int,
                             causal: bool = False) -> torch.Tensor:
    r"""Exact attention :math:`\mathrm{softmax}(QK^\top/\sqrt{D})V` computed tile by tile.

    ``q (..., T_q, D)``, ``k (..., T_k, D)``, ``v (..., T_k, D_v)``. For each block of
    queries it walks over blocks of keys, keeping per query the running maximum ``m``, the
    running sum ``l`` of :math:`e^{s - m}` and the running weighted sum of values; when the
    maximum grows, the old sums are rescaled by :math:`e^{m_\text{old} - m_\text{new}}`. Only a
    ``block_size x block_size`` tile of scores exists at any time (FlashAttention's idea,
    without its fused GPU kernel). ``causal=True`` (needs ``T_q == T_k``): query ``i`` sees
    keys ``j <= i``, and key blocks after the query block are skipped.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        _float_tensor(name, x)
        if x.dim() < 2:
            raise ValueError(f"{name} needs at least 2 dimensions (..., seq, dim), got {tuple(x.shape)}")
    _positive_int("block_size", block_size)
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q (..., T_q, D), k (..., T_k, D), v (..., T_k, D_v) do not fit: "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    Tq, Tk = q.shape[-2], k.shape[-2]
    if causal and Tq != Tk:
        raise ValueError(f"causal attention here needs as many queries as keys, got {Tq} and {Tk}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    for qs in range(0, Tq, block_size):
        qb = q[..., qs:qs + block_size, :] * scale                        # (..., Bq, D)
        m = qb.new_full((*qb.shape[:-1], 1), float("-inf"))                # running max
        l = qb.new_zeros((*qb.shape[:-1], 1))                              # running sum
        acc = qb.new_zeros((*qb.shape[:-1], v.shape[-1]))                  # running sum of p v
        for ks in range(0, min(Tk, qs + block_size) if causal else Tk, block_size):
            s = qb @ k[..., ks:ks + block_size, :].transpose(-2, -1)     # (..., Bq, Bk) tile
            if causal:
                qi = torch.arange(qs, qs + qb.shape[-2], device=q.device)[:, None]
                kj = torch.arange(ks, ks + s.shape[-1], device=q.device)[None]
                s = s.masked_fill(kj > qi, float("-inf"))
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            p = torch.exp(s - m_new)
            alpha = torch.exp(m - m_new)                                   # rescale old sums
            l = alpha * l + p.sum(-1, keepdim=True)
            acc = alpha * acc + p @ v[..., ks:ks + block_size, :]
            m = m_new
        out[..., qs:qs + block_size, :] = acc / l
    return out

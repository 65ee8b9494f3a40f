"""Character-level language models: from an LSTM to a tiny GPT.

Everything chapter 7 builds and later chapters may reuse:

* :class:`CharTokenizer` -- one id per distinct character of a text (``encode`` / ``decode``).
* :func:`split_by_position`, :class:`CharWindows` -- a 90/10 split *by position* and the
  ``(x, y)`` windows of ``block_size`` tokens, ``y`` shifted by one (the next-token targets).
* :func:`lm_loss` -- cross-entropy of logits ``(B, T, V)`` against targets ``(B, T)``, averaged
  over the ``B*T`` predictions; :func:`nats_to_bits`, :func:`perplexity` convert it.
* :class:`LSTMLanguageModel` -- ``Embedding -> LSTM -> Linear``, a recurrent language model.
* :class:`GPT` -- a decoder-only Transformer: token + learned position embeddings, pre-norm
  blocks with causal multi-head self-attention (the blocks are
  :class:`handson.attention.TransformerEncoderBlock` with ``norm_first=True`` whose attention is
  a :class:`CausalSelfAttention`: the same maths as a :func:`handson.attention.causal_mask`, passed
  as ``is_causal=True`` so fused kernels can run), a final LayerNorm and an output layer that
  shares its weight with the token embedding (weight tying).
* :func:`sample_next` -- temperature and top-k sampling of one token from logits.
* :func:`window_loader`, :func:`fit_lm` -- batches of windows, and language-model training
  through the book's one training loop :func:`handson.train.fit` (AdamW, warmup + cosine
  learning rate, a step limit and an optional wall-clock budget, token counting).
* :func:`count_parameters`, :func:`gpt_num_parameters`, :func:`lstm_num_parameters`,
  :func:`gpt_flops_per_token`, :func:`training_flops` -- parameters and training compute by
  formula (the ``C ~ 6 N D`` rule).

Shape names: ``B`` batch, ``T`` time steps (sequence length), ``V`` vocabulary size,
``d`` = ``n_embd`` model width.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from .attention import LayerNorm, MultiHeadAttention, TransformerEncoderBlock, causal_mask
from . import models as _models
from . import validate as _v
from .optim import weight_decay_groups
from .train import fit

__all__ = [
    "CharTokenizer", "split_by_position", "CharWindows", "lm_loss", "nats_to_bits", "bits_to_nats",
    "perplexity", "sample_next", "LSTMLanguageModel", "CausalSelfAttention", "GPT", "window_loader", "fit_lm",
    "count_parameters", "gpt_num_parameters", "lstm_num_parameters", "gpt_flops_per_token",
    "training_flops",
]


# --------------------------------------------------------------------------- tokenizer
class CharTokenizer:
    """A character vocabulary: the sorted distinct characters of a text, ids ``0 .. V-1``.

    ``CharTokenizer(text)`` or ``CharTokenizer().fit(text)``; then ``encode(str) -> list[int]``,
    ``decode(ids) -> str`` (ids may be a list or a 1-D tensor) and ``vocab_size``.
    """

    def __init__(self, text: str | None = None):
        self.chars: list[str] = []
        self.stoi: dict[str, int] = {}
        self.itos: dict[int, str] = {}
        if text is not None:
            self.fit(text)

    def fit(self, text: str) -> "CharTokenizer":
        """Build the vocabulary from ``text``; returns ``self``."""
        if not isinstance(text, str):
            raise TypeError(f"fit needs a str, got {type(text).__name__}")
        if not text:
            raise ValueError("fit needs a non-empty text to find the characters of")
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))
        return self

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters (0 before :meth:`fit`)."""
        return len(self.chars)

    def _require_fit(self) -> None:
        if not self.chars:
            raise ValueError("the tokenizer has no vocabulary yet; call fit(text) first")

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``."""
        self._require_fit()
        if not isinstance(text, str):
            raise TypeError(f"encode needs a str, got {type(text).__name__}")
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]!r}; fit the tokenizer "
                             "on a text that contains them")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids) -> str:
        """The text of a sequence of ids (list of ints or 1-D integer tensor)."""
        self._require_fit()
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1 or ids.is_floating_point():
                raise ValueError(f"decode needs a 1-D integer tensor, got shape {tuple(ids.shape)} "
                                 f"and dtype {ids.dtype}; decode one sequence at a time")
            ids = ids.tolist()
        try:
            return "".join(self.itos[int(i)] for i in ids)
        except KeyError as exc:
            raise ValueError(f"id {exc.args[0]} is outside the vocabulary 0..{self.vocab_size - 1}") from None

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# --------------------------------------------------------------------------- data
def _check_tokens(data) -> None:
    if not isinstance(data, torch.Tensor) or data.dim() != 1 or data.is_floating_point():
        kind = (f"shape {tuple(data.shape)} and dtype {data.dtype}" if isinstance(data, torch.Tensor)
                else type(data).__name__)
        raise TypeError(f"token data must be a 1-D integer tensor, got {kind}; "
                        "use torch.tensor(tokenizer.encode(text), dtype=torch.long)")


def split_by_position(data: torch.Tensor, train_fraction: float = 0.9):
    """The first ``train_fraction`` of the tokens for training, the rest for validation.

    Splitting by position (not by random windows) keeps the validation text unseen: random
    overlapping windows would share almost all their characters with training windows.
    """
    _check_tokens(data)
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    n = int(train_fraction * len(data))
    return data[:n], data[n:]


class CharWindows(Dataset):
    """Windows of a token tensor: item ``i`` is ``(x, y)`` with ``x = data[s : s+T]`` and
    ``y = data[s+1 : s+T+1]`` where ``s = i * stride`` and ``T = block_size``.

    ``stride=1`` (training) gives every window; ``stride=block_size`` gives non-overlapping
    windows that cover the text once (evaluation).
    """

    def __init__(self, data: torch.Tensor, block_size: int, stride: int = 1):
        _check_tokens(data)
        for name, value in (("block_size", block_size), ("stride", stride)):
            _v.positive_int(value, name, _v.caller())
        if len(data) < block_size + 1:
            raise ValueError(f"the data has {len(data)} tokens; a window needs block_size + 1 = "
                             f"{block_size + 1}")
        self.data, self.block_size, self.stride = data.long(), block_size, stride
        self._n = (len(self.data) - self.block_size - 1) // self.stride + 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int):
        n = self._n
        if not -n <= i < n:
            raise IndexError(f"window {i} out of range for {n} windows")
        start = (i % n) * self.stride
        chunk = self.data[start:start + self.block_size + 1]
        return chunk[:-1], chunk[1:]                  # (T,), (T,)


# --------------------------------------------------------------------------- loss
def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of logits ``(B, T, V)`` for targets ``(B, T)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits must be (batch, time, vocab), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)}")
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a tensor of token ids, got {type(targets).__name__}")
    if targets.shape != logits.shape[:2]:
        raise ValueError(f"targets must be (batch, time) = {tuple(logits.shape[:2])}, got "
                         f"{tuple(targets.shape)}")
    if targets.is_floating_point():
        raise TypeError(f"targets must be integer token ids, got {targets.dtype}")
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))


def nats_to_bits(loss_nats):
    """Nats -> bits: divide by ln 2 (a loss in nats per char becomes bits per char)."""
    return loss_nats / math.log(2)


def bits_to_nats(loss_bits):
    """Bits -> nats: multiply by ln 2."""
    return loss_bits * math.log(2)


def perplexity(loss_nats):
    """``exp(loss)`` for a loss in nats per token (= ``2 ** bits``): the effective number of choices.

    A cross-entropy in nats is never negative, so a negative loss is an error (it is usually
    a log-probability passed without its minus sign).
    """
    if isinstance(loss_nats, torch.Tensor) and loss_nats.numel() != 1:
        if bool((loss_nats < 0).any()):
            raise ValueError(f"perplexity(loss_nats=...): expected losses >= 0 (cross-entropy in "
                             f"nats), got a minimum of {float(loss_nats.min()):g}; a negative "
                             f"value is a log-probability: negate it")
        return torch.exp(loss_nats)
    value = _v.number(loss_nats, "loss_nats", "perplexity", low=0.0, finite=False,
                      what="a loss >= 0 in nats per token (a cross-entropy is never negative)")
    if isinstance(loss_nats, torch.Tensor):
        return torch.exp(loss_nats)
    return math.exp(value)


# --------------------------------------------------------------------------- sampling
def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample one token id per row from logits ``(B, V)``; returns ``(B, 1)``.

    The logits are divided by ``temperature`` (``0`` = always the most likely token), then
    only the ``top_k`` largest are kept (the rest get probability 0) before the softmax.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, vocab), got shape {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    top_k = _v.positive_int(top_k, "top_k", "sample_next", allow_none=True)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]          # (B, 1) k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)                                # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def _check_idx(idx, vocab_size: int) -> None:
    if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.dim() != 2:
        kind = (f"shape {tuple(idx.shape)}, dtype {idx.dtype}" if isinstance(idx, torch.Tensor)
                else type(idx).__name__)
        raise TypeError(f"token ids must be an integer tensor (batch, time), got {kind}; "
                        "add a batch axis with ids[None] and use dtype torch.long")
    # the range check reads the values back to the CPU; on a GPU that would stall every step,
    # and the embedding lookup reports bad ids there anyway
    if idx.device.type == "cpu" and idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}, got {int(idx.min())}..{int(idx.max())}")


def _check_max_new_tokens(n) -> None:
    _v.nonnegative_int(n, "max_new_tokens", _v.caller())


def _check_prompt(idx, max_new_tokens, vocab_size: int) -> None:
    """What both models' ``generate`` need: a non-empty (B, T) prompt of valid ids."""
    _check_max_new_tokens(max_new_tokens)
    _check_idx(idx, vocab_size)
    if idx.dim() == 2 and idx.shape[1] == 0:
        raise ValueError("the prompt is empty; give at least one token, e.g. the id of '\\n'")


# --------------------------------------------------------------------------- models
class LSTMLanguageModel(nn.Module):
    """``Embedding -> LSTM -> Linear``: a recurrent character language model.

    ``dropout`` (default 0) acts between stacked LSTM layers and before the output layer.

    ``forward(idx (B, T), state=None)`` returns logits ``(B, T, V)``; with
    ``return_state=True`` it also returns the LSTM's ``(h, c)`` so generation can carry it.
    """

    def __init__(self, vocab_size: int, n_embd: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("n_embd", n_embd),
                            ("hidden_size", hidden_size), ("num_layers", num_layers)):
            _v.positive_int(value, name, _v.caller())
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.lstm = nn.LSTM(n_embd, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor, state=None, return_state: bool = False):
        _check_idx(idx, self.vocab_size)
        x = self.embedding(idx)                     # (B, T, n_embd)
        out, state = self.lstm(x, state)            # (B, T, hidden_size)
        logits = self.head(self.dropout(out))       # (B, T, V)
        return (logits, state) if return_state else logits

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled ids to ``idx (B, T)``; returns ``(B, T + max_new_tokens)``.

        The prompt is read once; then each step feeds only the newest token and carries the
        LSTM state ``(h, c)``, so the whole history (not just a window) shapes the next token.
        """
        _check_prompt(idx, max_new_tokens, self.vocab_size)
        was_training = self.training
        self.eval()
        logits, state = self(idx, return_state=True)          # read the prompt once
        for _ in range(max_new_tokens):
            nxt = sample_next(logits[:, -1], temperature, top_k, generator)   # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            logits, state = self(nxt, state, return_state=True)               # one step
        self.train(was_training)
        return idx


class CausalSelfAttention(MultiHeadAttention):
    """Multi-head self-attention in which position ``i`` sees positions ``j <= i`` only.

    The same weights and maths as :class:`handson.attention.MultiHeadAttention` given
    ``causal_mask(T)``, but the mask is passed as ``is_causal=True`` to
    ``F.scaled_dot_product_attention``: knowing the pattern (rather than reading a ``(T, T)``
    boolean tensor) lets PyTorch pick its fused flash / memory-efficient kernels, which skip
    the masked half. It takes no ``mask``; with ``need_weights=True`` (to look at the weights)
    it builds the explicit causal mask and runs the unfused path.
    """

    def forward(self, query, key, value, mask=None, need_weights: bool = True,
                average_weights: bool = True):
        if mask is not None:
            raise ValueError("CausalSelfAttention applies the causal mask itself; pass mask=None")
        if not (isinstance(query, torch.Tensor) and query.dim() == 3
                and query.shape == getattr(key, "shape", None) == getattr(value, "shape", None)):
            shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                      for x in (query, key, value)]
            raise ValueError(f"causal self-attention needs query, key and value of one shape "
                             f"(batch, time, {self.embed_dim}), got {shapes}")
        if need_weights:
            return super().forward(query, key, value, causal_mask(query.shape[1], query.device),
                                   need_weights=True, average_weights=average_weights)
        if query.shape[-1] != self.embed_dim:
            raise ValueError(f"the inputs must have {self.embed_dim} features, got "
                             f"{query.shape[-1]}")
        if query is key is value and self.W_q.bias is not None:   # self-attention: one product
            weight = torch.cat([self.W_q.weight, self.W_k.weight, self.W_v.weight])  # (3E, E)
            bias = torch.cat([self.W_q.bias, self.W_k.bias, self.W_v.bias])
            q, k, v = (self.split_heads(t) for t in
                       F.linear(query, weight, bias).split(self.embed_dim, dim=-1))
        else:
            q = self.split_heads(self.W_q(query))         # (B, h, T, d_k)
            k = self.split_heads(self.W_k(key))
            v = self.split_heads(self.W_v(value))
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.W_o(self.merge_heads(out)), None      # (B, T, E)


class FusedLayerNorm(LayerNorm):
    """:class:`handson.attention.LayerNorm` (same parameters, same maths) computed by PyTorch's
    fused ``F.layer_norm``: one kernel instead of seven element-wise passes forward and more
    backward, which on a CPU saves about a tenth of a small GPT's step."""

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2 style, small).

    ``tokens (B, T) -> token embedding + position embedding -> n_layer pre-norm blocks with
    causal self-attention -> LayerNorm -> logits (B, T, V)``; the output layer's weight *is* the
    token embedding matrix (weight tying). ``T`` may be at most ``block_size``.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                            ("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            _v.positive_int(value, name, _v.caller())
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(block_size, n_embd)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerEncoderBlock(n_embd, n_head, 4 * n_embd, dropout=dropout, norm_first=True,
                                    activation="gelu")
            for _ in range(n_layer))
        for block in self.blocks:                               # causal via is_causal=True
            block.attention = CausalSelfAttention(n_embd, n_head, dropout=dropout)
            block.norm1, block.norm2 = FusedLayerNorm(n_embd), FusedLayerNorm(n_embd)
        self.norm = FusedLayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight          # weight tying: one (V, d) matrix
        self.apply(self._init_weights)
        # GPT-2: scale the init of the projections that write into the residual stream
        for block in self.blocks:
            for lin in (block.attention.W_o, block.ffn.linear2):
                nn.init.normal_(lin.weight, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        _check_idx(idx, self.vocab_size)
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.block_size}; crop the "
                             f"context to the last {self.block_size} tokens")
        pos = torch.arange(T, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(pos))   # (B, T, d)
        for block in self.blocks:
            x = block(x)                                  # (B, T, d); the attention is causal
        return self.head(self.norm(x))                                               # (B, T, V)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled ids to ``idx (B, T)``; returns ``(B, T + max_new_tokens)``.

        Each step feeds the last ``block_size`` tokens (the model has no positions beyond).
        """
        _check_prompt(idx, max_new_tokens, self.vocab_size)
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            context = idx[:, -self.block_size:]                            # (B, <= block_size)
            logits = self(context)[:, -1]                                  # (B, V)
            idx = torch.cat([idx, sample_next(logits, temperature, top_k, generator)], dim=1)
        self.train(was_training)
        return idx


# --------------------------------------------------------------------------- training
def window_loader(data: torch.Tensor, block_size: int, batch_size: int, *, shuffle: bool = False,
                  num_batches: int | None = None, num_windows: int | None = None,
                  seed: int = 0) -> DataLoader:
    """Batches of ``(x, y)`` windows ``(batch_size, block_size)`` of a token tensor.

    * ``shuffle=True`` (training): windows may start at *every* position and are drawn at random
      with replacement, ``num_batches`` batches per pass over the loader (default: as many as
      there are windows divided by ``batch_size``). ``seed`` fixes the draw.
    * ``shuffle=False`` (evaluation): non-overlapping windows in order, covering the text once;
      ``num_windows`` keeps that many of them, evenly spaced over the text (a cheaper estimate).
    """
    batch_size = _v.positive_int(batch_size, "batch_size", "window_loader")
    if shuffle:
        windows = CharWindows(data, block_size, stride=1)
        if num_batches is None:
            num_batches = max(len(windows) // batch_size, 1)
        num_batches = _v.positive_int(num_batches, "num_batches", "window_loader")
        sampler = RandomSampler(windows, replacement=True, num_samples=num_batches * batch_size,
                                generator=torch.Generator().manual_seed(seed))
        return DataLoader(windows, batch_size=batch_size, sampler=sampler)
    windows = CharWindows(data, block_size, stride=block_size)
    if num_windows is not None:
        num_windows = _v.positive_int(num_windows, "num_windows", "window_loader", allow_none=True)
        if num_windows < len(windows):
            keep = torch.linspace(0, len(windows) - 1, num_windows).round().long().tolist()
            windows = Subset(windows, keep)
    return DataLoader(windows, batch_size=batch_size, shuffle=False)


class _Budget:
    """Counts training steps and tokens (a forward pre-hook) and the wall time of a run."""

    def __init__(self, max_steps: int, time_budget_s: float | None):
        self.max_steps, self.time_budget_s = max_steps, time_budget_s
        self.steps = self.tokens = 0
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started

    def progress(self) -> float:
        """Fraction of the run done: steps or time, whichever is further along."""
        p = self.steps / self.max_steps
        if self.time_budget_s:
            p = max(p, self.elapsed() / self.time_budget_s)
        return min(p, 1.0)

    def done(self) -> bool:
        return self.progress() >= 1.0

    def count(self, module, args) -> None:           # forward pre-hook
        if module.training and torch.is_grad_enabled():
            self.steps += 1
            self.tokens += args[0].numel()


class _UntilDone:
    """A loader that stops yielding once the budget is spent (``fit`` then ends the epoch)."""

    def __init__(self, loader, budget: _Budget):
        self.loader, self.budget = loader, budget

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.budget.start()
        for batch in self.loader:
            if self.budget.done():
                return
            yield batch


def fit_lm(model: nn.Module, train_data: torch.Tensor, val_data: torch.Tensor, *, block_size: int,
           batch_size: int, max_steps: int, time_budget_s: float | None = None, lr: float = 1e-3,
           min_lr: float | None = None, warmup_steps: int = 0, weight_decay: float = 0.1,
           betas: tuple[float, float] = (0.9, 0.99), grad_clip: float | None = 1.0,
           eval_every: int = 100, eval_windows: int | None = 64, device=None, amp=None,
           seed: int = 0, progress: bool = True) -> dict[str, list]:
    """Train a next-token model on random windows with :func:`handson.train.fit`; return its history.

    Nothing here is a new training loop: ``fit`` runs the steps, with ``max_steps_per_epoch =
    eval_every`` so that one "epoch" of its history is one evaluation interval. What this function
    adds is the language-model set-up shared by every model of chapter 7:

    * the data: random windows of ``train_data`` (:func:`window_loader`), and ``eval_windows``
      fixed non-overlapping windows of ``val_data`` for the validation curve;
    * AdamW (weight decay only on matrices, not on biases and LayerNorm gains) with a linear
      warmup over ``warmup_steps`` and a cosine decay from ``lr`` to ``min_lr`` (``lr / 10``);
    * the end of training: after ``max_steps`` optimizer steps, or when ``time_budget_s`` seconds
      of wall time (evaluations included) are spent, whichever comes first. With a budget the
      cosine follows the *fraction of the run done* (steps or time, whichever is further), so the
      learning rate reaches ``min_lr`` exactly when the time is up;
    * counting: the history gets ``step`` and ``tokens`` (the optimizer steps and training
      tokens actually processed, counted as the model is called) next to ``fit``'s ``epoch``,
      ``train_loss``, ``val_loss``, ``lr`` and ``time_s``.
    """
    max_steps = _v.positive_int(max_steps, "max_steps", "fit_lm")
    eval_every = _v.positive_int(eval_every, "eval_every", "fit_lm")
    time_budget_s = _v.positive_number(time_budget_s, "time_budget_s", "fit_lm", allow_none=True)
    lr = _v.positive_number(lr, "lr", "fit_lm")
    warmup_steps = _v.nonnegative_int(warmup_steps, "warmup_steps", "fit_lm")
    weight_decay = _v.nonnegative_number(weight_decay, "weight_decay", "fit_lm")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    min_lr = lr / 10 if min_lr is None else min_lr
    if not 0 <= min_lr <= lr:
        raise ValueError(f"min_lr must lie in [0, lr], got {min_lr!r} with lr={lr!r}")
    budget = _Budget(max_steps, time_budget_s)
    train_loader = _UntilDone(window_loader(train_data, block_size, batch_size, shuffle=True,
                                            num_batches=max_steps, seed=seed), budget)
    val_loader = window_loader(val_data, block_size, batch_size, num_windows=eval_windows)
    # fused: one kernel per parameter tensor instead of a dozen (PyTorch's CPU and GPU AdamW)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=lr, betas=betas,
                                  fused=True)
    floor = min_lr / lr

    def lr_factor(_step: int) -> float:
        if budget.steps < warmup_steps:
            return (budget.steps + 1) / warmup_steps
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * budget.progress()))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    def record(history, _model) -> bool:
        history.setdefault("step", []).append(budget.steps)
        history.setdefault("tokens", []).append(budget.tokens)
        return budget.done()

    hook = model.register_forward_pre_hook(budget.count)
    try:
        return fit(model, train_loader, lm_loss, optimizer, epochs=math.ceil(max_steps / eval_every),
                   val_loader=val_loader, scheduler=scheduler, device=device, amp=amp,
                   grad_clip=grad_clip, max_steps_per_epoch=eval_every, callback=record,
                   progress=progress)
    finally:
        hook.remove()


# --------------------------------------------------------------------------- counting
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of distinct parameters (a tied weight counts once, as ``model.parameters()`` does).

    The same function as :func:`handson.models.count_parameters` (and
    :func:`handson.vision.count_params`): every parameter by default, only those with
    ``requires_grad`` with ``trainable_only=True``.
    """
    return _models.count_parameters(model, trainable_only)


def gpt_num_parameters(vocab_size: int, block_size: int, n_layer: int, n_embd: int,
                       include_embeddings: bool = True) -> int:
    r"""Parameters of :class:`GPT` by formula (weight tying, biases everywhere but the output layer).

    Per block: attention :math:`4d^2 + 4d`, MLP :math:`8d^2 + 5d`, two LayerNorms :math:`4d`,
    in all :math:`12d^2 + 13d`. Plus token :math:`Vd` and position :math:`T d` embeddings and the
    final LayerNorm :math:`2d`. ``include_embeddings=False`` leaves out the two embedding
    tables (the "non-embedding" count of scaling-law papers).
    """
    d = n_embd
    total = n_layer * (12 * d * d + 13 * d) + 2 * d
    if include_embeddings:
        total += vocab_size * d + block_size * d
    return total


def lstm_num_parameters(vocab_size: int, n_embd: int, hidden_size: int, num_layers: int = 1) -> int:
    r"""Parameters of :class:`LSTMLanguageModel` by formula.

    Each LSTM layer has four gates, each with an input matrix, a recurrent matrix and (in
    PyTorch) two bias vectors: :math:`4(h\,x + h^2 + 2h)` with :math:`x` the layer's input size.
    """
    h = hidden_size
    total = vocab_size * n_embd                              # embedding
    for layer in range(num_layers):
        x = n_embd if layer == 0 else h
        total += 4 * (h * x + h * h + 2 * h)
    total += h * vocab_size + vocab_size                     # output layer
    return total


def gpt_flops_per_token(vocab_size: int, block_size: int, n_layer: int, n_embd: int,
                        training: bool = True) -> int:
    r"""Matrix-multiply FLOPs that :class:`GPT` spends per token, by formula.

    Forward: 2 FLOPs per weight used in a matrix product -- the blocks' :math:`12 L d^2` and the
    tied output layer's :math:`V d` (embedding lookups cost none) -- plus the attention scores
    and the weighted sum of values, :math:`2 T d` each per layer (all :math:`T` keys are computed
    and then masked). Training (forward + backward) costs about three times the forward:
    :math:`6(12 L d^2 + V d) + 12 L T d`.
    """
    d, L, T = n_embd, n_layer, block_size
    forward = 2 * (12 * L * d * d + vocab_size * d) + 4 * L * T * d
    return 3 * forward if training else forward


def training_flops(n_params: float, n_tokens: float) -> float:
    """Approximate training compute ``C = 6 N D`` FLOPs (2 forward + 4 backward per parameter per token)."""
    if n_params < 0 or n_tokens < 0:
        raise ValueError("n_params and n_tokens must be >= 0")
    return 6.0 * float(n_params) * float(n_tokens)

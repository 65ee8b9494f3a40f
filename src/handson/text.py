"""Text classification with BERT-family encoders: the reusable pieces of chapter 6.

* :func:`tokenize_dataset` -- a Hugging Face ``Dataset`` of sentences (or sentence pairs)
  to ``input_ids`` / ``token_type_ids`` / ``attention_mask`` / ``labels``, truncated to
  ``max_len`` tokens (no padding yet).
* :func:`make_loader`, :func:`text_loaders` -- ``DataLoader`` objects that pad each
  batch only to its own longest sentence (``DataCollatorWithPadding``), optionally with
  batches of similar lengths (:class:`LengthGroupedBatches`); their batches are dicts that
  :func:`handson.train.fit` and the model accept as ``model(**batch)``.
* :func:`token_lengths` -- length of each text in tokens (special tokens included);
  :func:`sort_by_length` orders an evaluation set by it (less padding per batch).
* :func:`mean_pool`, :func:`encode_features` -- sentence features from a frozen encoder
  (masked mean over tokens, or the ``[CLS]`` vector).
* :func:`classification_metrics` -- accuracy, F1, confusion matrix, probabilities
  and confidences from logits; :func:`most_confident_errors` for error analysis.
* :func:`training_steps`, :func:`linear_warmup_factor`, :func:`adamw_param_groups`,
  :func:`optimizer_and_scheduler` -- the fine-tuning recipe's optimizer (AdamW without
  weight decay on biases and LayerNorm weights) and its linear warmup-then-decay schedule,
  counted the way the Hugging Face ``Trainer`` counts them.

Shape names: ``N`` batch, ``L`` tokens per sequence, ``H`` hidden size, ``C`` classes.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from . import optim as _optim
from . import validate as _v

__all__ = [
    "tokenize_dataset", "LengthGroupedBatches", "make_loader", "text_loaders", "token_lengths",
    "sort_by_length", "mean_pool", "encode_features", "classification_metrics",
    "most_confident_errors", "training_steps", "linear_warmup_factor", "adamw_param_groups",
    "optimizer_and_scheduler",
]

#: columns a BERT-family model takes (``token_type_ids`` only if the tokenizer makes them)
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


# --------------------------------------------------------------------------- checks
def _check_tokenizer(tokenizer) -> None:
    if not callable(tokenizer) or not hasattr(tokenizer, "pad_token_id"):
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer (AutoTokenizer.from_pretrained"
                        f"(...)), got {type(tokenizer).__name__}")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no padding token, so batches cannot be padded; "
                         "set tokenizer.pad_token (BERT's is [PAD])")


def _check_max_len(max_len, tokenizer=None) -> int:
    max_len = _v.integer(max_len, "max_len", _v.caller(), low=2,
                         what="an int >= 2 (room for [CLS] and [SEP])")
    limit = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if limit is not None and limit < 100_000 and max_len > limit:
        raise ValueError(f"max_len={max_len} is longer than the model's {limit} positions; "
                         f"use max_len <= {limit}")
    return int(max_len)


def _check_positive_int(name: str, value) -> int:
    return _v.positive_int(value, name, _v.caller())


def _check_columns(dataset, *columns) -> None:
    names = getattr(dataset, "column_names", None)
    if names is None:
        raise TypeError(f"expected a Hugging Face datasets.Dataset, got {type(dataset).__name__}; "
                        "build one with datasets.Dataset.from_dict({'sentence': [...], 'label': [...]})")
    for col in columns:
        if col is not None and col not in names:
            raise KeyError(f"the dataset has no column {col!r}; its columns are {names}")


# --------------------------------------------------------------------------- tokenize & batch
def tokenize_dataset(dataset, tokenizer, max_len: int = 128, *, text_column: str = "sentence",
                     pair_column: str | None = None, label_column: str | None = "label"):
    """Tokenize a ``Dataset`` (truncating to ``max_len`` tokens) and keep only model inputs.

    Returns a new ``Dataset`` with ``input_ids``, ``attention_mask``, ``token_type_ids``
    (when the tokenizer makes them) and ``labels`` (renamed from ``label_column``; pass
    ``label_column=None`` for unlabelled text). Sequences are *not* padded here: padding
    happens per batch in :func:`make_loader`. With ``pair_column`` each example is the
    pair ``(text, pair)`` -- ``[CLS] a [SEP] b [SEP]`` -- and truncation shortens the
    longer of the two first.
    """
    _check_tokenizer(tokenizer)
    max_len = _check_max_len(max_len, tokenizer)
    _check_columns(dataset, text_column, pair_column, label_column)

    def encode(batch):
        pairs = batch[pair_column] if pair_column else None
        return tokenizer(batch[text_column], pairs, truncation=True, max_length=max_len)

    keep = set(MODEL_INPUTS) | ({label_column} if label_column else set())
    drop = [c for c in dataset.column_names if c not in keep]
    out = dataset.map(encode, batched=True, remove_columns=drop, desc="tokenize")
    if label_column and label_column != "labels":
        out = out.rename_column(label_column, "labels")
    return out


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of similar length, in random order: less padding, same randomness.

    Every epoch: shuffle all indices, cut them into *mega-batches* of ``megabatch``
    batches, sort each mega-batch by length and cut it into batches, then shuffle the
    order of all batches. The Hugging Face ``Trainer`` does the same with
    ``train_sampling_strategy="group_by_length"`` (without the last shuffle).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 0,
                 megabatch: int = 50, drop_last: bool = False):
        self.lengths = np.asarray(lengths)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence, one length per example")
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.megabatch = _check_positive_int("megabatch", megabatch)
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        size = self.megabatch * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            mega = order[start:start + size]
            mega = mega[np.argsort(-self.lengths[mega], kind="stable")]
            batches += [mega[i:i + self.batch_size].tolist() for i in range(0, len(mega), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]


def make_loader(tokenized, tokenizer, batch_size: int = 32, *, shuffle: bool = False,
                seed: int = 0, drop_last: bool = False,
                group_by_length: bool = False) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over a :func:`tokenize_dataset` result with dynamic padding.

    Each batch is padded (with ``[PAD]``, attention mask 0) only to the longest sequence
    *in that batch*. ``shuffle=True`` uses a generator seeded with ``seed``, so the batch
    order is repeatable; ``group_by_length=True`` (training only, implies shuffling) puts
    sequences of similar length together (:class:`LengthGroupedBatches`), which cuts the
    padding further. Batches are dicts of ``(N, L)`` int64 tensors plus ``labels (N,)``.
    """
    from transformers import DataCollatorWithPadding
    _check_tokenizer(tokenizer)
    batch_size = _check_positive_int("batch_size", batch_size)
    _check_columns(tokenized, "input_ids")
    extra = [c for c in tokenized.column_names if c not in (*MODEL_INPUTS, "labels")]
    if extra:
        raise ValueError(f"columns {extra} are not model inputs and cannot be padded into tensors; "
                         "tokenize with tokenize_dataset(...) (it drops them) or remove_columns(...)")
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    if group_by_length:
        lengths = [len(ids) for ids in tokenized["input_ids"]]
        sampler = LengthGroupedBatches(lengths, batch_size, seed=seed, drop_last=drop_last)
        return torch.utils.data.DataLoader(tokenized, batch_sampler=sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return torch.utils.data.DataLoader(
        tokenized, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last,
        collate_fn=collate)


def text_loaders(splits: Mapping[str, object], tokenizer, *, max_len: int = 128,
                 batch_size: int = 32, eval_batch_size: int | None = None, seed: int = 0,
                 train_split: str | None = "train", group_by_length: bool = False,
                 text_column: str = "sentence", pair_column: str | None = None,
                 label_column: str | None = "label") -> dict:
    """Tokenize every split of ``splits`` (name -> ``Dataset``) and return name -> ``DataLoader``.

    The ``train_split`` is shuffled (seeded; length-grouped with ``group_by_length``). The
    others (all of them with ``train_split=None``) keep their order, so predictions line up
    with the dataset rows, and use ``eval_batch_size`` (default ``2 * batch_size``).
    """
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError("splits must be a non-empty dict such as {'train': train_ds, 'dev': dev_ds}")
    if train_split is not None and train_split not in splits:
        raise KeyError(f"train_split={train_split!r} is not among the splits {list(splits)}; "
                       "pass train_split=None if none of them is for training")
    eval_batch_size = eval_batch_size or 2 * batch_size
    loaders = {}
    for name, dataset in splits.items():
        tokenized = tokenize_dataset(dataset, tokenizer, max_len, text_column=text_column,
                                     pair_column=pair_column, label_column=label_column)
        is_train = name == train_split
        loaders[name] = make_loader(tokenized, tokenizer, batch_size if is_train else eval_batch_size,
                                    shuffle=is_train, seed=seed,
                                    group_by_length=group_by_length and is_train)
    return loaders


def token_lengths(texts: Sequence[str] | Iterable[str], tokenizer,
                  pairs: Sequence[str] | None = None) -> np.ndarray:
    """Number of tokens of each text (or pair) *without* truncation, special tokens included."""
    _check_tokenizer(tokenizer)
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string; wrap it: [text]")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("every text must be a str")
    if pairs is not None:
        pairs = list(pairs)
        if len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs; pass one pair per text")
    if not texts:
        return np.zeros(0, dtype=np.int64)
    enc = tokenizer(texts, pairs, truncation=False, verbose=False)
    return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)


def sort_by_length(dataset, tokenizer, text_column: str = "sentence", pair_column: str | None = None):
    """The rows of ``dataset`` ordered by length in tokens, shortest first (stable).

    For evaluation: consecutive rows then have similar lengths, so a batch wastes
    almost nothing on padding. Metrics do not depend on the order of the rows.
    """
    _check_columns(dataset, text_column, pair_column)
    pairs = list(dataset[pair_column]) if pair_column else None
    lengths = token_lengths(list(dataset[text_column]), tokenizer, pairs)
    return dataset.select(np.argsort(lengths, kind="stable"))


# --------------------------------------------------------------------------- features
def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    r"""Masked mean over tokens: :math:`\sum_i a_i h_i / \sum_i a_i`.

    ``hidden`` ``(N, L, H)`` encoder outputs, ``attention_mask`` ``(N, L)`` with 1 for real
    tokens and 0 for padding. Returns ``(N, H)``; padding never contributes.
    """
    if not isinstance(hidden, torch.Tensor) or hidden.ndim != 3 or not hidden.is_floating_point():
        raise ValueError("hidden must be a float tensor (N, L, H), e.g. outputs.last_hidden_state; got "
                         f"{getattr(hidden, 'shape', type(hidden).__name__)}")
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask must be a tensor of shape (N, L) = {tuple(hidden.shape[:2])}, "
                         f"got {getattr(attention_mask, 'shape', type(attention_mask).__name__)}")
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)            # (N, L, 1)
    counts = weights.sum(1)                                            # (N, 1)
    if bool((counts == 0).any()):
        raise ValueError("a row of attention_mask is all zeros (a sequence with no tokens); "
                         "every sequence needs at least one real token")
    return (hidden * weights).sum(1) / counts                          # (N, H)


@torch.no_grad()
def encode_features(model, loader: Iterable, pooling: str = "mean", *, device=None,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Frozen sentence features: run ``model`` (an encoder such as ``AutoModel``) over ``loader``.

    ``pooling``: ``"mean"`` (masked mean of the last hidden states), ``"cls"`` (the
    hidden state of ``[CLS]``, position 0) or ``"both"`` (returns a dict of both).
    Returns ``(features (n, H) float32, labels (n,) or None)`` as NumPy arrays.
    """
    from . import device as _device
    from .train import progress_bar
    if pooling not in ("mean", "cls", "both"):
        raise ValueError(f"pooling must be 'mean', 'cls' or 'both', got {pooling!r}")
    device = torch.device(device) if device is not None else _device.pick()
    encoder = getattr(model, "base_model", model)   # a *ForSequenceClassification -> its encoder
    was_training = encoder.training
    encoder.to(device).eval()
    feats: dict[str, list] = {"mean": [], "cls": []}
    labels = []
    for batch in progress_bar(loader, desc=f"features ({pooling})", leave=False,
                              disable=not progress):
        if not isinstance(batch, Mapping) or "input_ids" not in batch:
            raise ValueError("each batch must be a dict with input_ids and attention_mask "
                             "(use make_loader / text_loaders)")
        inputs = {k: v.to(device) for k, v in batch.items() if k in MODEL_INPUTS}
        hidden = encoder(**inputs).last_hidden_state.float()          # (N, L, H)
        feats["mean"].append(mean_pool(hidden, inputs["attention_mask"]).cpu())
        feats["cls"].append(hidden[:, 0].cpu())
        if "labels" in batch:
            labels.append(batch["labels"].cpu())
    encoder.train(was_training)
    y = torch.cat(labels).numpy() if labels else None
    out = {k: torch.cat(v).numpy() for k, v in feats.items()}
    return (out if pooling == "both" else out[pooling]), y


# --------------------------------------------------------------------------- metrics
def classification_metrics(logits, labels, class_names: Sequence[str] | None = None) -> dict:
    """Accuracy, F1, confusion matrix and per-example probabilities from logits.

    ``logits`` ``(n, C)`` (tensor or array), ``labels`` ``(n,)`` class ids. Returns a dict
    with ``accuracy``, ``f1`` (for two classes: F1 of class 1, the positive class; else
    macro), ``macro_f1``, ``confusion`` (``C x C``, rows = true class), ``probs (n, C)``,
    ``preds (n,)``, ``confidence (n,)`` (the largest probability) and ``correct (n,)``.
    """
    from . import metrics
    logits_t = torch.as_tensor(np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor)
                                          else logits), dtype=torch.float64)
    if logits_t.ndim != 2 or logits_t.shape[1] < 2:
        raise ValueError(f"logits must be (n, num_classes) with num_classes >= 2, got shape "
                         f"{tuple(logits_t.shape)}")
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or len(y) != len(logits_t):
        raise ValueError(f"labels must be 1-D with one class id per row of logits "
                         f"({len(logits_t)}), got shape {y.shape}")
    num_classes = logits_t.shape[1]
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    probs = torch.softmax(logits_t, dim=-1).numpy()
    preds = probs.argmax(-1)
    average = "binary" if num_classes == 2 else "macro"
    out = {
        "accuracy": metrics.accuracy(y, preds),
        "f1": metrics.f1(y, preds, average=average),
        "macro_f1": float(metrics.precision_recall_f1(y, preds, "macro", num_classes)["f1"]),
        "confusion": metrics.confusion_matrix(y, preds, num_classes),
        "probs": probs, "preds": preds, "confidence": probs.max(-1), "correct": preds == y,
        "n": int(len(y)),
    }
    if class_names is not None:
        out["class_names"] = list(class_names)
    return out


def most_confident_errors(texts: Sequence[str], logits, labels, k: int = 5) -> list[dict]:
    """The ``k`` wrong predictions the model was most sure of, most confident first.

    Each item: ``{"index", "text", "label", "pred", "confidence"}``.
    """
    k = _check_positive_int("k", k)
    texts = list(texts)
    scores = classification_metrics(logits, labels)
    if len(texts) != scores["n"]:
        raise ValueError(f"{len(texts)} texts but {scores['n']} rows of logits")
    wrong = np.flatnonzero(~scores["correct"])
    order = wrong[np.argsort(-scores["confidence"][wrong], kind="stable")][:k]
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    return [{"index": int(i), "text": texts[i], "label": int(y[i]), "pred": int(scores["preds"][i]),
             "confidence": float(scores["confidence"][i])} for i in order]


# --------------------------------------------------------------------------- optimizer & schedule
def training_steps(num_examples: int, batch_size: int, epochs: int = 1, warmup_ratio: float = 0.1,
                   *, drop_last: bool = False, grad_accum: int = 1) -> tuple[int, int]:
    """``(total optimizer steps, warmup steps)`` for a run, counted as the HF ``Trainer`` does.

    Batches per epoch are ``ceil(num_examples / batch_size)`` (``floor`` with ``drop_last``);
    with gradient accumulation an update happens every ``grad_accum`` batches and a last,
    shorter group of batches is still an update: ``ceil(batches / grad_accum)`` updates per
    epoch (``Trainer.set_initial_training_values`` in transformers 5). Warmup is
    ``ceil(warmup_ratio * total)`` steps.
    """
    num_examples = _check_positive_int("num_examples", num_examples)
    batch_size = _check_positive_int("batch_size", batch_size)
    epochs = _check_positive_int("epochs", epochs)
    grad_accum = _check_positive_int("grad_accum", grad_accum)
    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio!r} (0.06 or 0.1 are usual)")
    batches = num_examples // batch_size if drop_last else math.ceil(num_examples / batch_size)
    if batches == 0:
        raise ValueError(f"drop_last with {num_examples} examples < batch_size {batch_size} "
                         "leaves no batch at all")
    total = max(math.ceil(batches / grad_accum), 1) * epochs     # the Trainer's count
    return total, math.ceil(warmup_ratio * total)


def linear_warmup_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    r"""Learning-rate multiplier at ``step`` (0-based): linear warmup, then linear decay to 0.

    .. math:: f(t) = t / W \ (t < W), \qquad f(t) = \max\bigl(0, (T - t) / (T - W)\bigr) \ (t \ge W)

    the schedule of ``transformers.get_linear_schedule_with_warmup``: it is
    :func:`handson.optim.warmup_linear_lr` with ``base_lr=1`` (one implementation).
    """
    return _optim.warmup_linear_lr(step, 1.0, warmup_steps, total_steps)


def adamw_param_groups(model: torch.nn.Module, weight_decay: float = 0.01) -> list[dict]:
    """Two parameter groups for AdamW: weight decay on weight matrices only.

    Biases and LayerNorm weights get no decay (the BERT recipe, and what the HF
    ``Trainer`` does); frozen parameters (``requires_grad=False``) are left out. The rule is
    the book's one rule, :func:`handson.optim.decays` (vectors, ``p.dim() < 2``, get no decay),
    shared with :func:`handson.lm.fit_lm`.
    """
    groups = _optim.weight_decay_groups(model, weight_decay)
    if not groups[0]["params"] and not groups[1]["params"]:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    return groups


def optimizer_and_scheduler(model: torch.nn.Module, lr: float, total_steps: int, warmup_steps: int,
                            weight_decay: float = 0.01):
    """``(AdamW, LambdaLR)``: the fine-tuning recipe's optimizer and per-step linear schedule.

    Step the scheduler once per optimizer step (:func:`handson.train.fit` does).
    """
    _v.number(lr, "lr", "optimizer_and_scheduler", low=0, low_open=True,
              what="a positive number (BERT fine-tuning uses 1e-5 .. 1e-4)")
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got "
                         f"warmup_steps={warmup_steps}, total_steps={total_steps}; compute them "
                         "with training_steps(...)")
    optimizer = torch.optim.AdamW(adamw_param_groups(model, weight_decay), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_factor(step, warmup_steps, total_steps))
    return optimizer, scheduler

"""Checkers for the exercises of chapter 6, *Fine-tuning BERT for text classification*.

They print PASS or a hint; they never print the expected value, a difference or the
solution code.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from . import NO_ANSWER, _say, close, function_matches, is_integer


def count_pieces(answer, tokenizer, sentence: str, with_special: bool = True) -> bool:
    """Number of WordPiece tokens of ``sentence`` (``[CLS]`` and ``[SEP]`` included by default)."""
    ids = tokenizer(sentence, add_special_tokens=with_special)["input_ids"]
    special = "[CLS] and [SEP] count too, " if with_special else ""
    return close(answer, len(ids), integer=True, label="number of tokens",
                 nudge="count what the tokenizer produces for the sentence, not the words you see: "
                       "punctuation and rare words change the count",
                 hint=f"call the tokenizer on the sentence and count input_ids; {special}"
                      "punctuation marks are tokens of their own and a rare word becomes several "
                      "## pieces")


def _reference_pad(id_lists, pad_id):
    longest = max(len(ids) for ids in id_lists)
    input_ids = torch.full((len(id_lists), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(id_lists), longest, dtype=torch.long)
    for row, ids in enumerate(id_lists):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, :len(ids)] = 1
    return input_ids, mask


def pad_and_mask(your_fn) -> bool:
    """``your_fn(id_lists, pad_id) -> (input_ids (N, L), attention_mask (N, L))``, right padding."""
    pad_ids = [0, 7, 0, 1, 102, 0]

    def make(trial):
        rng = np.random.default_rng(trial)
        pad_id = pad_ids[trial % len(pad_ids)]
        lengths = rng.integers(1, 12, size=2 + trial)
        lengths[rng.integers(len(lengths))] = 12                 # the longest one is not always first
        # ids never equal the padding id inside a sentence
        lists = [[int(i) + (int(i) >= pad_id) for i in rng.integers(0, 29_999, size=n)]
                 for n in lengths]
        return (lists, pad_id)

    def checked(id_lists, pad_id):
        got = your_fn([list(ids) for ids in id_lists], pad_id)
        if got is None:
            return None
        if not isinstance(got, tuple) or len(got) != 2:
            raise TypeError("return a tuple (input_ids, attention_mask)")
        ids, mask = (torch.as_tensor(g) for g in got)
        if ids.is_floating_point() or mask.is_floating_point():
            raise TypeError("input_ids and attention_mask must hold integers (torch.long), not floats")
        return ids, mask

    return function_matches(checked, _reference_pad, make, trials=6, atol=0, rtol=0,
                            label="padded ids and attention mask",
                            nudge="build two (N, L) integer tensors, L the longest list: the ids "
                                  "filled up with pad_id, and a mask that says which positions are "
                                  "real tokens",
                            hint="pad every list on the right to the longest one with the pad_id you "
                                 "are given (not always 0); the mask is 1 for each real token "
                                 "(counted in tokens, not characters) and 0 for each pad")


def _steps(num_examples: int, batch_size: int, epochs: int, warmup_ratio: float,
           grad_accum: int) -> tuple[int, int]:
    """The Trainer's count: ceil(ceil(n / B) / accum) updates per epoch, ceil(r T) warmup."""
    batches = math.ceil(num_examples / batch_size)
    total = max(math.ceil(batches / grad_accum), 1) * epochs
    return total, math.ceil(warmup_ratio * total)


def training_steps(answer, num_examples: int, batch_size: int, epochs: int,
                   warmup_ratio: float, grad_accum: int = 1) -> bool:
    """``(total optimizer steps, warmup steps)``, counted as the Hugging Face ``Trainer`` does.

    With gradient accumulation over ``grad_accum`` batches, a last, shorter group of
    batches is still an optimizer step.
    """
    label = "training steps: "
    total, warmup = _steps(num_examples, batch_size, epochs, warmup_ratio, grad_accum)
    if answer is None or answer is Ellipsis:
        return _say(False, label, NO_ANSWER,
                    "a tuple (total_steps, warmup_steps): count optimizer updates, not sentences")
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__len__"):
        return _say(False, label, f"could not read a {type(answer).__name__} as two numbers",
                    "answer with a tuple (total_steps, warmup_steps)")
    got = list(answer)
    if len(got) != 2:
        return _say(False, label, f"{len(got)} numbers, expected 2",
                    "answer with a tuple (total_steps, warmup_steps)")
    if not all(is_integer(g) for g in got):
        return _say(False, label, "steps are whole numbers: answer with two ints (not floats)",
                    "round up where a fraction of a batch or of a step is left over (math.ceil)")
    got = [int(g) for g in got]
    if got[0] != total:
        per_epoch_floor = (num_examples // batch_size) // grad_accum * epochs
        per_accum_floor = max(math.ceil(num_examples / batch_size) // grad_accum, 1) * epochs
        if got[0] in (per_epoch_floor, per_accum_floor):
            hint = ("a last, smaller batch is still a batch, and a last, shorter group of "
                    "accumulated batches is still an optimizer step: round up, not down")
        elif grad_accum > 1 and got[0] == math.ceil(num_examples / batch_size) * epochs:
            hint = ("with gradient accumulation the optimizer steps once every grad_accum "
                    "batches, not once per batch")
        else:
            hint = ("batches per epoch = ceil(num_examples / batch_size); optimizer steps per "
                    "epoch = ceil(batches / grad_accum); times the number of epochs")
        return _say(False, label, "the total is not right", hint)
    if got[1] != warmup:
        return _say(False, label, "the total is right, the warmup is not",
                    "warmup = ceil(warmup_ratio * total_steps): a fraction of all steps, rounded up")
    return _say(True, label, "", None)


def _reference_pick(results):
    finite = [r for r in results if math.isfinite(r["val_loss"])]
    if not finite:
        return None
    best = max(finite, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    return best["lr"]


def pick_learning_rate(your_fn, measured: Sequence[dict] | None = None) -> bool:
    """``your_fn(results) -> lr``: the best finite run, by accuracy, ties by lower loss.

    ``results`` is a list of dicts with keys ``lr``, ``val_accuracy``, ``val_loss``.
    ``measured`` (the notebook's sweep) is tried last.
    """
    def make(trial):
        rng = np.random.default_rng(100 + trial)
        k = 3 + trial % 3
        lrs = rng.choice([1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3], size=k, replace=False)
        accs = rng.choice([0.5, 0.75, 0.8, 0.85], size=k)          # repeats make ties
        accs[0] = accs[1] = accs.max()                                # a tie for the best accuracy
        losses = rng.uniform(0.3, 0.7, size=k)
        if trial % 2 == 0:                                          # a diverged run with top accuracy
            i = int(rng.integers(2, k))
            accs[i], losses[i] = 0.9, float("nan" if trial % 4 == 0 else "inf")
        return ([{"lr": float(l), "val_accuracy": float(a), "val_loss": float(s)}
                 for l, a, s in zip(lrs, accs, losses)],)             # lrs in random order

    def checked(results):
        got = your_fn([dict(r) for r in results])
        return None if got is None else float(got)

    ok = function_matches(checked, lambda r: float(_reference_pick(r)), make, trials=8,
                          rtol=1e-9, atol=0, label="pick_learning_rate",
                          nudge="return one of the learning rates in the list: the one of the best "
                                "run that did not diverge",
                          hint="drop runs whose val_loss is nan or inf (they diverged), then take the "
                               "highest val_accuracy; on a tie prefer the lower val_loss")
    if ok and measured:
        chosen = your_fn([dict(r) for r in measured])
        print(f"  on this notebook's sweep your function picks lr = {chosen:g}")
    return ok


def mean_pool(your_fn) -> bool:
    """``your_fn(hidden (N, L, H), attention_mask (N, L)) -> (N, H)``: masked mean."""
    def reference(hidden, mask):
        w = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * w).sum(1) / w.sum(1)

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        n, length, h = 2 + trial, 3 + trial, 3 + 2 * trial
        hidden = torch.randn(n, length, h, generator=g, dtype=torch.float64)
        lengths = torch.randint(1, length + 1, (n,), generator=g)
        lengths[0] = length                                     # one row without padding
        mask = (torch.arange(length) < lengths[:, None]).long()
        hidden = hidden + 100 * (1 - mask).unsqueeze(-1)       # padding positions hold large junk
        if trial % 2:
            mask = mask.float()                                 # masks come as ints or floats
        return hidden, mask

    return function_matches(your_fn, reference, make, trials=5, atol=1e-9, label="mean_pool",
                            nudge="an average over the real tokens of each sentence: padding "
                                  "positions must not count",
                            hint="padding positions must add nothing to the sum, and each "
                                 "sentence's divisor is its own number of real tokens, not L")


def lora_parameters(answer, num_layers: int, hidden_size: int, r: int,
                    adapted_per_layer: int = 2) -> bool:
    """Trainable numbers of LoRA adapters of rank ``r`` on ``adapted_per_layer`` square
    ``hidden_size x hidden_size`` projections in each of ``num_layers`` layers (no head)."""
    per_adapter = r * (hidden_size + hidden_size)
    expected = num_layers * adapted_per_layer * per_adapter
    label = "LoRA parameters"
    if answer is not None and answer is not Ellipsis and is_integer(answer):
        a = int(answer)
        frozen = num_layers * adapted_per_layer * hidden_size * hidden_size
        hints = {
            frozen: "that is the size of the frozen matrices W; LoRA trains only A and B",
            num_layers * adapted_per_layer * r * hidden_size:
                "count both factors: A has r x in entries and B has out x r",
            per_adapter: "that is one adapter; count every adapted projection of every layer",
            num_layers * per_adapter: "each layer has more than one adapted projection",
        }
        if a != expected and a in hints:
            return close(a, expected, integer=True, label=label, hint=hints[a])
    return close(answer, expected, integer=True, label=label,
                 nudge="LoRA replaces the update of each adapted W (out x in) by B A with B "
                       "(out x r) and A (r x in): count their entries",
                 hint="per adapted projection r * (in_features + out_features) numbers, times the "
                      "projections per layer, times the layers")

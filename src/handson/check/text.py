"""Checkers for the exercises of chapter 6, *Fine-tuning BERT for text classification*."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from . import _say, close, function_matches


def count_pieces(answer, tokenizer, sentence: str, with_special: bool = True) -> bool:
    """Number of WordPiece tokens of ``sentence`` (``[CLS]`` and ``[SEP]`` included by default)."""
    ids = tokenizer(sentence, add_special_tokens=with_special)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    ok = close(answer, len(ids), atol=0, rtol=0, label="number of tokens",
               hint="call the tokenizer on the sentence and count input_ids; [CLS] and [SEP] count "
                    "too, and a rare word becomes several ## pieces")
    if not ok and answer is not None:
        print(f"  (look at tokenizer.tokenize(sentence): {len(pieces) - 2 * with_special} pieces "
              "before the special tokens)")
    return ok


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
    def make(trial):
        rng = np.random.default_rng(trial)
        lengths = rng.integers(1, 12, size=2 + trial)
        # ids drawn from 1..29999 so that the padding id 0 never occurs inside a sentence
        return ([rng.integers(1, 30_000, size=n).tolist() for n in lengths], 0)

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
                            hint="pad every list on the right to the longest one with pad_id; the "
                                 "mask is 1 for each real token (counted in tokens, not characters) "
                                 "and 0 for each pad")


def training_steps(answer, num_examples: int, batch_size: int, epochs: int,
                   warmup_ratio: float) -> bool:
    """``(total optimizer steps, warmup steps)`` for a run without gradient accumulation."""
    total = math.ceil(num_examples / batch_size) * epochs
    warmup = math.ceil(warmup_ratio * total)
    if answer is None:
        return _say(False, "training steps: ", "no answer yet (the cell still holds None)",
                    "a tuple (total_steps, warmup_steps)")
    try:
        got = tuple(int(round(float(a))) for a in answer)
    except (TypeError, ValueError):
        return _say(False, "training steps: ", f"could not read {answer!r} as two numbers",
                    "answer with a tuple (total_steps, warmup_steps)")
    if len(got) != 2:
        return _say(False, "training steps: ", f"{len(got)} numbers, expected 2",
                    "answer with a tuple (total_steps, warmup_steps)")
    if got[0] != total:
        wrong_floor = (num_examples // batch_size) * epochs
        hint = ("the last, smaller batch is still a step: ceil(num_examples / batch_size) per epoch"
                if got[0] == wrong_floor else
                "steps per epoch = ceil(num_examples / batch_size), times the number of epochs")
        return _say(False, "training steps: ", f"total {got[0]} is not right", hint)
    if got[1] != warmup:
        return _say(False, "training steps: ", f"total {got[0]} is right, warmup {got[1]} is not",
                    "warmup = ceil(warmup_ratio * total_steps): a fraction of all steps, rounded up")
    return _say(True, "training steps: ", f"({total} steps, {warmup} of them warmup)", None)


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
        lrs = sorted(rng.choice([1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3], size=4, replace=False))
        accs = rng.choice([0.5, 0.75, 0.8, 0.85], size=4)         # repeats make ties
        losses = rng.uniform(0.3, 0.7, size=4)
        if trial % 2 == 0:                                          # a diverged run with top accuracy
            i = int(rng.integers(4))
            accs[i], losses[i] = 0.9, float("nan")
        return ([{"lr": float(l), "val_accuracy": float(a), "val_loss": float(s)}
                 for l, a, s in zip(lrs, accs, losses)],)

    def checked(results):
        got = your_fn([dict(r) for r in results])
        return None if got is None else float(got)

    ok = function_matches(checked, lambda r: float(_reference_pick(r)), make, trials=6,
                          rtol=1e-9, atol=0, label="pick_learning_rate",
                          hint="drop runs whose val_loss is nan/inf (they diverged), then take the "
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
        n, length, h = 2 + trial, 3 + trial, 4
        hidden = torch.randn(n, length, h, generator=g, dtype=torch.float64)
        lengths = torch.randint(1, length + 1, (n,), generator=g)
        mask = (torch.arange(length) < lengths[:, None]).long()
        hidden = hidden + 100 * (1 - mask).unsqueeze(-1)       # padding positions hold large junk
        return hidden, mask

    return function_matches(your_fn, reference, make, trials=5, atol=1e-9, label="mean_pool",
                            hint="multiply by the mask (as float, shape (N, L, 1)), sum over dim 1, "
                                 "divide by the number of real tokens, not by L")

"""Classification metrics, always called as ``metric(y_true, y_pred)``.

``y_pred`` may be class ids or logits/probabilities of shape ``(n, num_classes)``
(the argmax is taken).  A float ``(n, 1)`` column is one **binary logit** per example
(the output of ``nn.Linear(d, 1)`` trained with ``BCEWithLogitsLoss``): it is read as class 1
where the logit is ``> 0`` and class 0 otherwise, the rule :func:`handson.train.fit` uses --
an argmax over a single column would call every example class 0.  (For probabilities in a
column, threshold them yourself: ``(p > 0.5).long()``.)  scikit-learn does the counting; the
notebooks teach the formulas and check them against these functions.
"""
from __future__ import annotations

import numpy as np
import torch

from . import validate as _v


def _from_scores(y: np.ndarray) -> np.ndarray:
    """Class ids from 2-D float scores: argmax, or logit > 0 for one binary column."""
    if y.shape[1] == 1:
        return (y[:, 0] > 0).astype(np.int64)
    return y.argmax(-1)


def _labels(y, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()
        if y.dtype in (torch.bfloat16, torch.float16):
            y = y.float()
        y = y.numpy()
    if y is None:
        raise _v.ArgumentTypeError(f"{name}: expected class ids or (n, num_classes) scores, "
                                   f"got None")
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise _v.ArgumentTypeError(f"{name}: expected class ids or (n, num_classes) scores, got "
                                   f"an array of dtype {y.dtype}; every entry must be a number")
    if y.ndim == 2 and np.issubdtype(y.dtype, np.floating):
        y = _from_scores(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class ids or 2-D (n, num_classes) scores, "
                         f"got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} holds non-integer values; pass class ids or 2-D logits")
        y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise ValueError(f"{name} holds the negative class id {int(y.min())}; class ids are "
                         f"0, 1, ... (drop ignored positions such as -100 first)")
    return y


def _num_classes(t, p, num_classes, func: str) -> int:
    """``num_classes`` if given (every id must be below it), else ``max id + 1``."""
    largest = int(max(t.max(), p.max()))
    if num_classes is None:
        return largest + 1
    n = _v.positive_int(num_classes, "num_classes", func)
    if largest >= n:
        side = "y_true" if t.max() >= n else "y_pred"
        raise ValueError(f"{func}(num_classes={n}): {side} holds class id {largest}, which needs "
                         f"num_classes >= {largest + 1}; the examples of that class would be "
                         f"dropped from the counts")
    return n


def _pair(y_true, y_pred):
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} items but y_pred has {len(p)}; "
                         "pass them in the same order and length")
    if len(t) == 0:
        raise ValueError("metrics need at least one example")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the labels."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean())


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``C[i, j]`` = number of examples of true class ``i`` predicted as ``j``.

    ``num_classes`` (default: the largest id + 1) must cover every id, so the counts add up
    to the number of examples.
    """
    from sklearn.metrics import confusion_matrix as sk_cm
    t, p = _pair(y_true, y_pred)
    n = _num_classes(t, p, num_classes, "confusion_matrix")
    return sk_cm(t, p, labels=list(range(n)))


def precision_recall_f1(y_true, y_pred, average: str | None = "macro",
                        num_classes: int | None = None) -> dict:
    """Precision, recall, F1 (and support).

    ``average``: ``"macro"`` (mean over classes), ``"micro"``, ``"weighted"``,
    ``"binary"`` (class 1 is positive) or ``None`` for per-class arrays.
    Classes with no predictions get precision 0 (scikit-learn's ``zero_division=0``).
    """
    from sklearn.metrics import precision_recall_fscore_support
    t, p = _pair(y_true, y_pred)
    _v.choice(average, "average", ("macro", "micro", "weighted", "binary", None),
              "precision_recall_f1")
    labels = None if average == "binary" else \
        list(range(_num_classes(t, p, num_classes, "precision_recall_f1")))
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, average=average, labels=labels, zero_division=0)
    out = {"precision": prec, "recall": rec, "f1": f1}
    if average is None:
        out["support"] = support
    return out


def f1(y_true, y_pred, average: str = "macro") -> float:
    """F1 score (macro-averaged by default)."""
    return float(precision_recall_f1(y_true, y_pred, average=average)["f1"])

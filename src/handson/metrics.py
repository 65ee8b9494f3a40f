"""Classification metrics, always called as ``metric(y_true, y_pred)``.

``y_pred`` may be class ids or logits/probabilities of shape ``(n, num_classes)``
(the argmax is taken).  scikit-learn does the counting; the notebooks teach
the formulas and check them against these functions.
"""
from __future__ import annotations

import numpy as np
import torch


def _labels(y, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()
        if y.is_floating_point() and y.ndim == 2:
            y = y.argmax(-1)
        y = y.numpy()
    y = np.asarray(y)
    if y.ndim == 2 and np.issubdtype(y.dtype, np.floating):
        y = y.argmax(-1)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class ids or 2-D (n, num_classes) scores, "
                         f"got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} holds non-integer values; pass class ids or 2-D logits")
        y = y.astype(np.int64)
    return y


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
    """``C[i, j]`` = number of examples of true class ``i`` predicted as ``j``."""
    from sklearn.metrics import confusion_matrix as sk_cm
    t, p = _pair(y_true, y_pred)
    n = num_classes or int(max(t.max(), p.max())) + 1
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
    labels = None if average == "binary" else list(range(num_classes or int(max(t.max(), p.max())) + 1))
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, average=average, labels=labels, zero_division=0)
    out = {"precision": prec, "recall": rec, "f1": f1}
    if average is None:
        out["support"] = support
    return out


def f1(y_true, y_pred, average: str = "macro") -> float:
    """F1 score (macro-averaged by default)."""
    return float(precision_recall_f1(y_true, y_pred, average=average)["f1"])

"""Checkers for the exercises of *Using this book* (chapter 0)."""
from __future__ import annotations

import numpy as np
import torch

from . import close, function_matches


def batches_per_epoch(answer, n_examples: int, batch_size: int, drop_last: bool = False) -> bool:
    """How many batches a DataLoader yields per epoch."""
    expected = n_examples // batch_size if drop_last else -(-n_examples // batch_size)
    return close(answer, expected, atol=0, label="batches per epoch",
                 hint="the last, smaller batch counts unless drop_last=True: use ceil(n / batch_size)")


def normalize_images(your_fn) -> bool:
    """``your_fn(images_uint8 (N, C, H, W)) -> float (N, C, H, W)`` standardized per channel."""
    def reference(images):
        x = images.float() / 255
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) / std

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        return (torch.randint(0, 256, (4 + trial, 3, 5, 5), generator=g, dtype=torch.uint8),)

    return function_matches(your_fn, reference, make, atol=1e-4, label="normalize_images",
                            hint="scale to [0, 1] first, then per channel subtract the mean and divide "
                                 "by the (population) std over dims (0, 2, 3)")


def class_share(answer, labels, cls: int) -> bool:
    """Fraction of ``labels`` equal to ``cls``."""
    expected = float(np.mean(np.asarray(labels) == cls))
    return close(answer, expected, atol=1e-4, label="class share",
                 hint="count labels == cls and divide by the number of labels")


def accuracy_from_confusion(answer, cm) -> bool:
    """Accuracy read off a confusion matrix."""
    cm = np.asarray(cm)
    return close(answer, np.trace(cm) / cm.sum(), atol=1e-6, label="accuracy",
                 hint="correct predictions lie on the diagonal: trace / total")

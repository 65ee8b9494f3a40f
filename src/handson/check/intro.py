"""Checkers for the exercises of *Using this book* (chapter 0)."""
from __future__ import annotations

import numpy as np
import torch

from . import close, function_matches
from . import one_number as _one_number


def batches_per_epoch(answer, n_examples: int, batch_size: int, drop_last: bool = False) -> bool:
    """How many batches a DataLoader yields per epoch (an integer)."""
    expected = n_examples // batch_size if drop_last else -(-n_examples // batch_size)
    if drop_last:
        hint = "with drop_last=True an incomplete last batch is thrown away"
    else:
        hint = ("every example is used once per epoch, and the examples left over after the "
                "full batches still form a batch of their own")
    return close(_one_number(answer), expected, integer=True, label="batches per epoch",
                 nudge="a batch holds batch_size examples; how many of them does it take to "
                       "cover the whole training set once?", hint=hint)


def normalize_images(your_fn) -> bool:
    """``your_fn(images_uint8 (N, C, H, W)) -> float (N, C, H, W)`` standardized per channel."""
    def reference(images):
        x = images.double() / 255
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) / std

    def make(trial):
        g = torch.Generator().manual_seed(trial)
        n, c, h, w = 2 + trial, [3, 1, 4, 3, 2][trial % 5], 4 + trial, 6 - trial % 3
        images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
        # channels get different brightness and contrast, so one statistic for all cannot pass
        scale = torch.linspace(0.3, 1.0, c).view(1, c, 1, 1)
        offset = torch.linspace(0.0, 60.0, c).view(1, c, 1, 1)
        return ((images.double() * scale + offset).round().clamp(0, 255).to(torch.uint8),)

    return function_matches(your_fn, reference, make, atol=1e-4, label="normalize_images",
                            nudge="work in floats in [0, 1]; every channel gets its own mean and "
                                  "standard deviation, taken over all images and pixels",
                            hint="each channel is standardized with statistics over the images "
                                 "and both pixel dimensions (not over the channels), and the "
                                 "standard deviation is the population one (divide by the "
                                 "count, not the count minus one)")


def class_share(answer, labels, cls: int) -> bool:
    """Fraction of ``labels`` equal to ``cls``, accepted to 3 decimals."""
    expected = float(np.mean(np.asarray(labels) == cls))
    return close(_one_number(answer), expected, places=3, label="class share",
                 nudge="a share is a count divided by a total",
                 hint="count the labels equal to the class and divide by the number of all "
                      "labels (a fraction between 0 and 1, not a percentage)")


def accuracy_from_confusion(answer, cm) -> bool:
    """Accuracy read off a confusion matrix, accepted to 3 decimals."""
    cm = np.asarray(cm)
    return close(_one_number(answer), np.trace(cm) / cm.sum(), places=3, label="accuracy",
                 nudge="which cells of the matrix hold the correct predictions?",
                 hint="the correct predictions are where the true and the predicted class "
                      "agree; divide them by all predictions (a fraction, not a percentage)")

"""Small matplotlib helpers: the book's figure style, training curves, image grids, heatmaps."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from . import validate as _v

#: Resolution of every figure in the book (dots per inch).
DPI = 150
#: The widest a figure should be, in inches. The website's output column is 772 CSS px
#: wide at a desktop width: a 7.5-inch figure at 150 dpi is 1,125 px, shown at 0.69 of its
#: natural size, so 9-pt text is 9 * 150 / 72 * 0.69 = 12.9 px on screen (9.7 CSS pt).
MAX_WIDTH_IN = 7.5
#: The smallest font size (points) the style uses; with MAX_WIDTH_IN it stays >= 9 pt on screen.
MIN_FONT_PT = 9

BOOK_STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (7.0, 3.6),
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _plt():
    import matplotlib.pyplot as plt
    return plt


def use_book_style() -> None:
    """Apply the book's figure style (:data:`BOOK_STYLE`) to every later matplotlib figure.

    Every chapter calls it in its setup cell, so figures are legible in the page column:
    at most :data:`MAX_WIDTH_IN` wide at :data:`DPI`, with text of at least
    :data:`MIN_FONT_PT` points.
    """
    _plt().rcParams.update(BOOK_STYLE)


def book_figsize(height: float, width: float = MAX_WIDTH_IN) -> tuple[float, float]:
    """A figure size that fits the page column: ``(min(width, MAX_WIDTH_IN), height)``."""
    width = _v.positive_number(width, "width", "book_figsize")
    height = _v.positive_number(height, "height", "book_figsize")
    return (min(float(width), MAX_WIDTH_IN), float(height))


def plot_history(history: Mapping[str, Sequence[float]], keys: Sequence[str] | None = None,
                 ax=None, title: str | None = None, logy: bool = False):
    """Plot per-epoch curves from :func:`handson.train.fit`'s history.

    By default losses go on the left panel and other metrics (accuracy, f1, ...)
    on the right panel. Returns the figure.
    """
    plt = _plt()
    if "epoch" not in history:
        raise ValueError("history needs an 'epoch' list (as returned by handson.train.fit)")
    epochs = history["epoch"]
    keys = list(keys) if keys is not None else [k for k in history if k not in ("epoch", "time_s", "lr")]
    missing = [k for k in keys if k not in history]
    if missing:
        raise KeyError(f"history has no {missing}; available: {sorted(history)}")
    losses = [k for k in keys if k.endswith("loss")]
    others = [k for k in keys if k not in losses]
    if ax is not None:
        axes, fig = [ax], ax.figure
        losses, others = keys, []
    else:
        ncols = 1 + bool(others and losses)
        fig, axes = plt.subplots(1, ncols, figsize=book_figsize(3.2, 3.75 * ncols),
                                 squeeze=False)
        axes = list(axes[0])
    groups = [g for g in (losses, others) if g]
    for a, group in zip(axes, groups):
        for k in group:
            a.plot(epochs, history[k], marker="o", ms=3, label=k)
        a.set_xlabel("epoch")
        a.legend()
        a.grid(alpha=0.3)
        if logy and group is losses:
            a.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _to_hwc(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dtype == torch.uint8:
            image = image.float() / 255
        image = image.numpy()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3):
        raise ValueError(f"an image must be (C, H, W), (H, W, C) or (H, W); got shape {image.shape}")
    return np.clip(image, 0, 1)


def show_images(images, titles: Sequence[str] | None = None, ncols: int = 8,
                scale: float = 1.4, title: str | None = None):
    """A grid of images (tensors ``(N, C, H, W)`` uint8 or float in [0, 1], or a list)."""
    plt = _plt()
    images = list(images)
    if not images:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    scale = min(scale, MAX_WIDTH_IN / ncols)  # the whole grid fits the page column
    row_height = scale * (1.2 if titles is not None else 1.0)   # room for the titles
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * row_height),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            img = _to_hwc(images[i])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            if titles is not None:
                ax.set_title(titles[i], fontsize=MIN_FONT_PT)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix, xticklabels: Sequence[str] | None = None, yticklabels: Sequence[str] | None = None,
            ax=None, cmap: str = "viridis", annotate: bool | None = None, fmt: str = ".2f",
            title: str | None = None, xlabel: str | None = None, ylabel: str | None = None,
            colorbar: bool = True):
    """Show a 2-D matrix (attention weights, confusion matrix, search grid). Returns the axes."""
    plt = _plt()
    m = matrix.detach().cpu().float().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix, got shape {m.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=book_figsize(max(2.5, 0.45 * m.shape[0] + 1.5),
                                                  max(3, 0.5 * m.shape[1] + 2)))
    im = ax.imshow(m, cmap=cmap, aspect="auto")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if xticklabels is not None:
        ax.set_xticks(range(m.shape[1]), xticklabels, rotation=45, ha="right")
    if yticklabels is not None:
        ax.set_yticks(range(m.shape[0]), yticklabels)
    if annotate is None:
        annotate = m.size <= 144
    if annotate:
        for (i, j), v in np.ndenumerate(m):
            # dark text on light cells and light text on dark ones, whatever the colormap
            r, g, b, _ = im.cmap(im.norm(v))
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=MIN_FONT_PT,
                    color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def plot_confusion_matrix(cm, class_names: Sequence[str] | None = None, normalize: bool = False,
                          ax=None, title: str = "confusion matrix"):
    """Confusion matrix heatmap (rows = true class, columns = predicted)."""
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    return heatmap(cm, class_names, class_names, ax=ax, cmap="Blues",
                   fmt=".2f" if normalize else ".0f", title=title,
                   xlabel="predicted", ylabel="true")

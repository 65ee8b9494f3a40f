import matplotlib

matplotlib.use("agg")
import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from handson import metrics, plot


def test_metrics_match_sklearn_and_accept_logits():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 200)
    logits = torch.randn(200, 3)
    y_pred = logits.argmax(1).numpy()
    assert metrics.accuracy(y_true, logits) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    prf = metrics.precision_recall_f1(y_true, y_pred)
    assert prf["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    per_class = metrics.precision_recall_f1(y_true, y_pred, average=None)
    assert per_class["support"].sum() == 200
    cm = metrics.confusion_matrix(y_true, y_pred)
    assert (cm == skm.confusion_matrix(y_true, y_pred)).all()
    assert metrics.f1(y_true, y_pred) == pytest.approx(prf["f1"])


def test_metrics_reject_mismatched_input():
    with pytest.raises(ValueError, match="same order and length"):
        metrics.accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="1-D"):
        metrics.accuracy(np.zeros((2, 2, 2)), [0, 1])
    with pytest.raises(ValueError, match="non-integer"):
        metrics.accuracy([0.5, 1.0], [0, 1])


def test_plots_draw():
    hist = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "val_accuracy": [0.5, 0.7]}
    fig = plot.plot_history(hist)
    assert len(fig.axes) == 2
    with pytest.raises(KeyError, match="available"):
        plot.plot_history(hist, keys=["nope"])
    fig = plot.show_images(torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8), titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 6
    ax = plot.plot_confusion_matrix(np.eye(3) * 5, ["a", "b", "c"], normalize=True)
    assert ax.get_xlabel() == "predicted"
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap(np.zeros(3))
    with pytest.raises(ValueError, match="titles"):
        plot.show_images(torch.zeros(2, 3, 4, 4), titles=["a"])


def test_heatmap_labels_contrast_with_their_cells():
    import matplotlib
    matplotlib.use("Agg")
    from handson import plot
    for cmap in ("Blues", "viridis"):
        ax = plot.heatmap([[0.0, 50.0], [5.0, 100.0]], cmap=cmap, fmt=".0f")
        im = ax.images[0]
        for text in ax.texts:
            v = float(text.get_text())
            r, g, b, _ = im.cmap(im.norm(v))
            light_cell = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
            assert (text.get_color() == "black") == light_cell, (cmap, v)


def test_book_style_fits_the_page_column_with_legible_text():
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    with matplotlib.rc_context():
        plot.use_book_style()
        assert plt.rcParams["figure.dpi"] == plot.DPI == 150
        for key in ("xtick.labelsize", "ytick.labelsize", "legend.fontsize", "font.size"):
            assert plt.rcParams[key] >= plot.MIN_FONT_PT
        # the helpers' own figures are never wider than the column, however many panels
        figures = [plot.show_images(torch.zeros(16, 3, 8, 8), titles=list("abcdefghijklmnop")),
                   plot.plot_history({"epoch": [1, 2], "train_loss": [1, 0.5], "val_accuracy": [0.5, 0.6]}),
                   plot.heatmap(np.zeros((30, 30))).figure]
        for fig in figures:
            assert fig.get_size_inches()[0] <= plot.MAX_WIDTH_IN + 1e-9
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            image = Image.open(buffer)
            assert round(image.info["dpi"][0]) == plot.DPI       # the PNG records its dpi
            assert image.width <= plot.MAX_WIDTH_IN * plot.DPI + 1
            plt.close(fig)
        for text in figures[0].axes[0].texts + [figures[0].axes[0].title]:
            assert text.get_fontsize() >= plot.MIN_FONT_PT


def test_book_figsize_caps_the_width_and_rejects_bad_sizes():
    assert plot.book_figsize(3) == (plot.MAX_WIDTH_IN, 3.0)
    assert plot.book_figsize(3, width=4) == (4.0, 3.0)
    assert plot.book_figsize(2.5, width=20) == (plot.MAX_WIDTH_IN, 2.5)
    for bad in (0, -1, float("nan"), "wide", None, True):
        with pytest.raises((ValueError, TypeError)):
            plot.book_figsize(bad)
        with pytest.raises((ValueError, TypeError)):
            plot.book_figsize(3, width=bad)

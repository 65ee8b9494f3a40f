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

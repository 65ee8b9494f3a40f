"""Generate notebooks/03_regularization.ipynb from the cell sources below.

Run:  .venv/bin/python notes/make_03.py
Then execute it at cpu scale so the stored outputs are real:
  flock /tmp/exec.lock python3 tools/book.py execute --scale cpu --offline notebooks/03_regularization.ipynb
"""
from nbtools import SETUP, Chapter

ch = Chapter()
md, code = ch.md, ch.code

# ----------------------------------------------------------------------------- opening
md(r"""
# 3. Regularization and generalization

A network with enough parameters can memorize its training set. What we want is a model
that does well on images it has **never seen**: one that *generalizes*. This chapter makes
overfitting happen on real data, then adds one regularizer at a time and watches the gap
between training and validation accuracy close. Every mechanism is built from scratch in
`handson.regularization` and checked against PyTorch. By the end you will be able to

* split data into **train / validation / test** parts without leakage, and explain why the
  test set is used exactly once;
* recognize **overfitting** in learning curves and in the **capacity U-curve**;
* compute **L1 and L2 penalties** and their gradients, explain why L1 gives exact zeros, and
  why **weight decay** equals an L2 penalty for SGD but not for Adam (hence **AdamW**);
* build **inverted dropout** and **batch normalization** that match `torch.nn` in training
  and evaluation mode;
* use **data augmentation**, **early stopping** and **label smoothing**, and compare
  regularizers fairly on one task with one budget.

**Prerequisites:** [Chapter 1](01_neural_networks.ipynb) (layers, cross-entropy, the training
loop `handson.train.fit`) and [Chapter 2](02_optimization.ipynb) (SGD, Adam, and its AdamW
section).

The rocket icon at the top of this page opens the notebook in Colab or JupyterLab; the page
itself shows the outputs of a real run.
""")
code(SETUP)
md(r"""
The stored outputs come from the `cpu` scale on a shared 2-core machine without a GPU: a
few thousand CIFAR-10 images and 15 epochs per experiment. At the `gpu` scale the same
code trains on 16,000 images for 30 epochs. Offline, `handson.data.load_cifar10` reads the
book's shipped copy of CIFAR-10, which is a **JPEG re-encoding** (quality 75, about 30 dB
from the canonical pixels), so accuracies are close to, but not strictly comparable with,
results on canonical CIFAR-10 ([Krizhevsky 2009](ref-krizhevsky2009)).
""")
code(r"""
import copy
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import sklearn
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from handson import data, metrics, plot, seed, train
from handson import regularization as reg

torch.set_printoptions(precision=4, sci_mode=False)
dev = device.pick()
if dev.type == "cpu":
    # these networks are small; on a busy CPU, threads waiting for each other cost more than they gain
    torch.set_num_threads(1)
""")

# ----------------------------------------------------------------------------- 1 splits
md(r"""
## 1. Train, validation and test: three splits, done right

We judge a model by its error on data it was not trained on. That needs three disjoint parts:

* the **training set** fits the parameters (weights) by gradient descent;
* the **validation set** chooses everything gradient descent does not: the architecture, the
  learning rate, the regularization strength, the epoch at which to stop;
* the **test set** gives one final, unbiased estimate of how the chosen model will do on new
  data. It is used **once**, at the very end.

A split is *done right* when it is

* **seeded**: the same seed gives the same split, so results can be reproduced;
* **stratified**: every part keeps the class proportions of the whole (with few examples per
  class, an unlucky random split can starve one class in the validation set);
* **leak-free**: no example, and no statistic computed from validation or test examples,
  reaches training.

We take a class-balanced sample of CIFAR-10's training images as our whole data set (its
official test images stay untouched) and split it 80 / 10 / 10:
""")
code(r"""
n_pool = scale.pick(smoke=500, cpu=5000, gpu=20_000)
pool = data.load_cifar10("train", limit=n_pool, seed=0)   # images: uint8 (n_pool, 3, 32, 32)
labels = pool.labels.numpy()                               # (n_pool,) class ids 0..9
print(f"{len(pool)} images, classes: {', '.join(pool.classes)}")
print(f"source: {pool.source}")
""")
md(r"""
The loader says where the images came from: the local JPEG copy. Stratifying is short
to write: shuffle each class separately with one seeded random generator and cut it at
the cumulative fractions, so that every part receives its share of every class.
""")
code(r"""
def stratified_split(labels, fractions=(0.8, 0.1, 0.1), seed=0):
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for c in np.unique(labels):                                   # one class at a time
        members = rng.permutation(np.flatnonzero(labels == c))    # this class's indices, shuffled
        cuts = np.round(np.cumsum(fractions) * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts[:-1])):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(p)) for p in parts)


train_idx, val_idx, test_idx = reg.train_val_test_split(labels, (0.8, 0.1, 0.1), seed=0)
same = all(np.array_equal(a, b) for a, b in zip(stratified_split(labels), (train_idx, val_idx, test_idx)))
everything = np.sort(np.concatenate([train_idx, val_idx, test_idx]))
print(f"sizes: train {len(train_idx)}, val {len(val_idx)}, test {len(test_idx)}")
print(f"disjoint and covering every image exactly once: {np.array_equal(everything, np.arange(len(labels)))}")
print(f"same split as handson.regularization.train_val_test_split: {same}")
""")
md(r"""
The three parts have the 80 / 10 / 10 sizes, every image lands in exactly one of them, and the
package function `reg.train_val_test_split` (which adds input checks and also accepts a plain
count `n` for an unstratified shuffle) gives exactly our split. Now compare the class counts of
the validation part with and without stratification:
""")
code(r"""
_, val_random, _ = reg.train_val_test_split(labels, seed=0, stratify=False)
counts_strat = np.bincount(labels[val_idx], minlength=10)
counts_random = np.bincount(labels[val_random], minlength=10)
print(f"{'class':>11s} " + " ".join(f"{c[:5]:>5s}" for c in pool.classes))
print(f"{'stratified':>11s} " + " ".join(f"{n:5d}" for n in counts_strat))
print(f"{'random':>11s} " + " ".join(f"{n:5d}" for n in counts_random))
""")
md(r"""
With stratification every class has the same number of validation images, like the balanced
pool itself. The plain random split of the same size gives some classes noticeably more
images than others. On a balanced set with thousands of images this only adds noise. On a
rare class (a disease seen in 2% of patients) it can leave almost no examples to validate on.

**Leakage through statistics.** We will normalize images channel by channel,
$x \mapsto (x-\mu_c)/\sigma_c$. The means $\mu_c$ and standard deviations $\sigma_c$ must
come from the **training part only**, like every other fitted quantity: vocabularies,
feature scalers, feature selection, imputation values.
""")
code(r"""
def channel_mean_std(images):
    # images: uint8 (N, 3, H, W) -> per-channel mean and (population) std on the [0, 1] scale
    x = images.float() / 255
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)


mean, std = channel_mean_std(pool.images[train_idx])
mean_all, std_all = channel_mean_std(pool.images)
print("train-only mean", mean, "std", std)
print(f"using all images instead would shift them by up to {(mean - mean_all).abs().max():.4f} "
      f"and {(std - std_all).abs().max():.4f}")
""")
md(r"""
Here the shift is tiny, because the pool is a random sample of one distribution. The rule
still matters. A scaler fitted on all the data, or features selected by how well they
separate the classes on all the data, lets the validation and test sets influence training.
Such leakage can be large, and it always flatters the model.

:::{admonition} Common mistake
:class: warning
Preprocessing *before* splitting: `X = StandardScaler().fit_transform(X)` followed by
`train_test_split(X, y)`, or choosing the 20 "best" features by their correlation with
the labels on the whole data set. Both let validation and test examples shape the
training pipeline, so the reported accuracy is optimistic. On random labels, selecting
features on all the data can produce a classifier that looks far better than chance.
Split first. Then fit every transformation on the training part and *apply* it
unchanged to the other parts. (Near-duplicate examples that land in two different parts
are the other classic leak.)
:::

**Why the test set is touched once.** Every time we look at test accuracy and change
something in response, the test set becomes part of model selection. Its accuracy then
becomes an optimistic estimate. Here is the extreme case. Two hundred "models" that guess
a class at random (true accuracy exactly 10%) are scored on our test images, and we keep
the best one:
""")
code(r"""
rng = np.random.default_rng(0)
guesses = rng.integers(0, 10, size=(200, len(test_idx)))        # 200 random guessers
test_scores = (guesses == labels[test_idx]).mean(axis=1)         # (200,) test accuracies
best = test_scores.argmax()
fresh = (rng.integers(0, 10, size=len(val_idx)) == labels[val_idx]).mean()
print(f"true accuracy of every guesser: 10.0% | best test score among 200: {test_scores[best]:.1%}")
print(f"the 'winner' on images it was not selected on: {fresh:.1%}")
""")
md(r"""
The winner's test score is well above 10%, purely by luck (with a few hundred test images the
spread of the 200 scores is a couple of percentage points). On other images it is back near
chance level. Tuning real models against the test set does the same thing, only less visibly. So all
tuning happens on the validation set, and the test set is evaluated once, at the end of this
chapter.

## 2. Overfitting made visible

### Capacity: the U-curve

A model's **capacity** is how complex a function it can fit. More capacity lowers the training
error, always. The validation error first falls (the model can express the real pattern) and
then rises (it starts fitting the noise of the particular training examples): a **U-curve**.
The cleanest knob is the degree $d$ of a polynomial. We fit disease progression one year after
baseline, $y$, from the body-mass index of 442 diabetes patients
([Efron et al. 2004](ref-efron2004); shipped with scikit-learn). The model is

$$
\hat y = \sum_{k=0}^{d} w_k z^k, \qquad z = \frac{\text{bmi} - \mu}{\sigma},
$$

fitted by least squares on only 10% of the patients, with $\mu,\sigma$ from those patients:
""")
code(r"""
X_dia, y_dia = load_diabetes(return_X_y=True, scaled=False)
bmi = X_dia[:, 2]                                                 # body-mass index, (442,)
tr_d, va_d, _ = reg.train_val_test_split(len(y_dia), (0.1, 0.45, 0.45), seed=0)   # n: plain shuffle
mu_d, sd_d = bmi[tr_d].mean(), bmi[tr_d].std()


def design(x, degree):
    return np.vander((x - mu_d) / sd_d, degree + 1, increasing=True)   # columns z^0 .. z^degree


degrees = list(range(13))
fits, train_mse, val_mse = {}, [], []
for d in degrees:
    w, *_ = np.linalg.lstsq(design(bmi[tr_d], d), y_dia[tr_d], rcond=None)
    fits[d] = w
    train_mse.append(np.mean((design(bmi[tr_d], d) @ w - y_dia[tr_d]) ** 2))
    val_mse.append(np.mean((design(bmi[va_d], d) @ w - y_dia[va_d]) ** 2))
ref = np.polynomial.polynomial.polyfit((bmi[tr_d] - mu_d) / sd_d, y_dia[tr_d], 3)
print(f"{len(tr_d)} training patients, {len(va_d)} validation patients")
print(f"degree-3 least squares vs numpy polyfit: max abs difference {np.abs(fits[3] - ref).max():.1e}")
print(f"best validation degree: {degrees[int(np.argmin(val_mse))]}")
""")
md(r"""
Our least-squares fit agrees with NumPy's polynomial fit to rounding error. Now the curves:
""")
code(r"""
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(degrees, train_mse, "o-", label="training MSE")
axes[0].plot(degrees, val_mse, "o-", label="validation MSE")
axes[0].set(xlabel="polynomial degree (capacity)", ylabel="mean squared error", yscale="log")
axes[0].legend()
axes[0].grid(alpha=0.3)
grid_x = np.linspace(bmi.min(), bmi.max(), 300)
axes[1].scatter(bmi[va_d], y_dia[va_d], s=6, color="lightgray", label="validation patients")
axes[1].scatter(bmi[tr_d], y_dia[tr_d], s=14, color="black", label="training patients")
for d, color in ((1, "C0"), (3, "C2"), (10, "C3")):
    axes[1].plot(grid_x, design(grid_x, d) @ fits[d], color=color, label=f"degree {d}")
axes[1].set(xlabel="body-mass index", ylabel="disease progression", ylim=(0, 400))
axes[1].legend(fontsize=8)
fig.tight_layout()
""")
md(r"""
Left: the training error only goes down as the degree grows, while the validation error
(log scale) has its minimum at a low degree and then climbs by orders of magnitude. Right:
the degree-10 curve swings wildly between and beyond the few training points, which it fits
better than the straight line does. That is overfitting: lower training error, much higher
error on new patients.

### Overfitting on CIFAR-10

Now a convolutional network on our few thousand CIFAR-10 images. It has two 3×3 convolution
layers with max pooling, then two dense layers (the CNN chapter takes these apart). The
`reg.Dropout` layers do nothing at `p_drop=0`; Section 5 builds them. Pixels are normalized
with the training statistics from above. Every run below starts from the same seed and sees
the training images in the same order, and we train with AdamW
([Loshchilov & Hutter 2019](ref-loshchilov2019)) at learning rate $10^{-3}$. With
`weight_decay=0` (the baseline), AdamW is exactly Adam.
""")
code(r"""
num_epochs = scale.pick(smoke=2, cpu=15, gpu=30)
width = scale.pick(smoke=8, cpu=16, gpu=32)       # channels of the first convolution
batch_size, lr = 64, 1e-3
normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean.tolist(), std.tolist())])


def loader(indices, transform, shuffle):
    dataset = pool.subset(indices, transform=transform)      # items: (transform(uint8 image), label)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=torch.Generator().manual_seed(0))


def make_cnn(p_drop=0.0):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),              # (B, w, 16, 16)
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # (B, 2w, 8, 8)
        nn.Flatten(), reg.Dropout(p_drop),                                          # (B, 2w * 64)
        nn.Linear(2 * width * 64, 128), nn.ReLU(), reg.Dropout(p_drop),
        nn.Linear(128, 10))                                                         # (B, 10) logits


val_loader = loader(val_idx, normalize, shuffle=False)
train_eval_loader = loader(train_idx, normalize, shuffle=False)   # clean training images, for the table
loss_fn = nn.CrossEntropyLoss()
runs = {}


def run(name, p_drop=0.0, weight_decay=0.0, transform=normalize, early_stopping=None):
    seed.set_seed(0)
    model = make_cnn(p_drop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    callback = None if early_stopping is None else (
        lambda history, model: early_stopping.step(history["val_loss"][-1], model))
    history = train.fit(model, loader(train_idx, transform, shuffle=True), loss_fn, optimizer, num_epochs,
                        val_loader=val_loader, metrics={"accuracy": metrics.accuracy}, callback=callback)
    if early_stopping is not None:
        early_stopping.restore(model)          # the best epoch's weights, also if no stop happened
    scores = {part: train.evaluate(model, part_loader, loss_fn, metrics={"accuracy": metrics.accuracy})
              for part, part_loader in (("train", train_eval_loader), ("val", val_loader))}
    runs[name] = {"history": history, "model": model, "train_acc": scores["train"]["accuracy"],
                  "val_acc": scores["val"]["accuracy"], "val_loss": scores["val"]["loss"]}
    print(f"{name}: {len(history['epoch'])} epochs in {history['time_s'][-1]:.0f} s | train accuracy "
          f"{runs[name]['train_acc']:.3f}, val accuracy {runs[name]['val_acc']:.3f}")
    return runs[name]


n_params = sum(p.numel() for p in make_cnn().parameters())
print(f"{n_params:,} parameters for {len(train_idx):,} training images")
baseline = run("baseline")
""")
md(r"""
The network has far more parameters than there are training images, and it shows. Training
accuracy, measured at the end on the clean training images, is far above validation
accuracy. The curves show how the gap opens:
""")


def compare_curves_cell(names, title):
    return f"""
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for i, name in enumerate({names!r}):
    h = runs[name]["history"]
    axes[0].plot(h["epoch"], h["train_loss"], "--", color=f"C{{i}}", label=f"{{name}}: train")
    axes[0].plot(h["epoch"], h["val_loss"], "-o", ms=3, color=f"C{{i}}", label=f"{{name}}: val")
    axes[1].plot(h["epoch"], h["train_accuracy"], "--", color=f"C{{i}}", label=f"{{name}}: train")
    axes[1].plot(h["epoch"], h["val_accuracy"], "-o", ms=3, color=f"C{{i}}", label=f"{{name}}: val")
axes[0].set(xlabel="epoch", ylabel="cross-entropy")
axes[1].set(xlabel="epoch", ylabel="accuracy")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle({title!r})
fig.tight_layout()
"""


code(compare_curves_cell(["baseline"], "CNN on a small CIFAR-10 subset, no regularization"))
md(r"""
Dashed lines are training, solid lines validation. The training loss falls steadily, while the
validation loss reaches its minimum after a few epochs and then rises: from that point on
the network learns things about its training images that do not hold for other images.
(Training curves are measured *during* each epoch, while the weights still change.)
Validation accuracy barely improves after the first few epochs, and the gap between the two
accuracies grows epoch after epoch.
Every section below adds one regularizer and compares it with this baseline.

## 3. L1 and L2 penalties

The oldest regularizers add a penalty on the size of the weights $\mathbf{w}$ to the loss $J$:

$$
J_{\text{L1}} = J + \lambda \sum_i |w_i|, \qquad J_{\text{L2}} = J + \lambda \sum_i w_i^2,
$$

where $\lambda \ge 0$ sets the strength. A large weight must now pay for itself by lowering
$J$ by more than its penalty. Worked example: weights $\mathbf{w}=(1, 2, 3)$ and $\lambda = 0.1$.
""")
code(r"""
# NBVAL_CHECK_OUTPUT
w = torch.tensor([1.0, 2.0, 3.0])
lam = 0.1
print(f"by hand: L1 = 0.1 * (1 + 2 + 3) = {0.1 * 6:.1f},  L2 = 0.1 * (1 + 4 + 9) = {0.1 * 14:.1f}")
print(f"handson.regularization: l1_penalty = {reg.l1_penalty(w, lam).item():.4f}, "
      f"l2_penalty = {reg.l2_penalty(w, lam).item():.4f}")
""")
md(r"""
$L_1 = 0.6$ and $L_2 = 1.4$. The package functions are these two formulas: `reg.l1_penalty(params, lam)`
returns `lam * sum(p.abs().sum() for p in params)`, `reg.l2_penalty` the same with `p.pow(2)`.
Both accept one tensor, a list of tensors, `model.parameters()` or a whole module, and return a
differentiable scalar that you add to the loss.

:::{admonition} Common mistake
:class: warning
Widely copied material gives $L_2 = 1.6$ for exactly this example. That is wrong: the squares
are $1 + 4 + 9 = 14$, so $L_2 = 0.1 \cdot 14 = 1.4$. A related trap is the factor $\tfrac12$.
Many texts write the penalty as $\tfrac{\lambda}{2}\sum_i w_i^2$ (here $0.7$), which makes its
gradient $\lambda w_i$. This book uses $\lambda\sum_i w_i^2$ (gradient $2\lambda w_i$), and
`reg.l2_penalty(w, lam, half=True)` gives the other convention. Always check which one a
`weight_decay` or `alpha` argument means before copying a value.
:::

### Gradients

$$
\frac{\partial}{\partial w_i}\,\lambda\sum_j |w_j| = \lambda\,\operatorname{sign}(w_i), \qquad
\frac{\partial}{\partial w_i}\,\lambda\sum_j w_j^2 = 2\lambda\, w_i .
$$

($|w|$ has no derivative at $0$; PyTorch uses $\operatorname{sign}(0)=0$.) We check both against
autograd and against float64 central finite differences:
""")
code(r"""
seed.set_seed(0)
w = torch.randn(8, dtype=torch.float64, requires_grad=True)
lam = 0.1
(g1,) = torch.autograd.grad(reg.l1_penalty(w, lam), w)
(g2,) = torch.autograd.grad(reg.l2_penalty(w, lam), w)
eps = 1e-6
fd1, fd2 = torch.zeros(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
with torch.no_grad():
    for i in range(8):
        e = torch.zeros(8, dtype=torch.float64)
        e[i] = eps
        fd1[i] = (reg.l1_penalty(w + e, lam) - reg.l1_penalty(w - e, lam)) / (2 * eps)
        fd2[i] = (reg.l2_penalty(w + e, lam) - reg.l2_penalty(w - e, lam)) / (2 * eps)
print(f"L1: lam * sign(w) vs autograd {(lam * w.detach().sign() - g1).abs().max():.1e}, "
      f"vs finite differences {(lam * w.detach().sign() - fd1).abs().max():.1e}")
print(f"L2: 2 * lam * w   vs autograd {(2 * lam * w.detach() - g2).abs().max():.1e}, "
      f"vs finite differences {(2 * lam * w.detach() - fd2).abs().max():.1e}")
""")
md(r"""
All differences are at rounding level. The formulas already explain the different behaviour
of the two penalties. The L2 pull $2\lambda w_i$ weakens as $w_i$ shrinks, so L2 makes weights
small but almost never exactly zero. The L1 pull has the same size $\lambda$ however small the
weight is, so it pushes small weights all the way to zero.

### Why L1 gives exact zeros

Solvers for L1 problems take a gradient step on $J$ and then apply the penalty exactly,
through its **proximal step**: the $u$ that minimizes $\tfrac12(u-v)^2 + t|u|$ for the value
$v$ after the gradient step and $t = \eta\lambda$ (step size times strength). Its solution is
**soft-thresholding**,

$$
u^\star = \operatorname{sign}(v)\,\max(|v| - t,\ 0),
$$

which returns *exactly* $0$ whenever $|v| \le t$. The L2 version, $\min_u \tfrac12(u-v)^2 + t u^2$,
gives $u^\star = v/(1+2t)$: it shrinks, but it is never $0$ unless $v$ is. We check the
soft-thresholding formula against PyTorch's `F.softshrink` and against a brute-force minimization
over a fine grid:
""")
code(r"""
v = torch.linspace(-1, 1, 9, dtype=torch.float64)
t = 0.3
soft = torch.sign(v) * torch.clamp(v.abs() - t, min=0)
grid = torch.linspace(-2, 2, 400_001, dtype=torch.float64)                    # spacing 1e-5
objective = 0.5 * (grid[None, :] - v[:, None]) ** 2 + t * grid.abs()[None, :]  # (9, grid)
brute = grid[objective.argmin(dim=1)]
print("v        :", v)
print("soft(v)  :", soft)
print(f"vs F.softshrink: max abs difference {(soft - F.softshrink(v, t)).abs().max():.1e}; "
      f"vs grid search: {(soft - brute).abs().max():.1e} (grid spacing 1e-5)")
""")
md(r"""
Every $|v| \le 0.3$ maps to exactly zero, and the larger values move $0.3$ closer to zero. The
formula matches PyTorch exactly and the brute-force minimum to the grid spacing.

### Regularization paths on real data

The Wisconsin breast-cancer data ([Street et al. 1993](ref-street1993), shipped with scikit-learn)
has 30 features of cell nuclei per patient and the diagnosis. We fit a logistic regression,
which is one linear layer with a sigmoid, and minimize the mean cross-entropy plus
$\lambda\sum_i|w_i|$ or $\lambda\sum_i w_i^2$ (the bias is not penalized) for a range of
$\lambda$ (scikit-learn's L1 solver, liblinear, does penalize the bias a little; that does not
change the picture). Each curve of a **regularization path** follows one weight as $\lambda$ grows.
scikit-learn minimizes $C\sum_n \ell_n + \sum_i|w_i|$ or $C\sum_n\ell_n + \tfrac12\sum_i w_i^2$,
so dividing by $Cn$ gives our $\lambda = 1/(Cn)$ for L1 and $\lambda = 1/(2Cn)$ for L2. First
we check this conversion: we minimize our own objective with `reg.l2_penalty` in PyTorch
(L-BFGS, float64) and compare the result with scikit-learn's solution.
""")
code(r"""
X_bc, y_bc = load_breast_cancer(return_X_y=True)                 # (569, 30), (569,)
tr_b, va_b, te_b = reg.train_val_test_split(y_bc, seed=0)
Z = (X_bc - X_bc[tr_b].mean(axis=0)) / X_bc[tr_b].std(axis=0)    # standardized with train statistics
NEW_SKLEARN = tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)


def sklearn_logistic(lam, kind):
    # scikit-learn's logistic regression for: mean cross-entropy + lam * (sum |w| or sum w^2)
    n = len(tr_b)
    C = 1 / (lam * n) if kind == "l1" else 1 / (2 * lam * n)
    which = {"l1_ratio": float(kind == "l1")} if NEW_SKLEARN else {"penalty": kind}   # API changed in 1.8
    model = LogisticRegression(C=C, solver="liblinear" if kind == "l1" else "lbfgs", max_iter=20_000,
                               tol=1e-8, **which)
    return model.fit(Z[tr_b], y_bc[tr_b])


lam = 0.01
sk = sklearn_logistic(lam, "l2")
Zt, yt = torch.tensor(Z[tr_b]), torch.tensor(y_bc[tr_b], dtype=torch.float64)
w = torch.zeros(30, dtype=torch.float64, requires_grad=True)
b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
lbfgs = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                          line_search_fn="strong_wolfe")


def closure():
    lbfgs.zero_grad()
    objective = F.binary_cross_entropy_with_logits(Zt @ w + b, yt) + reg.l2_penalty(w, lam)
    objective.backward()
    return objective


lbfgs.step(closure)
print(f"lambda = {lam}: our objective (PyTorch) vs scikit-learn, weights: max abs difference "
      f"{np.abs(w.detach().numpy() - sk.coef_[0]).max():.1e}, bias: {abs(b.item() - sk.intercept_[0]):.1e}")
""")
md(r"""
The two solvers land on the same weights to about $10^{-7}$, so the conversion is right and
`reg.l2_penalty` is the penalty scikit-learn uses. Now the paths, from weak to strong
regularization (this takes a few seconds):
""")
code(r"""
lams = np.logspace(-3.5, -0.5, 16)
paths = {"l1": [], "l2": []}
val_acc_path = {"l1": [], "l2": []}
for kind in ("l1", "l2"):
    for lam in tqdm(lams, desc=f"{kind} path", leave=False):
        model = sklearn_logistic(lam, kind)
        paths[kind].append(model.coef_[0].copy())
        val_acc_path[kind].append(model.score(Z[va_b], y_bc[va_b]))
paths = {k: np.array(v) for k, v in paths.items()}                 # (len(lams), 30) each

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for ax, kind in zip(axes, ("l1", "l2")):
    ax.plot(lams, paths[kind], lw=1)
    ax.set(xscale="log", xlabel=r"$\lambda$", ylabel="weight", title=f"{kind.upper()} path: 30 weights")
    ax.axhline(0, color="black", lw=0.5)
    ax.grid(alpha=0.3)
for kind in ("l1", "l2"):
    axes[2].plot(lams, (paths[kind] != 0).sum(axis=1), "o-", ms=3, label=f"{kind.upper()}: nonzero weights")
axes[2].set(xscale="log", xlabel=r"$\lambda$", ylabel="count of weights $\\neq 0$")
axes[2].legend()
axes[2].grid(alpha=0.3)
fig.tight_layout()
for i in (0, 5, 10, 15):
    print(f"lambda {lams[i]:.4f}: L1 keeps {np.count_nonzero(paths['l1'][i]):2d}/30 weights "
          f"(val acc {val_acc_path['l1'][i]:.3f}), L2 keeps {np.count_nonzero(paths['l2'][i]):2d}/30 "
          f"(val acc {val_acc_path['l2'][i]:.3f})")
""")
md(r"""
Left: as $\lambda$ grows, the L1 weights hit zero one after another and **stay exactly at
zero**, so L1 selects features (this is the *lasso*, [Tibshirani 1996](ref-tibshirani1996)).
Middle: the L2 weights shrink smoothly towards zero together, but none reaches it. Right: the
number of nonzero weights falls steadily for L1 and stays at 30 for L2. The printed
validation accuracies show that a handful of features classify these tumours about as well as
all 30. Only at the strongest L1 penalty, with very few weights left, does accuracy start to
suffer. The same difference in a histogram of the weights at one $\lambda$:
""")
code(r"""
i = 8
fig, ax = plt.subplots(figsize=(6.5, 3.2))
bins = np.linspace(min(paths["l1"][i].min(), paths["l2"][i].min()), max(paths["l1"][i].max(), paths["l2"][i].max()), 31)
ax.hist(paths["l2"][i], bins=bins, alpha=0.6, label=f"L2 ({np.count_nonzero(paths['l2'][i])} nonzero)")
ax.hist(paths["l1"][i], bins=bins, alpha=0.6, label=f"L1 ({np.count_nonzero(paths['l1'][i])} nonzero)")
ax.set(xlabel="weight value", ylabel="number of weights", title=rf"logistic regression weights, $\lambda$ = {lams[i]:.4f}")
ax.legend()
fig.tight_layout()
""")
md(r"""
At the same $\lambda$, L1 puts most weights in one spike at exactly zero and leaves a few large
ones. L2 spreads the weights over a range of small values.

## 4. Weight decay vs L2: the same for SGD, not for Adam

**Weight decay** shrinks every weight by a fixed fraction each step. For plain SGD with learning
rate $\eta$ and the L2 penalty, the update is

$$
w \leftarrow w - \eta\big(\nabla J + 2\lambda w\big) = (1 - 2\eta\lambda)\,w - \eta\nabla J ,
$$

which decays the weight by the factor $1-2\eta\lambda$ before the gradient step, so here L2 and
weight decay are the same thing. PyTorch's `weight_decay=wd` adds $\text{wd}\cdot w$ to the
gradient, so `SGD(weight_decay=wd)` equals our penalty with $\lambda = \text{wd}/2$. Adam
([Kingma & Ba 2015](ref-kingma2015)) divides the gradient by $\sqrt{\hat v}+\epsilon$, a running
estimate of its size per weight. With an L2 penalty, the decay term $2\lambda w$ goes through that
division as well. Weights with large gradients ($\hat v$ large) are then barely decayed, and
weights with small gradients are decayed a lot. **AdamW** ([Loshchilov & Hutter 2019](ref-loshchilov2019))
*decouples* the decay from the gradient. With $\hat m$ Adam's bias-corrected first moment,

$$
w \leftarrow w - \eta\left(\frac{\hat m}{\sqrt{\hat v} + \epsilon} + \text{wd}\cdot w\right).
$$

(See the AdamW section of [Chapter 2](02_optimization.ipynb) for Adam itself.) We train the
breast-cancer logistic regression for 200 full-batch steps with each optimizer. This small
loop is the point of the demonstration, so we write it out:
""")
code(r"""
def train_logistic(make_optimizer, penalty_lam=0.0, steps=200):
    torch.manual_seed(0)
    model = nn.Linear(30, 1).double()
    optimizer = make_optimizer(model.parameters())
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(model(Zt).squeeze(1), yt)
        if penalty_lam:
            loss = loss + reg.l2_penalty(model.parameters(), penalty_lam)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


wd, eta = 0.1, 0.05
sgd_decay, _ = train_logistic(lambda p: torch.optim.SGD(p, lr=eta, weight_decay=wd))
sgd_l2, _ = train_logistic(lambda p: torch.optim.SGD(p, lr=eta), penalty_lam=wd / 2)
adam_decay, _ = train_logistic(lambda p: torch.optim.Adam(p, lr=eta, weight_decay=wd))
adam_l2, adam_opt = train_logistic(lambda p: torch.optim.Adam(p, lr=eta), penalty_lam=wd / 2)
adamw, _ = train_logistic(lambda p: torch.optim.AdamW(p, lr=eta, weight_decay=wd))
print(f"SGD(weight_decay={wd}) vs SGD + l2_penalty(lam={wd / 2}):   max abs difference "
      f"{(flat(sgd_decay) - flat(sgd_l2)).abs().max():.1e}")
print(f"Adam(weight_decay={wd}) vs Adam + l2_penalty(lam={wd / 2}): max abs difference "
      f"{(flat(adam_decay) - flat(adam_l2)).abs().max():.1e}")
print(f"AdamW(weight_decay={wd}) vs Adam + l2_penalty:             max abs difference "
      f"{(flat(adamw) - flat(adam_l2)).abs().max():.2f}")
print(f"weight norms: Adam + L2 {flat(adam_l2).norm():.2f}, AdamW {flat(adamw).norm():.2f}")
""")
md(r"""
The first two lines show that `weight_decay` in PyTorch's `SGD` and `Adam` is an L2 penalty
(with $\lambda=\text{wd}/2$): the trajectories agree to float64 rounding after 200 steps. The
third line shows that AdamW with the same coefficient ends up somewhere else entirely. Why the
weight norms differ becomes clear once we look at what Adam + L2 does to the decay term. It
gets multiplied, per weight, by $1/(\sqrt{\hat v}+\epsilon)$:
""")
code(r"""
state = adam_opt.state[adam_opt.param_groups[0]["params"][0]]          # the weight matrix's state
v_hat = state["exp_avg_sq"] / (1 - 0.999 ** state["step"])
multiplier = 1 / (v_hat.sqrt() + 1e-8)                                 # (1, 30)
print(f"Adam + L2 scales the decay of the 30 weights by 1/(sqrt(v_hat) + eps) between "
      f"{multiplier.min():.0f} and {multiplier.max():.0f}; AdamW scales it by 1 for every weight")
""")
md(r"""
Under Adam + L2 the strength of the decay varies by more than an order of magnitude from one
weight to another, set by accidents of gradient size. Here the gradients are small, so the
decay is amplified and those weights end up smaller. AdamW applies the one decay rate you
asked for to every weight. Finally we check AdamW's update rule itself, for three steps written
out by hand against `torch.optim.AdamW`:
""")
code(r"""
torch.manual_seed(1)
p0 = torch.randn(6, dtype=torch.float64)
param = p0.clone().requires_grad_(True)
opt = torch.optim.AdamW([param], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.5)
mine, m, v = p0.clone(), torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
for step in range(1, 4):
    g = torch.randn(6, dtype=torch.float64)
    param.grad = g.clone()
    opt.step()
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g ** 2
    m_hat, v_hat = m / (1 - 0.9 ** step), v / (1 - 0.999 ** step)
    mine = mine - 0.1 * (m_hat / (v_hat.sqrt() + 1e-8) + 0.5 * mine)   # decay uses the old weights
print(f"AdamW by hand vs torch.optim.AdamW after 3 steps: max abs difference {(mine - param.detach()).abs().max():.1e}")
""")
md(r"""
The hand-written rule matches PyTorch to rounding.

:::{admonition} Common mistake
:class: warning
`torch.optim.Adam(params, weight_decay=0.01)` is **not** AdamW: it adds $0.01\,w$ to the gradient,
an L2 penalty that Adam's per-weight scaling then distorts. Use `torch.optim.AdamW` for
decoupled weight decay. Also, AdamW's `weight_decay` is multiplied by the learning rate, so
values are not interchangeable with `Adam`'s. PyTorch's AdamW default is $0.01$; language
model recipes often use $0.1$.
:::

On CIFAR-10 we now add decoupled weight decay to the baseline. With learning rate
$\eta=10^{-3}$, each step multiplies every weight by $(1-\eta\,\text{wd})$ before the Adam step:
""")
code(r"""
weight_decay = 1.0
steps = num_epochs * math.ceil(len(train_idx) / batch_size)
print(f"{steps} steps: decay alone would shrink a weight by (1 - lr * wd)^steps = "
      f"{(1 - lr * weight_decay) ** steps:.2f}")
run("weight decay", weight_decay=weight_decay)
""")
md(r"""
Over the whole run, decay alone would shrink an unused weight to the printed fraction of its
size. Weights that help the loss get pushed back up by their gradients. This `weight_decay`
is far larger than the usual $0.01$–$0.1$, because our runs are short. The curves, against
the baseline:
""")
code(compare_curves_cell(["baseline", "weight decay"], "AdamW weight decay vs baseline"))
md(r"""
Weight decay slows the memorization of the training set: its training curves sit below the
baseline's, and its validation loss rises less at the end. The effect on validation accuracy
after this short budget is small. The comparison table in Section 9 puts numbers on it.

## 5. Dropout

**Dropout** ([Srivastava et al. 2014](ref-srivastava2014)) sets each activation to zero with
probability $p$ during training, a different random choice for every example and every step.
The network cannot rely on any single unit, and in effect trains a large family of thinned
networks that share their weights. In the **inverted** form used everywhere today, the kept
activations are scaled up during training so that nothing needs to change at evaluation time:

$$
y_i = \frac{m_i\,x_i}{1-p}, \quad m_i \sim \text{Bernoulli}(1-p)\ \text{(training)}, \qquad
y_i = x_i \ \text{(evaluation)}.
$$

Since $\mathbb{E}[m_i] = 1-p$, the expectation is preserved: $\mathbb{E}[y_i] = x_i$. The
variance, $x_i^2\,p/(1-p)$, is the noise that regularizes. From scratch:
""")
code(r"""
def inverted_dropout(x, p, training=True):
    if not training or p == 0:
        return x                                        # evaluation: the identity
    keep = (torch.rand_like(x) >= p).to(x.dtype)        # 1 with probability 1 - p
    return x * keep / (1 - p)


x = pool.images[0].flatten().float() / 255               # one real image as an activation vector
x = x[x > 0]                                             # (D,): drop black pixels, so zeros mean "dropped"
p = 0.4
draws = 4000
batch = x.repeat(draws, 1)                               # (draws, D)
seed.set_seed(0)
samples = inverted_dropout(batch, p)                     # (draws, D): independent masks
kept = samples != 0
std_error = x * math.sqrt(p / (1 - p) / draws)          # (D,) standard error of the mean of the draws
deviation = samples.mean(dim=0) - x                      # (D,)
print(f"share of zeros {(~kept).float().mean():.4f} (p = {p}); kept values / x: max abs difference "
      f"{(samples[kept] / batch[kept] - 1 / (1 - p)).abs().max():.1e} from 1/(1-p)")
print(f"mean of {draws} draws vs x, over {len(x)} entries: average difference {deviation.mean():+.1e}, "
      f"largest {deviation.abs().max():.4f} = {(deviation / std_error).abs().max():.1f} standard errors")
""")
md(r"""
About 40% of the entries are zero, and every kept value is exactly $x_i/(1-p)$. Averaged over
4,000 random masks, the output matches the input: the average difference is essentially zero
(no bias), and even the largest deviation among the thousands of entries is only a few Monte
Carlo standard errors (the largest of a few thousand normal deviations is typically 3.5–4). The
expectation is preserved. The package class `reg.Dropout(p)` is this function as an
`nn.Module`: it reads the module's `training` flag, so `model.eval()` switches it off. We
compare it with `torch.nn.Dropout`. In training mode the masks are random, so we compare the
distributions; in evaluation mode the outputs must be identical:
""")
code(r"""
ours, theirs = reg.Dropout(p), nn.Dropout(p)
y_ours, y_theirs = ours(batch), theirs(batch)
for name, y in (("handson Dropout", y_ours), ("torch nn.Dropout", y_theirs)):
    kept = y != 0
    scale_err = (y[kept] - batch[kept] / (1 - p)).abs().max()
    print(f"{name:16s} train mode: zeros {(~kept).float().mean():.4f}, mean {y.mean():.4f} "
          f"(input mean {x.mean():.4f}), std {y.std():.4f}, kept = x/(1-p) to {scale_err:.1e}")
ours.eval(), theirs.eval()
print(f"eval mode: outputs identical {torch.equal(ours(batch), theirs(batch))}, "
      f"max abs difference to the input {(ours(batch) - batch).abs().max():.1e}")
""")
md(r"""
Both layers zero the same share of entries, scale the survivors by the same $1/(1-p)$, and give
the same mean and spread. In evaluation mode both are exactly the identity.

:::{admonition} Common mistake
:class: warning
Evaluating with dropout still on. Forgetting `model.eval()` before validation or inference
makes predictions random and systematically worse. The book's `train.evaluate` and
`train.predict` switch to eval mode for you; a hand-written loop must do it itself (and call
`model.train()` again afterwards). The older, *non-inverted* dropout instead multiplies by
$1-p$ at test time; mixing the two conventions scales every activation wrongly by
$1-p$ or $1/(1-p)$.
:::

Now the CNN with dropout $p=0.3$ after the flattened features and after the hidden dense layer:
""")
code(r"""
p_drop = 0.3
run("dropout", p_drop=p_drop)
""")
code(compare_curves_cell(["baseline", "dropout"], "dropout p = 0.3 vs baseline"))
md(r"""
With dropout, the training curves rise much more slowly, and the validation loss stays below the
baseline's instead of climbing. The two dropout curves stay closer together, but part of that is
an illusion: the training curves are measured with dropout switched on, which handicaps the
network. The table in Section 9 measures training accuracy in evaluation mode, which is the
fair comparison.

### The dropout knob

How much dropout? Dropout was first used on fully connected networks, so we turn the knob on
one: a multilayer perceptron (two hidden layers of 256 ReLU units, as in
[Chapter 1](01_neural_networks.ipynb)) on the same CIFAR-10 images, for four values of $p$
(this takes a minute at the `cpu` scale):
""")
code(r"""
dropout_ps = (0.0, 0.25, 0.5, 0.75)
mlp_histories = {}
mlp_train_loader = loader(train_idx, normalize, shuffle=True)
for p_mlp in tqdm(dropout_ps, desc="dropout sweep"):
    seed.set_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 256), nn.ReLU(), reg.Dropout(p_mlp),
                        nn.Linear(256, 256), nn.ReLU(), reg.Dropout(p_mlp), nn.Linear(256, 10))
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=lr, weight_decay=0.0)
    mlp_histories[p_mlp] = train.fit(mlp, mlp_train_loader, loss_fn, optimizer, num_epochs, val_loader=val_loader,
                                     metrics={"accuracy": metrics.accuracy}, progress=False)
    h = mlp_histories[p_mlp]
    print(f"p = {p_mlp:.2f}: final train accuracy {h['train_accuracy'][-1]:.3f}, val accuracy "
          f"{h['val_accuracy'][-1]:.3f}, val loss {h['val_loss'][-1]:.3f} (lowest {min(h['val_loss']):.3f})")
""")
md(r"""
Move the slider to see the curves for each $p$ (in the live notebook). The static figure
below shows all four:
""")
code(r"""
def show_dropout(p):
    h = mlp_histories[p]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    axes[0].plot(h["epoch"], h["train_loss"], "--", label="train")
    axes[0].plot(h["epoch"], h["val_loss"], "-o", ms=3, label="val")
    axes[1].plot(h["epoch"], h["train_accuracy"], "--", label="train")
    axes[1].plot(h["epoch"], h["val_accuracy"], "-o", ms=3, label="val")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", ylim=(0.5, 2.6))
    axes[1].set(xlabel="epoch", ylabel="accuracy", ylim=(0.1, 1.0))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"MLP with dropout p = {p}")
    fig.tight_layout()
    plt.show()


widgets.interactive(show_dropout, p=widgets.SelectionSlider(options=dropout_ps, value=0.5, description="dropout p"))
""")
code(r"""
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for i, (p_mlp, h) in enumerate(mlp_histories.items()):
    gap = np.array(h["train_accuracy"]) - np.array(h["val_accuracy"])
    axes[0].plot(h["epoch"], h["val_loss"], "-o", ms=3, color=f"C{i}", label=f"p = {p_mlp}")
    axes[1].plot(h["epoch"], gap, "-o", ms=3, color=f"C{i}", label=f"p = {p_mlp}")
axes[0].set(xlabel="epoch", ylabel="validation cross-entropy")
axes[1].set(xlabel="epoch", ylabel="train accuracy - val accuracy")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("The dropout knob on an MLP: validation loss and generalization gap")
fig.tight_layout()
""")
md(r"""
Without dropout ($p=0$), the MLP's validation loss turns upward after a few epochs and the gap
between training and validation accuracy grows steadily. Larger $p$ lowers the gap and keeps
the validation loss from climbing. Too much dropout ($p=0.75$) leaves the network unable to fit
even the training data in this budget: it **underfits**, and its validation accuracy suffers too.
In the stored run, $p=0.25$ has the best final validation accuracy and $p=0.5$ the lowest
validation loss. The best $p$ is a hyperparameter like any other, chosen on the validation set.

## 6. Batch normalization

**Batch normalization** ([Ioffe & Szegedy 2015](ref-ioffe2015)) standardizes each feature
(channel) $c$ over the current minibatch $\mathcal{B}$, then rescales it with learned
parameters $\gamma_c, \beta_c$:

$$
\mu_c = \frac{1}{m}\sum_{i\in\mathcal{B}} x_{ic}, \quad
\sigma_c^2 = \frac{1}{m}\sum_{i\in\mathcal{B}} (x_{ic}-\mu_c)^2, \quad
\hat x_{ic} = \frac{x_{ic}-\mu_c}{\sqrt{\sigma_c^2+\epsilon}}, \quad
y_{ic} = \gamma_c \hat x_{ic} + \beta_c ,
$$

with $m$ values per channel in the batch (batch size × positions for images). It makes deep
networks much easier to optimize. The batch statistics also add noise, a mild regularizer
of their own. At evaluation time there may be a single example, so BN keeps **running
averages** updated with momentum $\alpha$ (PyTorch's `momentum`, default $0.1$) during training,

$$
\bar\mu_c \leftarrow (1-\alpha)\,\bar\mu_c + \alpha\,\mu_c, \qquad
\bar\sigma_c^2 \leftarrow (1-\alpha)\,\bar\sigma_c^2 + \alpha\,\tfrac{m}{m-1}\,\sigma_c^2 ,
$$

and uses $\bar\mu_c, \bar\sigma_c^2$ in place of the batch statistics in evaluation mode. Note the
$\tfrac{m}{m-1}$: normalization uses the biased batch variance, while the running average stores the
unbiased one. The training-mode forward pass, from scratch, on a batch of 32 real
breast-cancer patients (30 features on very different scales):
""")
code(r"""
def batchnorm_train(x, gamma, beta, eps=1e-5):
    # x: (m, C) -> y: (m, C), plus the batch statistics (C,), (C,)
    mu = x.mean(dim=0)
    var = x.var(dim=0, unbiased=False)                      # biased: divide by m
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta, mu, var


xb = torch.tensor(X_bc[tr_b[:32]], dtype=torch.float32)     # (32, 30) raw features
gamma, beta = torch.rand(30) + 0.5, torch.randn(30)
y_mine, mu_b, var_b = batchnorm_train(xb, gamma, beta)
y_torch = F.batch_norm(xb, None, None, gamma, beta, training=True, eps=1e-5)
print(f"raw feature means range from {xb.mean(0).min():.3f} to {xb.mean(0).max():.1f}")
print(f"from-scratch BN vs F.batch_norm: max abs difference {(y_mine - y_torch).abs().max():.1e}")
""")
md(r"""
The raw feature means span more than five orders of magnitude, and after BN every one of them has mean
$\beta_c$ and spread $\gamma_c$. Our formula agrees with PyTorch's. The package classes
`reg.BatchNorm1d` and `reg.BatchNorm2d` add the running averages, eval mode, and the same
parameter and buffer names as `torch.nn`, so state dicts load both ways. We feed five training
batches through ours and through PyTorch's, then switch both to evaluation mode:
""")
code(r"""
ours, theirs = reg.BatchNorm1d(30), nn.BatchNorm1d(30)
theirs.load_state_dict(ours.state_dict())
out_diff = 0.0
for k in range(5):
    xk = torch.tensor(X_bc[tr_b[32 * k:32 * (k + 1)]], dtype=torch.float32)
    out_diff = max(out_diff, (ours(xk) - theirs(xk)).abs().max().item())
print(f"BatchNorm1d, 5 training batches: outputs {out_diff:.1e}, running_mean "
      f"{(ours.running_mean - theirs.running_mean).abs().max():.1e}, running_var (relative) "
      f"{((ours.running_var - theirs.running_var) / theirs.running_var).abs().max():.1e}")
ours.eval(), theirs.eval()
xe = torch.tensor(X_bc[va_b], dtype=torch.float32)
print(f"BatchNorm1d, eval mode on {len(va_b)} validation patients: max abs difference {(ours(xe) - theirs(xe)).abs().max():.1e}")

images = torch.stack([normalize(pool.images[i]) for i in train_idx[:64]])     # (64, 3, 32, 32)
ours2, theirs2 = reg.BatchNorm2d(3), nn.BatchNorm2d(3)
train_diff = (ours2(images) - theirs2(images)).abs().max()
stats_diff = max((ours2.running_mean - theirs2.running_mean).abs().max(), (ours2.running_var - theirs2.running_var).abs().max())
ours2.eval(), theirs2.eval()
print(f"BatchNorm2d on 64 CIFAR images: train {train_diff:.1e}, running stats {stats_diff:.1e}, "
      f"eval {(ours2(images) - theirs2(images)).abs().max():.1e}")
""")
md(r"""
Outputs, running statistics and evaluation-mode outputs all agree to float32 rounding, for
vectors (`BatchNorm1d`) and for image channels (`BatchNorm2d`, statistics over batch, height and
width). The running variance is compared relative to its size because some raw features have
variances in the hundreds of thousands. One consequence of training mode: an example's output
depends on the *other* examples in its batch.
""")
code(r"""
bn = nn.BatchNorm1d(30).train()
first = torch.tensor(X_bc[tr_b[:8]], dtype=torch.float32)
other = torch.cat([first[:1], torch.tensor(X_bc[tr_b[100:107]], dtype=torch.float32)])   # same patient 0, new batch mates
print(f"train mode, patient 0 in two different batches: outputs differ by up to {(bn(first)[0] - bn(other)[0]).abs().max():.2f}")
bn.eval()
print(f"eval mode: outputs differ by {(bn(first)[0] - bn(other)[0]).abs().max():.1e}")
""")
md(r"""
In training mode the same patient gets a different output when the rest of the batch changes.
That is the noise that regularizes, and the reason prediction must run in evaluation mode.

:::{admonition} Common mistake
:class: warning
Two frequent BN bugs. (1) Updating the running variance with the *biased* batch variance: with
batches of $m=32$ the stored variance is then too small by the factor $31/32$, and eval-mode
outputs no longer match PyTorch. (2) Predicting in training mode: outputs then depend on the
batch, and a batch of one example fails outright (`Expected more than 1 value per channel`).
Call `model.eval()`.
:::

## 7. Data augmentation

The best regularizer is more data. **Data augmentation** manufactures it: random,
label-preserving changes to each training image every time it is used. For CIFAR-10 the
classic pair is a **random crop with padding**, which pads the image by 4 pixels on each side and
cuts a random 32×32 window (a shift of up to 4 pixels), and a **random horizontal flip**. A
shifted or mirrored cat is still a cat. With `torchvision.transforms.v2` on `uint8` image
tensors:
""")
code(r"""
augment = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(p=0.5)])   # uint8 in, uint8 out
seed.set_seed(0)
shown = [train_idx[labels[train_idx] == c][0] for c in (1, 3, 6, 8)]      # one image each of 4 classes
examples = [pool.images[i] for i in shown]
grid, titles = [], []
for img, i in zip(examples, shown):
    grid.append(img)
    titles.append(pool.classes[labels[i]])
    for _ in range(7):
        grid.append(augment(img))
        titles.append("augmented")
plot.show_images(grid, titles=titles, ncols=8, scale=1.3);
""")
md(r"""
Each row starts with an original training image, followed by seven augmented versions. They
are shifted by a few pixels, sometimes mirrored, and show black borders where the window
reaches into the zero padding. The label stays the same. Is every augmented image really just
a window of the padded, possibly mirrored original? We check by brute force over all
$9\times9$ offsets and both orientations:
""")
code(r"""
def is_window_of(aug, img, pad=4):
    padded = F.pad(img, (pad, pad, pad, pad))                        # zeros, like RandomCrop(padding=4)
    for candidate in (padded, padded.flip(-1)):
        for i in range(2 * pad + 1):
            for j in range(2 * pad + 1):
                if torch.equal(candidate[:, i:i + 32, j:j + 32], aug):
                    return True
    return False


checks = [is_window_of(augment(img), img) for img in examples for _ in range(10)]
print(f"{sum(checks)} of {len(checks)} augmented images are exact windows of the zero-padded "
      f"(possibly mirrored) original")
""")
md(r"""
All of them are, so the transform does exactly what we described. For training, the augmentation
runs first, on `uint8` images, followed by the same normalization as before. Validation images
are never augmented.
""")
code(r"""
augment_train = v2.Compose([augment, normalize])
run("augmentation", transform=augment_train)
""")
code(compare_curves_cell(["baseline", "augmentation"], "random crop + flip vs baseline"))
md(r"""
With augmentation the network never sees exactly the same image twice, so it cannot memorize
them. Its training curves stay close to its validation curves, and its validation loss is
still near its lowest value at the last epoch. Of the single regularizers in this chapter it closes the gap the
most, and it adds no parameters at all.

## 8. Early stopping and label smoothing

### Early stopping

The baseline's validation loss had a minimum after a few epochs and got worse afterwards.
**Early stopping** keeps the weights from the best validation epoch and stops once the
validation metric has not improved for `patience` epochs in a row. (An improvement must beat
the best value so far by more than `min_delta`.) The logic fits in a few lines:
""")
code(r"""
class TinyEarlyStopping:
    def __init__(self, patience):
        self.patience, self.best, self.bad_epochs, self.best_state = patience, math.inf, 0, None

    def step(self, val_loss, model):                   # call once per epoch; True = stop
        if val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
            self.best_state = copy.deepcopy(model.state_dict())     # remember the best weights
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


patience = scale.pick(smoke=1, cpu=3, gpu=5)
curve = baseline["history"]["val_loss"]
tiny, package = TinyEarlyStopping(patience), reg.EarlyStopping(patience)
probe = nn.Linear(1, 1)                                # stands in for the model: only its weights are saved
decisions = []
for v in curve:
    decisions.append((tiny.step(v, probe), package.step(v, probe)))
    if decisions[-1][1]:
        break
print(f"baseline val losses: {np.round(curve, 3)}")
print(f"patience {patience}: stop after epoch {len(decisions) if decisions[-1][1] else None}, best epoch "
      f"{package.best_epoch} | tiny and handson.regularization.EarlyStopping agree on every epoch: "
      f"{all(a == b for a, b in decisions)}")
""")
md(r"""
Replayed on the baseline's validation curve, both versions make the same decision at every epoch.
`reg.EarlyStopping(patience, min_delta=0.0)` also handles `mode="max"` (for accuracies), NaN
losses and input checks. When it says stop, it loads the best weights back into the model.
Plugged into `train.fit` through its `callback` argument (`run` above passes
`callback=lambda history, model: es.step(history["val_loss"][-1], model)`), it stops the real run:
""")
code(r"""
es = reg.EarlyStopping(patience)
stopped = run("early stopping", early_stopping=es)
h_es, h_base = stopped["history"], baseline["history"]
k = len(h_es["epoch"])
print(f"stopped after {k} of {num_epochs} epochs; restored the weights of epoch {es.best_epoch}")
print(f"its curve vs the baseline's first {k} epochs: max abs difference "
      f"{np.abs(np.array(h_es['val_loss']) - np.array(h_base['val_loss'][:k])).max():.1e}")
print(f"val loss of the restored model {stopped['val_loss']:.4f} vs best epoch in the history "
      f"{min(h_es['val_loss']):.4f}: difference {abs(stopped['val_loss'] - min(h_es['val_loss'])):.1e}")
""")
md(r"""
The early-stopped run is the baseline run, cut short: same seed, same batches, and the same
curve for the epochs it trained (differences at rounding level). It stopped `patience` epochs
after the best one, then loaded that epoch's weights back, whose validation loss is exactly the
minimum of the curve. Early stopping costs nothing extra, and it saves compute. Two caveats.
Its choice of epoch uses the validation set, which is one more reason the test set must stay
separate. And the epoch with the lowest validation *loss* need not have the highest validation
*accuracy*. Compare the printed accuracy with the baseline's final one: late in training the
baseline makes ever more confident mistakes, which cost a lot of cross-entropy but no accuracy.
Monitor the metric you care about (`mode="max"` for accuracy).

### Label smoothing

Cross-entropy with one-hot targets keeps pushing the correct logit up forever: the loss
reaches 0 only at probability 1. **Label smoothing** ([Szegedy et al. 2016](ref-szegedy2016))
trains against a softened target instead. With $K$ classes and smoothing $s$, the target puts
$1-s+s/K$ on the true class and $s/K$ on every other class:

$$
q_k = (1-s)\,\mathbb{1}[k=y] + \frac{s}{K}, \qquad
\ell = -\sum_{k=1}^{K} q_k \log p_k = (1-s)\,\big(-\log p_y\big) + s\,\frac{1}{K}\sum_{k=1}^K\big(-\log p_k\big).
$$

The loss is minimized at $\mathbf{p}=\mathbf{q}$: the model is told to stay a little unsure, which
discourages over-confident, memorized predictions. `reg.label_smoothing_cross_entropy` is the
right-hand formula. We check it against PyTorch's `CrossEntropyLoss(label_smoothing=s)` on the
baseline CNN's logits for real validation images:
""")
code(r"""
logits, targets = train.predict(baseline["model"], val_loader)          # (n_val, 10), (n_val,)
for s in (0.0, 0.1, 0.3):
    ours = reg.label_smoothing_cross_entropy(logits, targets, s)
    theirs = nn.CrossEntropyLoss(label_smoothing=s)(logits, targets)
    print(f"s = {s}: ours {ours:.4f}, PyTorch {theirs:.4f}, max abs difference {(ours - theirs).abs():.1e}")
z = torch.zeros(1, 10, dtype=torch.float64, requires_grad=True)          # free logits for one example
opt = torch.optim.LBFGS([z], max_iter=200, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = reg.label_smoothing_cross_entropy(z, torch.tensor([3]), 0.1)    # true class 3
    loss.backward()
    return loss


opt.step(closure)
p_opt = torch.softmax(z.detach()[0], dim=0)
print(f"minimizer of the smoothed loss (s = 0.1, K = 10): p_true = {p_opt[3]:.4f} "
      f"(formula 1 - s + s/K = {1 - 0.1 + 0.1 / 10:.4f}), p_other = {p_opt[0]:.4f} (s/K = 0.0100)")
""")
md(r"""
Our formula equals PyTorch's for every $s$. The baseline's smoothed loss is higher than the plain
one, since it is penalized for putting almost no probability on the other classes. Minimizing the smoothed loss
over free logits lands exactly on $p_y = 0.91$ and $0.01$ for every other class, the target
distribution $\mathbf{q}$.

:::{admonition} Common mistake
:class: warning
Spreading the smoothing mass over the *wrong* classes only, $q_k = s/(K-1)$ for $k\neq y$ and
$1-s$ for the true class, is a different convention from PyTorch's (here $0.9$ and $0.0111$
instead of $0.91$ and $0.01$). Both are used, but they are not interchangeable. A hand-written
version that uses $s/(K-1)$ will not match `CrossEntropyLoss(label_smoothing=s)`, and an $s$
tuned for one convention means something slightly different in the other.
:::

## 9. One table: the same task, the same budget

Finally all regularizers together (weight decay, dropout and augmentation), then the
comparison. Every run used the same images, seed, model, optimizer and number of epochs;
only the regularizer differs. Train accuracy is measured at the end, in evaluation mode, on
the clean (un-augmented) training images, so the columns are comparable.
""")
code(r"""
run("all three", p_drop=p_drop, weight_decay=weight_decay, transform=augment_train)
names = ["baseline", "weight decay", "dropout", "augmentation", "all three", "early stopping"]
print(f"{'configuration':16s} {'train acc':>9s} {'val acc':>8s} {'gap':>7s} {'epochs':>7s}")
for name in names:
    r = runs[name]
    print(f"{name:16s} {r['train_acc']:9.3f} {r['val_acc']:8.3f} {r['train_acc'] - r['val_acc']:7.3f} "
          f"{len(r['history']['epoch']):7d}")
print(f"(validation set: {len(val_idx)} images, so one standard error of an accuracy near 50% is "
      f"{math.sqrt(0.25 / len(val_idx)):.3f})")
""")
code(r"""
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
positions = np.arange(len(names))
axes[0].bar(positions - 0.2, [runs[n]["train_acc"] for n in names], 0.4, label="train accuracy (eval mode)")
axes[0].bar(positions + 0.2, [runs[n]["val_acc"] for n in names], 0.4, label="validation accuracy")
axes[0].set_xticks(positions, names, rotation=20)
axes[0].set(ylabel="accuracy", ylim=(0, 1))
axes[0].legend()
for i, name in enumerate(names[:5]):
    h = runs[name]["history"]
    axes[1].plot(h["epoch"], h["val_loss"], "-o", ms=3, color=f"C{i}", label=name)
axes[1].set(xlabel="epoch", ylabel="validation cross-entropy")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
""")
md(r"""
Read the table together with its last line: differences in validation accuracy smaller than
about two standard errors are noise. In the stored run the six validation accuracies span
only about two and a half standard errors (0.47 to 0.52). The **gap** column is the clear signal. The baseline memorizes
its training images (over 90% training accuracy against about 50% on validation). Every
regularizer shrinks the gap: weight decay and dropout by roughly a third, augmentation and the
combination almost to zero, early stopping by stopping before the memorization starts.

Why do closed gaps not turn into higher validation accuracy here? The right panel shows the
reason. The baseline's validation loss has been climbing for the last ten epochs, while the
regularized runs' losses are still falling at the last epoch. Regularizers slow down
fitting: the network has to solve a harder task (random crops, missing units, shrinking
weights). With a fixed small budget, stacking all three even *underfits*: its training
accuracy is the lowest of all. More regularization needs more epochs. To see it, raise
`num_epochs` here, or run the `gpu` scale (16,000 images, 30 epochs).

Now, and only now, the test set. We pick the configuration with the best validation accuracy
and evaluate it on the test images, once:
""")
code(r"""
chosen = max(names, key=lambda name: runs[name]["val_acc"])
test_loader = loader(test_idx, normalize, shuffle=False)
final = train.evaluate(runs[chosen]["model"], test_loader, loss_fn, metrics={"accuracy": metrics.accuracy})
test_accuracy = final["accuracy"]
print(f"chosen on validation: {chosen} (val accuracy {runs[chosen]['val_acc']:.3f})")
print(f"test accuracy, measured once: {test_accuracy:.3f} on {len(test_idx)} images "
      f"(standard error {math.sqrt(test_accuracy * (1 - test_accuracy) / len(test_idx)):.3f})")
""")
md(r"""
The test accuracy is an honest estimate for the chosen configuration, with the printed
standard error. It agrees with that model's validation accuracy to within about one standard
error. On average, though, the validation accuracy of the winner is optimistic, because picking
the best of six configurations exploits some validation noise (Section 1's winner effect, on a
small scale). That is why the number we report comes from the test set. Any further tuning
would need a new test set.

## Summary

* Split **once, seeded and stratified** into train / validation / test; fit every statistic on
  the training part only; tune on validation; touch the test set **once**.
* **Overfitting** shows as a growing gap between training and validation curves; validation
  error against capacity (polynomial degree) is **U-shaped**.
* **L1** ($\lambda\sum|w|$, gradient $\lambda\,\text{sign}\,w$) drives weights to **exact zeros**
  (soft-thresholding); **L2** ($\lambda\sum w^2$, gradient $2\lambda w$) shrinks them smoothly.
  For $\mathbf{w}=(1,2,3)$, $\lambda=0.1$: $0.6$ and $1.4$.
* **Weight decay** equals L2 for SGD (`weight_decay` $=2\lambda$) but not for Adam, whose
  per-weight scaling distorts the decay; **AdamW** decouples it.
* **Inverted dropout** scales survivors by $1/(1-p)$ so the expectation is unchanged and eval is the
  identity; **batch norm** normalizes with batch statistics in training and running averages
  (unbiased variance) in eval. Both match `torch.nn` exactly.
* **Augmentation** (random crop with padding + flip) was the most effective single regularizer on
  CIFAR-10; **early stopping** keeps the best validation epoch; **label smoothing** targets
  $1-s+s/K$ instead of 1.
* Compare regularizers on the **same data, seed and budget**, and read differences against the
  validation set's noise.

## Exercises

:::{exercise} L1 and L2 penalties by hand
:label: ch03-ex1
A layer has the weights $\mathbf{w} = (-2, 0.5, 1, 3)$ and $\lambda = 0.01$. Compute the L1 penalty
$\lambda\sum_i|w_i|$ and the L2 penalty $\lambda\sum_i w_i^2$ (this book's convention, no $\tfrac12$).
:::
""")
code(r"""
l1_answer, l2_answer = None, None  # your answers: two floats
handson.check.regularization.penalties(l1_answer, l2_answer)
""")
md(r"""
:::{solution} ch03-ex1
:class: dropdown
$L_1 = 0.01\cdot(2 + 0.5 + 1 + 3) = 0.065$ (absolute values, so the sign of $-2$ does not matter);
$L_2 = 0.01\cdot(4 + 0.25 + 1 + 9) = 0.1425$.
```python
w = torch.tensor([-2.0, 0.5, 1.0, 3.0])
l1_answer, l2_answer = reg.l1_penalty(w, 0.01).item(), reg.l2_penalty(w, 0.01).item()
```
:::

:::{exercise} From `weight_decay` to $\lambda$
:label: ch03-ex2
A recipe trains with `torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)`. You want
the same training with an explicit penalty `loss + reg.l2_penalty(model.parameters(), lam)` and
`weight_decay=0`. Which `lam`?
:::
""")
code(r"""
lam_answer = None  # your answer: a float
handson.check.regularization.weight_decay_lambda(lam_answer)
""")
md(r"""
:::{solution} ch03-ex2
:class: dropdown
SGD adds $\text{wd}\cdot w$ to the gradient; the gradient of $\lambda\sum w^2$ is $2\lambda w$. Setting
them equal gives $\lambda = \text{wd}/2 = 2.5\times10^{-4}$. Momentum does not change this: both
versions feed the same gradient into the same momentum buffer.
```python
lam_answer = 5e-4 / 2
```
:::

:::{exercise} When does early stopping stop?
:label: ch03-ex3
A run produced the validation losses below (epoch 1 first). With `patience=2` and `min_delta=0`,
after which epoch does early stopping stop training, and the weights of which epoch does it
restore? Work it out by hand first, then check with `reg.EarlyStopping`.
:::
""")
code(r"""
stop_curve = [0.92, 0.71, 0.64, 0.66, 0.61, 0.63, 0.65, 0.62, 0.60, 0.64]
stop_answer, best_answer = None, None  # your answers: two epoch numbers (counting from 1)
handson.check.regularization.stop_epoch(stop_answer, best_answer, stop_curve, patience=2)
""")
md(r"""
:::{solution} ch03-ex3
:class: dropdown
The best value improves at epochs 1, 2, 3 and 5 ($0.61$). Epoch 6 ($0.63$) and epoch 7 ($0.65$) are two
epochs in a row without improvement, so training stops after **epoch 7** and restores the weights of
**epoch 5**. The later $0.60$ at epoch 9 is never seen; with `patience=4` it would have been.
```python
es = reg.EarlyStopping(patience=2)
stop_answer = next(epoch for epoch, v in enumerate(stop_curve, 1) if es.step(v))
best_answer = es.best_epoch          # 7 and 5
```
:::

:::{exercise} Inverted dropout
:label: ch03-ex4
Write `my_dropout(x, p, training)`. In training mode it zeros each entry with probability `p` and
divides the kept ones by `1 - p`; in evaluation mode (`training=False`) it returns `x` unchanged.
:::
""")
code(r"""
def my_dropout(x, p, training):
    return x  # replace: this placeholder never drops anything


handson.check.regularization.inverted_dropout(my_dropout)
""")
md(r"""
:::{solution} ch03-ex4
:class: dropdown
```python
def my_dropout(x, p, training):
    if not training or p == 0:
        return x
    keep = (torch.rand_like(x) >= p).to(x.dtype)   # 1 with probability 1 - p
    return x * keep / (1 - p)
```
:::

:::{exercise} A batch-norm forward pass
:label: ch03-ex5
Write `my_batchnorm(x, gamma, beta, eps)` for a batch `x` of shape `(N, C)` in training mode: normalize each
column with its batch mean and *biased* batch variance, then scale by `gamma` and shift by `beta` (both `(C,)`).
:::
""")
code(r"""
def my_batchnorm(x, gamma, beta, eps):
    return x  # replace: (N, C) -> (N, C)


handson.check.regularization.batchnorm_forward(my_batchnorm)
""")
md(r"""
:::{solution} ch03-ex5
:class: dropdown
```python
def my_batchnorm(x, gamma, beta, eps):
    mu = x.mean(dim=0)                              # (C,)
    var = x.var(dim=0, unbiased=False)              # (C,) biased, as in training-mode BN
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta
```
:::

:::{exercise} Label smoothing from the target distribution
:label: ch03-ex6
Write `my_smoothed_ce(logits, target, s)` for logits `(N, K)` and integer targets `(N,)`: build the smoothed
target distribution $q$ explicitly and return the mean of $-\sum_k q_k\log p_k$. It must equal
`nn.CrossEntropyLoss(label_smoothing=s)`. Then explain: with $s=0.1$ and $K=10$, what is the
smallest loss one example can reach, and why is it not $0$?
:::
""")
code(r"""
def my_smoothed_ce(logits, target, s):
    return F.cross_entropy(logits, target)  # replace: this ignores s


handson.check.regularization.label_smoothing(my_smoothed_ce)
""")
md(r"""
:::{solution} ch03-ex6
:class: dropdown
```python
def my_smoothed_ce(logits, target, s):
    K = logits.shape[1]
    q = torch.full_like(logits, s / K)                                   # s/K everywhere
    q[torch.arange(len(target)), target] += 1 - s                        # plus 1 - s on the true class
    return -(q * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
```
The loss is the cross-entropy $H(\mathbf{q},\mathbf{p}) = H(\mathbf{q}) + D_{\mathrm{KL}}(\mathbf{q}\,\|\,\mathbf{p}) \ge H(\mathbf{q})$,
with equality at $\mathbf{p} = \mathbf{q}$. So the smallest loss is the entropy of the target,
$-0.91\log 0.91 - 9\cdot 0.01\log 0.01 \approx 0.500$: it is not $0$ because the target itself is uncertain.
:::

## Provenance
""")
code(r"""
handson.provenance.report(
    test_accuracy=test_accuracy, chosen_configuration=chosen,
    val_accuracy={name: round(runs[name]["val_acc"], 4) for name in names},
    train_val_gap={name: round(runs[name]["train_acc"] - runs[name]["val_acc"], 4) for name in names},
    early_stopping_epoch=len(runs["early stopping"]["history"]["epoch"]), num_epochs=num_epochs,
    n_train=len(train_idx), n_val=len(val_idx), n_test=len(test_idx))
""")

ch.write("03_regularization.ipynb")

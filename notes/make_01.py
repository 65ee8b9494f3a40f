"""Generate notebooks/01_neural_networks.ipynb from the cell sources below.

Run:  .venv/bin/python notes/make_01.py
Then execute it at cpu scale (see the chapter standard) so the stored outputs are real.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbtools import SETUP, write_notebook  # noqa: E402  (the shared first code cell)

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip("\n")))  # noqa: E731
code = lambda s: cells.append(new_code_cell(s.strip("\n")))  # noqa: E731

# ----------------------------------------------------------------------------- opening
md(r"""
# 1. Neural networks and backpropagation from scratch

Every large model in this book is built from the same few pieces: weighted sums,
nonlinear activations, a loss, and gradients computed by backpropagation. This chapter
builds each piece by hand and checks it against PyTorch. By the end you will be able to

* say what a **neuron** and a **layer** compute, and write a layer as a matrix product with the right shapes;
* build the **mean squared error** and **cross-entropy** losses, and make softmax cross-entropy
  numerically safe with the **log-sum-exp trick**;
* derive **backpropagation** for a small network with the chain rule, code it, and verify it
  against autograd and finite differences;
* explain **vanishing gradients** in deep sigmoid networks and how **Xavier/He initialization** keeps signals at a steady scale;
* compute **accuracy, precision, recall and F1** from a confusion matrix.

**Prerequisites:** [Chapter 0](00_using_this_book.ipynb) (scales, the `handson` package and its
training loop `fit`); matrix multiplication, derivatives and the chain rule.

The rocket icon at the top of this page opens the notebook in Colab or JupyterLab; the page
itself shows the outputs of a real run.
""")
code(SETUP)
md(r"""
The stored outputs on this page come from the `cpu` scale on a 2-core machine without a
GPU. The networks in this chapter are tiny, so every scale runs them on the CPU; the scale
only changes how many epochs we train and how deep the deep networks are.
""")
code(r"""
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from tqdm.auto import tqdm

from handson import data, metrics, plot, seed, train

torch.set_printoptions(precision=4, sci_mode=False)
cpu = torch.device("cpu")   # these networks are small: the CPU is the fastest place for them
""")

# ----------------------------------------------------------------------------- 1 neuron
md(r"""
## 1. A neuron and a layer

A **neuron** receives $d$ inputs $x_1,\dots,x_d$, multiplies each by a **weight** $w_j$, adds
a **bias** $b$ and passes the result through an **activation function** $f$:

$$
z = \sum_{j=1}^{d} w_j x_j + b, \qquad a = f(z).
$$

$z$ is the *pre-activation*, $a$ the neuron's output (its *activation*). Here is one neuron
with three inputs, the sum written out term by term and then as a dot product:
""")
code(r"""
# NBVAL_CHECK_OUTPUT
x = torch.tensor([1.0, -2.0, 0.5])     # (num_inputs,)
w = torch.tensor([0.5, -0.25, 1.0])    # (num_inputs,)
b = 0.1
z = sum(w[j] * x[j] for j in range(3)) + b
print(f"sum written out: z = {float(z):.4f} | dot product w @ x + b = {float(w @ x + b):.4f}")
""")
md(r"""
Both give $z = 0.5 + 0.5 + 0.5 + 0.1 = 1.6$.

A **layer** is $h$ neurons that read the same inputs. Stack their weight vectors as the rows
of a matrix $\mathbf{W}\in\mathbb{R}^{h\times d}$ and their biases in $\mathbf{b}\in\mathbb{R}^{h}$.
For a minibatch $\mathbf{X}\in\mathbb{R}^{n\times d}$ with one example per row,

$$
\mathbf{Z} = \mathbf{X}\mathbf{W}^\top + \mathbf{b}, \qquad \mathbf{A} = f(\mathbf{Z}),
\qquad \mathbf{Z},\mathbf{A}\in\mathbb{R}^{n\times h},
$$

where $\mathbf{b}$ is added to every row (broadcasting). `torch.nn.Linear` stores
$\mathbf{W}$ in exactly this `(out_features, in_features)` layout, so our formula must agree with it:
""")
code(r"""
seed.set_seed(0)
batch_size, num_inputs, num_hiddens = 4, 3, 2
X = torch.randn(batch_size, num_inputs)            # (batch_size, num_inputs)
layer = torch.nn.Linear(num_inputs, num_hiddens)   # weight: (num_hiddens, num_inputs)
Z = X @ layer.weight.T + layer.bias                # (batch_size, num_hiddens)
print("Z:", tuple(Z.shape), "| weight:", tuple(layer.weight.shape))
print(f"max abs difference to torch.nn.Linear: {(Z - layer(X)).abs().max():.1e}")
""")
md(r"""
One matrix product computes all $n \times h$ pre-activations at once, and the difference to
PyTorch's layer is zero (or at the level of float32 rounding, about $10^{-7}$).

## 2. Activation functions

Without a nonlinearity, stacking layers buys nothing: $\mathbf{W}_2(\mathbf{W}_1\mathbf{x}+\mathbf{b}_1)+\mathbf{b}_2
= (\mathbf{W}_2\mathbf{W}_1)\mathbf{x} + (\mathbf{W}_2\mathbf{b}_1+\mathbf{b}_2)$ is again one linear
layer. Four activations cover almost every network in this book. Backpropagation needs
each one's derivative too:

| name | $f(z)$ | $f'(z)$ |
| --- | --- | --- |
| ReLU | $\max(z, 0)$ | $1$ if $z>0$, else $0$ |
| sigmoid | $\sigma(z) = \dfrac{1}{1+e^{-z}}$ | $\sigma(z)\,(1-\sigma(z))$, at most $\tfrac14$ |
| tanh | $\tanh z$ | $1-\tanh^2 z$, at most $1$ |
| GELU | $z\,\Phi(z)$ | $\Phi(z) + z\,\varphi(z)$ |

$\Phi$ and $\varphi$ are the cumulative distribution function and the density of the standard
normal distribution. GELU ([Hendrycks & Gimpel 2016](ref-hendrycks2016)) is the activation of
BERT and GPT; ReLU ([Nair & Hinton 2010](ref-nair2010)) dominates vision networks. At $z=0$,
where ReLU has a kink, we use $f'(0)=0$, as PyTorch does.

Each pair is a one-line function in `handson.nn` (`handson.nn.relu`, `handson.nn.relu_grad`, ...,
collected in `handson.nn.ACTIVATIONS`). We check every derivative formula against autograd on
2001 points in float64:
""")
code(r"""
z_grid = torch.linspace(-5, 5, 2001, dtype=torch.float64)
for name, (f, f_grad) in handson.nn.ACTIVATIONS.items():
    z = z_grid.clone().requires_grad_(True)
    f(z).sum().backward()                      # autograd: d/dz_i of sum_j f(z_j) = f'(z_i)
    diff = (f_grad(z_grid) - z.grad).abs().max()
    print(f"{name:8s} f'(z) formula vs autograd: max abs difference {diff:.1e}")
""")
md(r"""
All four formulas match autograd to about $10^{-16}$, float64 rounding. Now look at them:
""")
code(r"""
fig, axes = plt.subplots(2, 4, figsize=(13, 5), sharex=True)
for col, (name, (f, f_grad)) in enumerate(handson.nn.ACTIVATIONS.items()):
    axes[0, col].plot(z_grid, f(z_grid), color="C0")
    axes[1, col].plot(z_grid, f_grad(z_grid), color="C1")
    axes[0, col].set_title(name)
    for ax in axes[:, col]:
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.grid(alpha=0.3)
axes[0, 0].set_ylabel("f(z)")
axes[1, 0].set_ylabel("f'(z)")
for ax in axes[1]:
    ax.set_xlabel("z")
fig.tight_layout()
""")
md(r"""
The bottom row is what matters for learning. The sigmoid's slope never exceeds $0.25$ and is
almost zero once $|z|>4$: a saturated sigmoid passes back almost no gradient. tanh peaks at
$1$ but saturates the same way. ReLU passes the gradient unchanged wherever the unit is
active and blocks it completely where it is not. GELU is a smooth ReLU that dips slightly
below zero for negative $z$ (its derivative even goes a little negative there).

## 3. Losses

A **loss** $J$ turns the network's outputs and the true targets into one number to
minimize. For $n$ examples with targets $y_i$:

* **Mean squared error** (regression, outputs $\hat y_i$): $\;J = \frac1n\sum_i (\hat y_i - y_i)^2$.
* **Binary cross-entropy** (two classes, $y_i\in\{0,1\}$): the network outputs one *logit*
  $z_i$, the probability of class 1 is $p_i=\sigma(z_i)$, and
  $J = -\frac1n\sum_i \big[y_i\log p_i + (1-y_i)\log(1-p_i)\big]$.
* **Categorical cross-entropy** ($C$ classes, $y_i\in\{0,\dots,C-1\}$): the network outputs
  logits $\mathbf{z}_i\in\mathbb{R}^C$, the **softmax** turns them into probabilities
  $p_{ik} = e^{z_{ik}}/\sum_{j} e^{z_{ij}}$, and $J = -\frac1n\sum_i \log p_{i,y_i}$.

Since $-\log\sigma(z) = \log(1+e^{-z})$ and $-\log(1-\sigma(z)) = \log(1+e^{z})$, the binary loss
of one example is $\log(1+e^{z}) - yz$. Computed as
$\max(z,0) - yz + \log\!\big(1+e^{-|z|}\big)$ it never exponentiates a large number; that is
`handson.nn.bce_with_logits`, which lets `torch.logaddexp(z, 0)` compute
$\max(z,0) + \log(1+e^{-|z|})$. (Typing that expression literally as
`z.clamp(min=0) + torch.log1p(torch.exp(-z.abs()))` gives the right *value* but a wrong
*gradient* at exactly $z=0$: autograd takes a one-sided slope at each of the two kinks, and they
add up to $1-y$ instead of $\sigma(0)-y = \tfrac12-y$. A network whose ReLU units are all off
outputs exactly $z=0$, so this is not hypothetical: section 5's gradient check caught it in an
early draft of this chapter.) Both losses match PyTorch's:
""")
code(r"""
seed.set_seed(0)
pred, target = torch.randn(6), torch.randn(6)                       # (n,), (n,)
logits_b, labels_b = 3 * torch.randn(6), torch.randint(0, 2, (6,)).float()
print(f"MSE vs F.mse_loss: max abs difference "
      f"{(handson.nn.mse_loss(pred, target) - F.mse_loss(pred, target)).abs():.1e}")
print(f"BCE vs F.binary_cross_entropy_with_logits: max abs difference "
      f"{(handson.nn.bce_with_logits(logits_b, labels_b) - F.binary_cross_entropy_with_logits(logits_b, labels_b)).abs():.1e}")
""")
md(r"""
Both agree to float32 rounding. Why bother with the rearranged binary formula? Because the
textbook form breaks as soon as a logit is large. In float32, $\sigma(40)$ rounds to exactly
$1$, so $\log(1-p)$ becomes $\log 0$:
""")
code(r"""
# NBVAL_CHECK_OUTPUT
z_big, y_zero = torch.tensor([40.0]), torch.tensor([0.0])
p = torch.sigmoid(z_big)
naive = -(y_zero * torch.log(p) + (1 - y_zero) * torch.log(1 - p)).mean()
print(f"sigmoid(40) in float32 = {p.item()!r}")
print(f"textbook BCE = {naive.item()} | stable BCE = {handson.nn.bce_with_logits(z_big, y_zero).item():.4f}")
""")
md(r"""
The textbook formula returns `inf` (and its gradient would be `nan`), while the stable form
gives the right loss: a confident wrong prediction with logit $40$ costs
$\log(1+e^{40}) \approx 40$.

### The log-sum-exp trick

The categorical loss of one example is $\ell = -\log p_y = \log\sum_j e^{z_j} - z_y$. The sum
of exponentials overflows in float32 as soon as some $z_j > 88.7$ (because
$e^{88.7}\approx 3.4\times10^{38}$, the largest float32). The fix is an identity: for any
constant $m$,

$$
\log\sum_j e^{z_j} = m + \log\sum_j e^{z_j - m}.
$$

With $m=\max_j z_j$ the largest term of the new sum is $e^0=1$: the sum lies between $1$ and
$C$, nothing overflows and the logarithm never sees $0$. Watch the naive formula fail on
logits $[1000, 0, -1000]$, for each of the three possible targets:
""")
code(r"""
# NBVAL_CHECK_OUTPUT
z = torch.tensor([[1000.0, 0.0, -1000.0]])   # (1, num_classes)
print("exp(z) =", torch.exp(z))
for target in range(3):
    naive = -torch.log(torch.exp(z[0, target]) / torch.exp(z).sum())
    lse = z.max() + torch.log(torch.exp(z - z.max()).sum())
    print(f"target {target}: naive loss {naive.item()}, log-sum-exp loss {(lse - z[0, target]).item()}")
""")
md(r"""
$e^{1000}$ is `inf`, so the naive softmax divides `inf` by `inf` (`nan`) or gets $0$ and takes
its log (`inf`). The log-sum-exp version gives the exact answers $0$, $1000$ and $2000$.
Here is the batched loss, written out; `handson.nn.softmax_cross_entropy` is this function
plus input checks (shapes, integer targets in range), and later chapters import it:
""")
code(r"""
def softmax_cross_entropy(logits, targets):
    # logits: (batch_size, num_classes); targets: (batch_size,) integer class ids
    m = logits.amax(dim=1, keepdim=True)                                # (batch_size, 1)
    log_sum_exp = m.squeeze(1) + torch.log(torch.exp(logits - m).sum(dim=1))   # (batch_size,)
    correct = logits[torch.arange(len(targets)), targets]               # (batch_size,)
    return (log_sum_exp - correct).mean()


seed.set_seed(0)
for spread in (1.0, 100.0, 1e4):
    logits, targets = spread * torch.randn(64, 10), torch.randint(0, 10, (64,))
    ours, theirs = softmax_cross_entropy(logits, targets), F.cross_entropy(logits, targets)
    package = handson.nn.softmax_cross_entropy(logits, targets)
    print(f"logits ~ {spread:g} x N(0,1): loss {theirs.item():.6g} | max abs difference to "
          f"F.cross_entropy {(ours - theirs).abs():.1e}, to handson.nn {(ours - package).abs():.1e}")
""")
md(r"""
Even with logits of size $10^4$, where $e^{z}$ would overflow thousands of times over, the
loss agrees with `torch.nn.functional.cross_entropy` (which uses the same trick) up to float32
rounding of the loss's own size.

Binary cross-entropy is the two-class case of the categorical one: the softmax of the two
logits $[0, z]$ gives class 1 probability $e^z/(1+e^z) = \sigma(z)$. Numerically:
""")
code(r"""
two_class = torch.stack([torch.zeros_like(logits_b), logits_b], dim=1)   # (n, 2)
diff = (handson.nn.softmax_cross_entropy(two_class, labels_b.long())
        - handson.nn.bce_with_logits(logits_b, labels_b)).abs()
print(f"softmax CE on [0, z] vs binary CE on z: max abs difference {diff:.1e}")
""")
md(r"""
The two losses coincide, so a binary classifier may use one logit with binary cross-entropy
or two logits with softmax cross-entropy; we use one logit below.

:::{warning} Common mistake: applying softmax before `cross_entropy`
`torch.nn.functional.cross_entropy` and `torch.nn.CrossEntropyLoss` expect **logits** and apply
the log-softmax themselves. Code that passes `torch.softmax(logits, -1)` computes the softmax
twice. The loss still decreases, so nothing crashes, but it can never get near zero and its
gradients are squashed. The cell below shows a confident, correct prediction.
:::
""")
code(r"""
# NBVAL_CHECK_OUTPUT
confident = torch.tensor([[10.0, 0.0]])   # logits strongly favour class 0, and class 0 is right
label = torch.tensor([0])
print(f"cross_entropy(logits)          = {F.cross_entropy(confident, label).item():.6f}")
print(f"cross_entropy(softmax(logits)) = {F.cross_entropy(torch.softmax(confident, -1), label).item():.6f}")
""")
md(r"""
The right loss is $4.5\times10^{-5}$; the doubly-softmaxed one is $0.31$, and with two classes it
can never fall below $\log(1+e^{-1}) = 0.313$ however confident the network gets.

## 4. A real binary task: breast cancer diagnosis

We need a real data set small enough to backpropagate by hand. The **Breast Cancer Wisconsin
(Diagnostic)** data ([Street et al. 1993](ref-street1993)) ships with scikit-learn, so it needs
no download: 569 breast masses, each described by 30 measurements of the cell nuclei in a
fine-needle aspirate image (radius, texture, area, smoothness, ... as mean, standard error
and worst value), labelled malignant or benign. scikit-learn codes malignant as 0;
`handson.nn.load_breast_cancer` flips the labels so that **1 = malignant**, the class we want
to find. We split it 60/20/20 into train, validation and test sets, stratified so that each
keeps the class balance.
""")
code(r"""
X_all, y_all, feature_names = handson.nn.load_breast_cancer()   # (569, 30), (569,)
train_idx, val_idx, test_idx = data.split_indices(y_all.numpy(), fractions=(0.6, 0.2, 0.2), seed=0)
print("X:", tuple(X_all.shape), f"| malignant share {y_all.float().mean():.3f}")
print("train / val / test:", len(train_idx), len(val_idx), len(test_idx))
""")
md(r"""
About 37% of the masses are malignant, and the split leaves 341 examples to train on, 115
to tune with and 113 to report on once. The raw features live on very different scales:
""")
code(r"""
for name in ("worst area", "mean texture", "worst smoothness"):
    col = X_all[:, feature_names.index(name)]
    print(f"{name:17s} min {col.min():8.3f}  max {col.max():8.3f}")
""")
md(r"""
"worst area" is in the thousands while "worst smoothness" is about $0.1$. With such inputs a
weight change means wildly different things for different features. We **standardize**
each feature $k$ to $x'_k = (x_k - \mu_k)/s_k$, with the mean $\mu_k$ and standard deviation
$s_k$ of the **training set only**: the validation and test sets stand in for future data,
whose statistics we cannot know, so using them would leak information into training.
""")
code(r"""
mean, std = X_all[train_idx].mean(dim=0), X_all[train_idx].std(dim=0)   # (num_features,)
X_train, X_val, X_test = ((X_all[idx] - mean) / std for idx in (train_idx, val_idx, test_idx))
y_train, y_val, y_test = (y_all[idx] for idx in (train_idx, val_idx, test_idx))
print(f"train: largest |feature mean| {X_train.mean(0).abs().max():.1e}, "
      f"feature std in [{X_train.std(0).min():.3f}, {X_train.std(0).max():.3f}]")
print(f"val:   largest |feature mean| {X_val.mean(0).abs().max():.3f}")
""")
md(r"""
The training features now have mean $0$ and standard deviation $1$ exactly (up to float32
rounding); the validation features are only close to that, as real future data would be.

## 5. The 3-2-1 network by hand

Our first network has 3 inputs (mean texture, worst area and worst smoothness), 2 ReLU hidden
units and 1 sigmoid output unit, the probability that the mass is malignant:

$$
\mathbf{z}^{(1)} = \mathbf{W}^{(1)}\mathbf{x} + \mathbf{b}^{(1)},\quad
\mathbf{h} = \mathrm{ReLU}(\mathbf{z}^{(1)}),\quad
z^{(2)} = \mathbf{W}^{(2)}\mathbf{h} + b^{(2)},\quad
p = \sigma(z^{(2)}),
$$

with $\mathbf{W}^{(1)}\in\mathbb{R}^{2\times3}$, $\mathbf{b}^{(1)}\in\mathbb{R}^{2}$,
$\mathbf{W}^{(2)}\in\mathbb{R}^{1\times2}$ and $b^{(2)}\in\mathbb{R}$: 11 parameters. The loss is
the mean binary cross-entropy $J$ over the training set. We work in float64 in this section so
that finite differences are accurate, and draw the weights at random (He initialization, see
section 7).
""")
code(r"""
cols = [feature_names.index(name) for name in ("mean texture", "worst area", "worst smoothness")]
X3, y3 = X_train[:, cols].double(), y_train.double()        # (n_train, 3), (n_train,)
seed.set_seed(0)
params = {"W1": torch.randn(2, 3, dtype=torch.float64) * math.sqrt(2 / 3),   # (2, 3)
          "b1": torch.zeros(2, dtype=torch.float64),                        # (2,)
          "W2": torch.randn(1, 2, dtype=torch.float64) * math.sqrt(2 / 2),   # (1, 2)
          "b2": torch.zeros(1, dtype=torch.float64)}                        # (1,)


def forward_321(params, X):
    Z1 = X @ params["W1"].T + params["b1"]                  # (n, 2)
    H = handson.nn.relu(Z1)                                  # (n, 2)
    z2 = (H @ params["W2"].T + params["b2"]).squeeze(-1)    # (n,)  logits
    return Z1, H, z2


def loss_321(params, X, y):
    return handson.nn.bce_with_logits(forward_321(params, X)[2], y)


Z1, H, z2 = forward_321(params, X3[:1])                     # the first training example
print("x  =", X3[0], "| label y =", int(y3[0]))
print("z1 =", Z1[0], "-> h =", H[0])
print(f"z2 = {z2.item():.4f} -> p = sigmoid(z2) = {torch.sigmoid(z2).item():.4f}")
print(f"loss J over all {len(y3)} training examples: {loss_321(params, X3, y3).item():.4f}")
""")
md(r"""
Follow one example through: each hidden unit takes a weighted sum of the three
standardized features, ReLU zeroes any negative sum, and the output unit squashes its
weighted sum of the two hidden values into a probability. With random weights the network
knows nothing yet: the training loss is around $0.5$–$0.8$ (always predicting 37% would give
$0.66$).

### Backward pass with the chain rule

We want $\partial J/\partial$ every parameter. Write $\delta$ for the gradient of $J$ with
respect to a pre-activation, and go backwards one layer at a time.

**Output unit.** For one example $\ell = \log(1+e^{z}) - yz$, so
$\partial\ell/\partial z^{(2)} = \sigma(z^{(2)}) - y = p - y$. The sigmoid's derivative has
cancelled against the logarithm's: this is why a sigmoid output is paired with cross-entropy.
Averaging over $n$ examples, example $i$ contributes $\delta^{(2)}_i = (p_i - y_i)/n$.

**Second layer's parameters.** $z^{(2)}_i = \sum_j W^{(2)}_{1j}h_{ij} + b^{(2)}$, so
$$
\frac{\partial J}{\partial W^{(2)}_{1j}} = \sum_i \delta^{(2)}_i\,h_{ij}, \qquad
\frac{\partial J}{\partial b^{(2)}} = \sum_i \delta^{(2)}_i,
\qquad\text{in matrix form}\quad \frac{\partial J}{\partial \mathbf{W}^{(2)}} = \boldsymbol\delta^{(2)\top}\mathbf{H}.
$$

**Into the hidden layer.** $h_{ij}$ affects $J$ only through $z^{(2)}_i$, with slope
$W^{(2)}_{1j}$; then ReLU multiplies by its derivative:
$$
\frac{\partial J}{\partial h_{ij}} = \delta^{(2)}_i W^{(2)}_{1j}, \qquad
\delta^{(1)}_{ij} = \frac{\partial J}{\partial h_{ij}}\;\mathbf{1}\big[z^{(1)}_{ij} > 0\big].
$$

**First layer's parameters.** The same pattern as the second layer, with the inputs in place of $\mathbf{H}$:
$$
\frac{\partial J}{\partial \mathbf{W}^{(1)}} = \boldsymbol\Delta^{(1)\top}\mathbf{X}, \qquad
\frac{\partial J}{\partial \mathbf{b}^{(1)}} = \sum_i \boldsymbol\delta^{(1)}_i .
$$

In general, for layer $l$ with input activations $\mathbf{A}^{(l-1)}$:
$\partial J/\partial\mathbf{W}^{(l)} = \boldsymbol\Delta^{(l)\top}\mathbf{A}^{(l-1)}$ and
$\boldsymbol\Delta^{(l-1)} = \big(\boldsymbol\Delta^{(l)}\mathbf{W}^{(l)}\big)\odot f'(\mathbf{Z}^{(l-1)})$,
where $\odot$ multiplies element by element. That recursion is **backpropagation**
([Rumelhart et al. 1986](ref-rumelhart1986)). In code:
""")
code(r"""
def backward_321(params, X, y):
    n = X.shape[0]
    Z1, H, z2 = forward_321(params, X)
    d2 = ((torch.sigmoid(z2) - y) / n).unsqueeze(1)   # (n, 1)  dJ/dz2
    grads = {"W2": d2.T @ H,                           # (1, 2)
             "b2": d2.sum(dim=0)}                      # (1,)
    dH = d2 @ params["W2"]                             # (n, 2)  dJ/dH
    D1 = dH * handson.nn.relu_grad(Z1)                 # (n, 2)  dJ/dZ1
    grads["W1"] = D1.T @ X                             # (2, 3)
    grads["b1"] = D1.sum(dim=0)                        # (2,)
    return grads


grads_hand = backward_321(params, X3, y3)
print({name: tuple(g.shape) for name, g in grads_hand.items()})
""")
md(r"""
Every gradient has the shape of its parameter, as it must. Now the two independent checks:
**autograd** (PyTorch records the forward pass and differentiates it) and **finite
differences**, which need no calculus at all:
$\partial J/\partial\theta_k \approx \big(J(\theta + \epsilon\mathbf{e}_k) - J(\theta - \epsilon\mathbf{e}_k)\big)/(2\epsilon)$,
one pair of forward passes per parameter. Its error is about $\epsilon^2$ from the Taylor
expansion plus (float64 rounding $\approx 10^{-16}$)$/\epsilon$ from the subtraction, so
$\epsilon = 10^{-6}$ gives about $10^{-10}$. `handson.nn.numerical_gradient(f, x, eps=1e-6)`
implements it in float64.
""")
code(r"""
leaf = {name: p.clone().requires_grad_(True) for name, p in params.items()}
loss_321(leaf, X3, y3).backward()                     # autograd fills leaf[name].grad

print(f"{'param':6s}{'shape':8s}{'|hand - autograd|':>20s}{'|hand - finite diff|':>22s}")
for name, p in params.items():
    def J_of(value, name=name):                       # J as a function of one parameter tensor
        return loss_321({**params, name: value}, X3, y3)
    numeric = handson.nn.numerical_gradient(J_of, p)
    d_auto = (grads_hand[name] - leaf[name].grad).abs().max()
    d_num = (grads_hand[name] - numeric).abs().max()
    print(f"{name:6s}{str(tuple(p.shape)):8s}{d_auto:20.1e}{d_num:22.1e}")
""")
md(r"""
The hand-derived gradients equal autograd to float64 rounding (about $10^{-17}$) and the
finite differences to about $10^{-10}$, the accuracy that central differences with
$\epsilon=10^{-6}$ can reach. Three methods, one answer: the chain-rule derivation is right.

:::{warning} Common mistake: $\partial J/\partial w_{ij} = e_i\,a_{i-1}(1-a_{i-1})$
Widely circulated notes on backpropagation give the gradient of the weight $w_{ij}$ as
$e_i\,a_{i-1}(1-a_{i-1})$, where $e_i = y_i - a_i$ is the error of unit $i$ and $a_{i-1}$ the
activation one layer down. That expression is wrong in three ways:

1. **Sign.** For the squared error $J=\tfrac12(y-a)^2$, $\partial J/\partial a = -(y-a) = -e$.
   Without the minus sign the expression is the *descent direction*, not the gradient, and
   an optimizer that subtracts it climbs the loss.
2. **The wrong activation's derivative.** The factor $a(1-a)$ is the sigmoid's slope
   $\sigma'(z)$ of the unit the weight **feeds into** (unit $i$: $a_i(1-a_i)$). The lower unit's
   activation $a_{i-1}$ enters as a plain factor, the input that the weight multiplies, and
   never through its derivative. Also, $a(1-a)$ holds only for sigmoid units: a ReLU unit has
   slope $\mathbf{1}[z>0]$.
3. **Missing upstream terms.** An error $e_i$ exists only at the output. A hidden unit's error
   signal collects every path to the loss, $\delta^{(l)}_j = f'(z^{(l)}_j)\sum_k W^{(l+1)}_{kj}\,\delta^{(l+1)}_k$;
   dropping the sum and the weights $W^{(l+1)}$ leaves a number unrelated to the gradient.

The right expression for the weight from unit $j$ of layer $l-1$ to unit $i$ of layer $l$ is

$$
\frac{\partial J}{\partial W^{(l)}_{ij}} = \delta^{(l)}_i\,a^{(l-1)}_j,\qquad
\delta^{(L)}_i = -(y_i - a_i)\,a_i(1-a_i)\ \text{(squared error, sigmoid output)},\qquad
\delta^{(l)}_j = f'(z^{(l)}_j)\sum_k W^{(l+1)}_{kj}\,\delta^{(l+1)}_k .
$$

With cross-entropy instead of squared error the sigmoid slope cancels and $\delta^{(L)} = a - y$,
as derived above. The next cell puts numbers on both formulas for our 3-2-1 network with the
squared-error loss $J=\frac{1}{2n}\sum_i (y_i-p_i)^2$.
:::
""")
code(r"""
Z1, H, z2 = forward_321(params, X3)
p, n = torch.sigmoid(z2), len(y3)
e = (y3 - p).unsqueeze(1)                                       # (n, 1) output error y - a
# the wrong formula, applied literally (mean over examples):
wrong_W2 = (e * H * (1 - H)).mean(dim=0, keepdim=True)          # (1, 2) uses a_{i-1} = h
wrong_W1 = (e * X3 * (1 - X3)).mean(dim=0).expand(2, 3)         # (2, 3) uses a_{i-1} = x
# the right formula: delta at the output, then backpropagated through W2 and ReLU'
d2 = -(e * (p * (1 - p)).unsqueeze(1)) / n                      # (n, 1)
right_W2 = d2.T @ H                                             # (1, 2)
right_W1 = ((d2 @ params["W2"]) * handson.nn.relu_grad(Z1)).T @ X3   # (2, 3)
# autograd on the squared-error loss
leaf = {name: p_.clone().requires_grad_(True) for name, p_ in params.items()}
(0.5 * ((y3 - torch.sigmoid(forward_321(leaf, X3)[2])) ** 2).mean()).backward()

for name, wrong, right in (("W2", wrong_W2, right_W2), ("W1", wrong_W1, right_W1)):
    print(f"dJ/d{name}  autograd:", leaf[name].grad.flatten().numpy().round(4))
    print(f"        right   :", right.flatten().numpy().round(4),
          f"(max abs difference {(right - leaf[name].grad).abs().max():.1e})")
    print(f"        wrong   :", wrong.flatten().numpy().round(4),
          f"(max abs difference {(wrong - leaf[name].grad).abs().max():.1e})")
""")
md(r"""
The right formula matches autograd to float64 rounding. The wrong one is off in every entry:
for the output weights it has the opposite sign and the wrong size, and for the hidden
weights it gives both hidden units the *same* gradient, because without $\mathbf{W}^{(2)}$ it
cannot know which unit matters how much, or that a unit whose ReLU is off gets no gradient
from that example at all.

## 6. A small MLP: hand-written backward pass vs autograd

The recursion generalizes to any depth. A **multilayer perceptron (MLP)** is a stack of
linear layers with an activation after every one but the last; `handson.nn.MLP(sizes,
activation="relu", init=None)` builds one as a `torch.nn.Module`. We take all 30 features and
the sizes $[30, 16, 8, 1]$. The hand-written version keeps every layer's pre-activations
$\mathbf{Z}^{(l)}$ and activations $\mathbf{A}^{(l)}$ from the forward pass and runs the
recursion of section 5 backwards:
""")
code(r"""
def mlp_loss_and_grads(params, X, y):
    # params: list of (W (out, in), b (out,)) per layer; ReLU hidden layers; one output logit
    A, Zs = [X], []                           # A[l] is the input of layer l
    for l, (W, b) in enumerate(params):
        Z = A[-1] @ W.T + b                   # (n, out_l)
        Zs.append(Z)
        A.append(handson.nn.relu(Z) if l < len(params) - 1 else Z)
    z = Zs[-1].squeeze(-1)                    # (n,) logits
    loss = handson.nn.bce_with_logits(z, y)
    D = ((torch.sigmoid(z) - y) / len(y)).unsqueeze(1)          # (n, 1) dJ/dZ of the last layer
    grads = [None] * len(params)
    for l in reversed(range(len(params))):
        W, _ = params[l]
        grads[l] = (D.T @ A[l], D.sum(dim=0))                   # dJ/dW (out, in), dJ/db (out,)
        if l > 0:
            D = (D @ W) * handson.nn.relu_grad(Zs[l - 1])       # (n, in_l) dJ/dZ one layer down
    return loss, grads


sizes = [30, 16, 8, 1]
seed.set_seed(0)
# float64 for this comparison, so that the two copies can only differ by rounding at 1e-16
model = handson.nn.MLP(sizes, activation="relu", init="he").double()
print(model)
X_train64, y_train64, X_val64, y_val64 = X_train.double(), y_train.double(), X_val.double(), y_val.double()
hand_params = [(layer.weight.detach().clone(), layer.bias.detach().clone()) for layer in model.layers]
loss, grads = mlp_loss_and_grads(hand_params, X_train64, y_train64)
F.binary_cross_entropy_with_logits(model(X_train64).squeeze(-1), y_train64).backward()
diff = max((g - p.grad).abs().max().item() for (gW, gb), layer in zip(grads, model.layers)
           for g, p in ((gW, layer.weight), (gb, layer.bias)))
model.zero_grad()
print(f"initial loss {loss.item():.4f} | all gradients, hand vs autograd: max abs difference {diff:.1e}")
""")
md(r"""
One backward pass through a 3-layer network agrees with autograd to float64 rounding. Now
train both copies, starting from the same weights, with plain stochastic gradient descent
$\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$ on minibatches of 32 in the same
shuffled order. The hand-written copy gets the one bare training loop of the book; the
autograd copy gets the book's `handson.train.fit`.
""")
code(r"""
num_epochs, lr, batch_size = scale.pick(smoke=3, cpu=60, gpu=60), 0.1, 32


def make_loader(X, y, shuffle, dtype=torch.float32):
    dataset = torch.utils.data.TensorDataset(X.to(dtype), y.to(dtype))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=torch.Generator().manual_seed(0))


train_loader = make_loader(X_train64, y_train64, True, torch.float64)
history_hand = {"epoch": [], "train_loss": [], "val_loss": []}
for epoch in tqdm(range(1, num_epochs + 1), desc="hand-written backprop"):
    total, count = 0.0, 0
    for Xb, yb in train_loader:               # Xb: (batch_size, 30), yb: (batch_size,)
        loss, grads = mlp_loss_and_grads(hand_params, Xb, yb)
        for (W, b), (dW, db) in zip(hand_params, grads):
            W -= lr * dW                      # the SGD step, in place
            b -= lr * db
        total, count = total + loss.item() * len(yb), count + len(yb)
    history_hand["epoch"].append(epoch)
    history_hand["train_loss"].append(total / count)
    history_hand["val_loss"].append(mlp_loss_and_grads(hand_params, X_val64, y_val64)[0].item())
""")
md(r"""
The bar shows the hand-written loop finishing. The autograd copy gets a fresh loader with
the same seed, so it sees exactly the same batches in the same order:
""")
code(r"""
def bce_loss(logits, y):
    return F.binary_cross_entropy_with_logits(logits.squeeze(-1), y)   # logits: (n, 1), y: (n,)


optimizer = torch.optim.SGD(model.parameters(), lr=lr)
history = train.fit(model, make_loader(X_train64, y_train64, True, torch.float64), bce_loss, optimizer,
                    num_epochs, val_loader=make_loader(X_val64, y_val64, False, torch.float64),
                    device=cpu, amp=False,
                    metrics={"accuracy": metrics.accuracy})
curve_diff = max(np.abs(np.array(history[key]) - np.array(history_hand[key])).max()
                 for key in ("train_loss", "val_loss"))
print(f"train and val loss curves, hand-written vs autograd: max abs difference {curve_diff:.1e}")
print(f"after {num_epochs} epochs: train loss {history['train_loss'][-1]:.4f}, "
      f"val loss {history['val_loss'][-1]:.4f}, val accuracy {history['val_accuracy'][-1]:.3f}")
""")
md(r"""
Over all epochs the two runs never differ by more than about $10^{-16}$ in loss: the
remaining gap is float64 rounding, because autograd adds up the same products in a
slightly different order. (In float32 the same two runs drift apart to about $10^{-2}$ after
60 epochs: rounding differences of $10^{-7}$ grow step by step, since each SGD step feeds on the
weights of the previous one. Exact comparisons of two training runs need float64.) The network classifies about 99% of the validation masses
correctly. Plotted, the curves lie on top of each other:
""")
code(r"""
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for key, color in (("train_loss", "C0"), ("val_loss", "C1")):
    ax.plot(history["epoch"], history[key], color=color, lw=5, alpha=0.35, label=f"{key}, autograd + fit")
    ax.plot(history_hand["epoch"], history_hand[key], color=color, ls="--", label=f"{key}, hand-written")
ax.set(xlabel="epoch", ylabel="binary cross-entropy", yscale="log")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
""")
md(r"""
Each dashed hand-written curve runs exactly inside the broad autograd curve of the same
colour. The training loss keeps falling, while the validation loss flattens out after
roughly 20 epochs: the point where more epochs stop helping on unseen data.
From now on the book lets autograd do this work; what it computes is what we just wrote.

## 7. Vanishing gradients and initialization

Backpropagation multiplies by $\mathbf{W}^{(l)}$ and by $f'(\mathbf{Z}^{(l-1)})$ once per
layer. If those factors are typically smaller than one, the gradient shrinks geometrically
on its way down to the first layers, which then barely learn: the **vanishing gradient**
problem ([Bengio et al. 1994](ref-bengio1994)). If they are larger than one it grows
geometrically instead (**exploding gradients**). The sigmoid is the classic culprit, since
$\sigma'(z)\le\tfrac14$ everywhere.

We build nets with 12 hidden layers (6 at `smoke` scale) of 64 units, run one backward
pass on the training set, and record the norm $\lVert\partial J/\partial\mathbf{W}^{(l)}\rVert$ of
every layer's weight gradient with `handson.nn.layer_grad_norms`:
""")
code(r"""
depth, width = scale.pick(smoke=6, cpu=12, gpu=12), 64
configs = [("sigmoid", None), ("sigmoid", "xavier"), ("tanh", "xavier"), ("relu", None), ("relu", "he")]
grad_norms = {}
for activation, init in configs:
    seed.set_seed(0)
    net = handson.nn.MLP([30] + [width] * depth + [1], activation=activation, init=init)
    bce_loss(net(X_train), y_train.float()).backward()
    grad_norms[activation, init] = handson.nn.layer_grad_norms(net)   # input layer first

fig, ax = plt.subplots(figsize=(7, 4))
for (activation, init), norms in grad_norms.items():
    ax.plot(range(1, len(norms) + 1), norms, marker="o", ms=3,
            label=f"{activation}, {init or 'PyTorch default'} init")
    print(f"{activation:8s} {str(init):7s} first layer {norms[0]:.1e}, last layer {norms[-1]:.1e}")
ax.set(xlabel="layer (1 = next to the input)", ylabel="weight gradient norm", yscale="log")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
""")
md(r"""
Read the plot from right (output) to left (input). In the sigmoid nets the gradient shrinks
by a factor of roughly 4–8 per layer, so the first layer's gradient is about $10^{-10}$
(default init) or $10^{-7}$ (Xavier) of the last layer's: those layers will not move. The
ReLU net with PyTorch's default initialization also fades, by about 4 orders of magnitude.
Only **tanh with Xavier** and **ReLU with He** initialization keep every layer's gradient
within a factor of a few.

### Why these initializations

Take a layer $z_i = \sum_{j=1}^{n_\text{in}} W_{ij}a_j$ with independent zero-mean weights of
variance $v$, independent of the inputs. Then

$$
\operatorname{Var}(z_i) = n_\text{in}\, v\, \mathbb{E}[a_j^2].
$$

* **ReLU.** If the previous pre-activations are symmetric around zero, ReLU keeps half of their
  second moment: $\mathbb{E}[a^2] = \tfrac12\mathbb{E}[z_\text{prev}^2]$. The signal keeps its size
  from layer to layer when $n_\text{in} v / 2 = 1$, i.e. $v = 2/n_\text{in}$: **He
  initialization** ([He et al. 2015](ref-he2015)).
* **tanh.** Near zero $\tanh z\approx z$, so the forward pass needs $v = 1/n_\text{in}$ and the
  same argument for the backward pass needs $v = 1/n_\text{out}$; **Xavier (Glorot)
  initialization** ([Glorot & Bengio 2010](ref-glorot2010)) takes the compromise
  $v = 2/(n_\text{in}+n_\text{out})$. The sigmoid's slope at zero is $\tfrac14$, not $1$, which is
  why Xavier does not rescue it.
* **PyTorch's default** for `Linear` draws uniformly from $\pm 1/\sqrt{n_\text{in}}$, a variance
  of $v = 1/(3n_\text{in})$. For ReLU the per-layer factor is $n_\text{in}v/2 = 1/6$.

We check two things: that PyTorch's initializers have the variances of the formulas, and
that the second moment of the pre-activations after $L$ ReLU layers follows
$q_L = q_1\,(n_\text{in}v/2)^{L-1}$:
""")
code(r"""
fan_in, fan_out = 512, 256
W = torch.empty(fan_out, fan_in)
torch.nn.init.kaiming_normal_(W, nonlinearity="relu")
print(f"He:     std {W.std():.5f} vs sqrt(2/fan_in)            = {math.sqrt(2 / fan_in):.5f}")
torch.nn.init.xavier_normal_(W)
print(f"Xavier: std {W.std():.5f} vs sqrt(2/(fan_in+fan_out)) = {math.sqrt(2 / (fan_in + fan_out)):.5f}")

num_layers, n = 30, 256
for name, v in (("He", 2 / n), ("PyTorch default", 1 / (3 * n))):
    ratios = []
    for trial in range(5):                          # 5 random networks: the ratio is itself random
        seed.set_seed(trial)
        a, q = torch.randn(512, n), []              # a: (batch_size, n)
        for _ in range(num_layers):
            z = a @ (torch.randn(n, n) * math.sqrt(v)).T
            q.append(z.pow(2).mean().item())
            a = torch.relu(z)
        ratios.append(q[-1] / q[0])
    predicted = (n * v / 2) ** (num_layers - 1)
    print(f"{name:16s} q_30 / q_1 predicted {predicted:.1e}, measured in 5 networks: "
          + ", ".join(f"{r:.1e}" for r in ratios))
""")
md(r"""
PyTorch's initializers have the standard deviations of the formulas (to sampling noise,
about $0.1\%$ here). Through 30 ReLU layers the He-initialized signal keeps its order of
magnitude: the ratio is not exactly 1 but scatters around it (between about 0.35 and 1 in five random networks),
because each layer multiplies the second moment by a *random* factor close to 1 and 29 such
factors wander. The default initialization shrinks it by the predicted
$6^{-29}\approx 3\times10^{-23}$, give or take the same factor-of-a-few scatter: the variance
argument predicts the measured numbers.

The scale of the weights is the knob. Multiply He's standard deviation by a **gain** $g$: each
ReLU layer then multiplies the signal's second moment by $g^2$, in the forward and the backward
pass alike. Three gains for a 20-layer ReLU net:
""")
code(r"""
def gain_grad_norms(gain, depth, activation="relu"):
    seed.set_seed(0)
    net = handson.nn.MLP([30] + [width] * depth + [1], activation=activation, init="he")
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(gain)          # std = gain * sqrt(2 / fan_in)
    bce_loss(net(X_train), y_train.float()).backward()
    return handson.nn.layer_grad_norms(net)


gain_depth = scale.pick(smoke=8, cpu=20, gpu=20)
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for gain in (0.7, 1.0, 1.4):
    norms = gain_grad_norms(gain, gain_depth)
    ax.plot(range(1, len(norms) + 1), norms, marker="o", ms=3, label=f"gain {gain}")
ax.set(xlabel="layer (1 = next to the input)", ylabel="weight gradient norm", yscale="log",
       title=f"ReLU net, {gain_depth} hidden layers, std = gain x sqrt(2/fan_in)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
""")
md(r"""
With gain $0.7$ the gradients shrink towards the input, with gain $1.4$ they grow, and only
the He scale (gain 1) keeps them roughly level; over 20 layers a gain off by 40% already
means orders of magnitude. Try other depths, gains and activations with the sliders (they need a
running kernel; the website shows the first setting):
""")
code(r"""
def explore(gain=1.0, depth=20, activation="relu"):
    norms = gain_grad_norms(gain, depth, activation)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(range(1, len(norms) + 1), norms, marker="o", ms=3)
    ax.set(xlabel="layer (1 = next to the input)", ylabel="weight gradient norm", yscale="log",
           title=f"{activation}, {depth} hidden layers, gain {gain:.1f}")
    ax.grid(alpha=0.3)
    plt.show()


widgets.interact(explore,
                 gain=widgets.FloatSlider(value=1.0, min=0.5, max=2.0, step=0.1, description="gain"),
                 depth=widgets.IntSlider(value=20, min=2, max=40, description="depth"),
                 activation=widgets.Dropdown(options=["relu", "tanh", "sigmoid", "gelu"], value="relu"));
""")
md(r"""
Does this matter for training, or only for plots? Train a deep sigmoid net (default init)
and a deep ReLU net (He init), each with 8 hidden layers of 32 units (4 at `smoke` scale),
with the same SGD settings as before:
""")
code(r"""
deep_depth, deep_epochs = scale.pick(smoke=4, cpu=8, gpu=8), scale.pick(smoke=2, cpu=40, gpu=40)
deep_histories = {}
for activation, init in tqdm([("sigmoid", None), ("relu", "he")], desc="deep nets"):
    seed.set_seed(0)
    net = handson.nn.MLP([30] + [32] * deep_depth + [1], activation=activation, init=init)
    deep_histories[activation] = train.fit(
        net, make_loader(X_train, y_train, True), bce_loss, torch.optim.SGD(net.parameters(), lr=lr),
        deep_epochs, val_loader=make_loader(X_val, y_val, False), device=cpu, amp=False,
        metrics={"accuracy": metrics.accuracy}, progress=False)

fig, ax = plt.subplots(figsize=(6.5, 3.6))
for activation, hist in deep_histories.items():
    ax.plot(hist["epoch"], hist["val_loss"], marker="o", ms=3, label=f"{activation}: validation loss")
    print(f"{activation:8s} val loss {hist['val_loss'][-1]:.4f}, val accuracy {hist['val_accuracy'][-1]:.3f}")
ax.set(xlabel="epoch", ylabel="binary cross-entropy")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
""")
md(r"""
The deep sigmoid net is stuck: its validation loss stays at about $0.66$, the loss of always
predicting the base rate of 37% malignant, and its accuracy of 63% is what "always benign"
scores. Its first layers receive almost no gradient, so nothing below the top layer learns.
The equally deep ReLU net with He initialization reaches about 99% validation accuracy. Deep
networks became trainable thanks to activations that pass gradients on, initializations
that keep their scale, and later (chapters to come) normalization layers and residual
connections.

## 8. Classification metrics by hand

Back to the MLP of section 6. On the **test set**, used once, count the four outcomes with
malignant as the positive class: true positives $TP$ (malignant, flagged), false positives $FP$
(benign, flagged), false negatives $FN$ (malignant, missed) and true negatives $TN$. The
prediction is "malignant" when $p>0.5$, i.e. when the logit is positive.
""")
code(r"""
logits_test, targets_test = train.predict(model, make_loader(X_test, y_test, False, torch.float64), device=cpu)
pred = (logits_test.squeeze(-1) > 0).long()      # (n_test,)  p > 0.5  <=>  logit > 0
truth = targets_test.long()                      # (n_test,)
tp = int(((pred == 1) & (truth == 1)).sum())
fp = int(((pred == 1) & (truth == 0)).sum())
fn = int(((pred == 0) & (truth == 1)).sum())
tn = int(((pred == 0) & (truth == 0)).sum())
cm = np.array([[tn, fp], [fn, tp]])              # rows: true class, columns: predicted class
print(f"TP {tp}  FP {fp}  FN {fn}  TN {tn} | equals handson.metrics.confusion_matrix: "
      f"{np.array_equal(cm, metrics.confusion_matrix(truth, pred, num_classes=2))}")
fig = plot.plot_confusion_matrix(cm, ["benign", "malignant"])
""")
md(r"""
The diagonal holds the correct decisions, and the two off-diagonal cells are the two kinds of error,
which matter very differently here: a false negative is a missed cancer, a false positive an
unnecessary follow-up. The four standard summaries are

$$
\text{accuracy} = \frac{TP+TN}{TP+FP+FN+TN},\quad
\text{precision} = \frac{TP}{TP+FP},\quad
\text{recall} = \frac{TP}{TP+FN},\quad
F_1 = \frac{2\cdot\text{precision}\cdot\text{recall}}{\text{precision}+\text{recall}} = \frac{2TP}{2TP+FP+FN}.
$$

Precision asks "of the masses we flagged, how many were malignant?", recall asks "of the
malignant masses, how many did we flag?", and $F_1$ is their harmonic mean, high only when both
are. We check our four numbers against scikit-learn:
""")
code(r"""
accuracy = (tp + tn) / (tp + fp + fn + tn)
precision = tp / (tp + fp)
recall = tp / (tp + fn)
f1 = 2 * precision * recall / (precision + recall)
ours = np.array([accuracy, precision, recall, f1])
sk = np.array([skm.accuracy_score(truth, pred), skm.precision_score(truth, pred),
               skm.recall_score(truth, pred), skm.f1_score(truth, pred)])
for name, value in zip(("accuracy", "precision", "recall", "F1"), ours):
    print(f"{name:9s} {value:.4f}")
print(f"max abs difference to scikit-learn: {np.abs(ours - sk).max():.1e}")
""")
md(r"""
The formulas reproduce scikit-learn exactly. PLACEHOLDER_METRICS

## Summary

* A neuron computes $z=\mathbf{w}^\top\mathbf{x}+b$ and $a=f(z)$; a layer on a minibatch is one matrix
  product $\mathbf{X}\mathbf{W}^\top+\mathbf{b}$, with $\mathbf{W}$ stored `(out, in)` as in `torch.nn.Linear`.
* Nonlinear activations (ReLU, sigmoid, tanh, GELU) make depth useful; their derivatives decide how
  gradients flow, and the sigmoid's is at most $\tfrac14$.
* Cross-entropy must be computed from logits with the log-sum-exp trick (or its binary form
  $\max(z,0)-yz+\log(1+e^{-|z|})$); naive formulas return `inf` or `nan` for large logits, and
  softmax must not be applied before `F.cross_entropy`.
* Backpropagation is the chain rule applied layer by layer: $\partial J/\partial\mathbf{W}^{(l)} = \boldsymbol\Delta^{(l)\top}\mathbf{A}^{(l-1)}$ and
  $\boldsymbol\Delta^{(l-1)} = (\boldsymbol\Delta^{(l)}\mathbf{W}^{(l)})\odot f'(\mathbf{Z}^{(l-1)})$; for a sigmoid output with
  cross-entropy, $\delta = p-y$.
* Hand-written gradients can and should be checked against autograd and float64 central differences
  (`handson.nn.numerical_gradient`); training with them reproduces autograd's curves to float32 rounding.
* Deep sigmoid nets suffer vanishing gradients; He ($v=2/n_\text{in}$, ReLU) and Xavier ($v=2/(n_\text{in}+n_\text{out})$, tanh)
  initialization keep the signal's scale from layer to layer.
* Accuracy, precision, recall and $F_1$ all come from the confusion matrix; with unequal costs of errors,
  precision and recall say more than accuracy.

## Exercises

:::{exercise} Forward pass of a tiny network
:label: ch01-ex1
A 3-2-1 network has input $\mathbf{x} = (1, -2, 0.5)$, hidden weights
$\mathbf{W}^{(1)} = \begin{pmatrix}0.5 & -0.25 & 1\\ -1 & 0.5 & 2\end{pmatrix}$, hidden biases
$\mathbf{b}^{(1)} = (0.1, -0.2)$, ReLU hidden units, output weights $\mathbf{W}^{(2)} = (1.5, -2)$,
output bias $b^{(2)} = 0.25$ and a sigmoid output. What probability $p$ does it output?
:::
""")
code(r"""
answer = None  # your answer: the output probability p, a float
handson.check.nn.forward_pass(answer)
""")
md(r"""
:::{solution} ch01-ex1
:class: dropdown
$\mathbf{z}^{(1)} = (0.5 + 0.5 + 0.5 + 0.1,\; -1 - 1 + 1 - 0.2) = (1.6, -1.2)$, so
$\mathbf{h} = (1.6, 0)$: the second hidden unit is off. Then $z^{(2)} = 1.5\cdot1.6 - 2\cdot0 + 0.25 = 2.65$
and $p = \sigma(2.65) = 1/(1+e^{-2.65}) \approx 0.9340$.
```python
x = torch.tensor([1.0, -2.0, 0.5])
W1, b1 = torch.tensor([[0.5, -0.25, 1.0], [-1.0, 0.5, 2.0]]), torch.tensor([0.1, -0.2])
W2, b2 = torch.tensor([[1.5, -2.0]]), torch.tensor([0.25])
answer = torch.sigmoid(W2 @ torch.relu(W1 @ x + b1) + b2).item()   # 0.9340
```
:::

:::{exercise} One gradient by hand
:label: ch01-ex2
For the same network, the true label is $y=0$ (benign) and the loss is the binary
cross-entropy $J = -\log(1-p)$. Compute $\partial J/\partial W^{(1)}_{0,2}$, the derivative with
respect to the weight from the third input to the first hidden unit (indices from 0, as in
PyTorch), using the chain rule.
:::
""")
code(r"""
answer = None  # your answer: dJ/dW1[0, 2], a float
handson.check.nn.backprop_gradient(answer)
""")
md(r"""
:::{solution} ch01-ex2
:class: dropdown
Backwards through the network: $\partial J/\partial z^{(2)} = p - y = 0.9340$;
$\partial J/\partial h_0 = 0.9340 \cdot W^{(2)}_{0,0} = 0.9340\cdot 1.5 = 1.4010$;
ReLU is on for unit 0 ($z^{(1)}_0 = 1.6 > 0$), so $\partial J/\partial z^{(1)}_0 = 1.4010$; finally
$\partial J/\partial W^{(1)}_{0,2} = 1.4010\cdot x_2 = 1.4010\cdot0.5 \approx 0.7005$.
(Every gradient in the second row of $\mathbf{W}^{(1)}$ is $0$: that unit's ReLU is off.)
```python
p = 1 / (1 + math.exp(-2.65))
answer = (p - 0) * 1.5 * 1.0 * 0.5   # 0.7005
```
:::

:::{exercise} A softmax that never overflows
:label: ch01-ex3
Write `stable_softmax(z)` that returns the softmax over the last dimension of a
`(batch_size, num_classes)` tensor and works for logits as large as $10^5$.
:::
""")
code(r"""
def stable_softmax(z):
    # z: (batch_size, num_classes) -> probabilities of the same shape, rows summing to 1
    raise NotImplementedError


handson.check.nn.stable_softmax(stable_softmax)
""")
md(r"""
:::{solution} ch01-ex3
:class: dropdown
Subtracting the row maximum does not change the softmax (the factor $e^{-m}$ cancels between
numerator and denominator) and makes the largest exponent $e^0=1$.
```python
def stable_softmax(z):
    e = torch.exp(z - z.amax(dim=-1, keepdim=True))   # (batch_size, num_classes), all <= 1
    return e / e.sum(dim=-1, keepdim=True)
```
:::

:::{exercise} F1 from counts
:label: ch01-ex4
A screening model flags 42 masses as malignant, of which 38 really are; it misses 5
malignant masses. What is its $F_1$ score?
:::
""")
code(r"""
answer = None  # your answer: F1, a float between 0 and 1
handson.check.nn.f1_from_counts(answer, tp=38, fp=4, fn=5)
""")
md(r"""
:::{solution} ch01-ex4
:class: dropdown
$TP = 38$, $FP = 42 - 38 = 4$, $FN = 5$. Precision $= 38/42 = 0.9048$, recall $= 38/43 = 0.8837$,
$F_1 = 2TP/(2TP+FP+FN) = 76/85 \approx 0.8941$. The number of true negatives is not needed.
```python
tp, fp, fn = 38, 4, 5
answer = 2 * tp / (2 * tp + fp + fn)   # 0.8941
```
:::

:::{exercise} The gradient of softmax cross-entropy
:label: ch01-ex5
Show that for one example $\partial\ell/\partial z_k = p_k - \mathbf{1}[k=y]$, where
$\ell = \log\sum_j e^{z_j} - z_y$ and $\mathbf{p}=\mathrm{softmax}(\mathbf{z})$. Then write
`softmax_ce_grad(logits, targets)` that returns $\partial J/\partial\,\texttt{logits}$ for the
**batch mean** $J$, without autograd. (This is the categorical version of $\delta = p-y$.)
:::
""")
code(r"""
def softmax_ce_grad(logits, targets):
    # logits: (batch_size, num_classes), targets: (batch_size,) -> dJ/dlogits: (batch_size, num_classes)
    raise NotImplementedError


handson.check.nn.softmax_ce_grad(softmax_ce_grad)
""")
md(r"""
:::{solution} ch01-ex5
:class: dropdown
$\partial/\partial z_k \log\sum_j e^{z_j} = e^{z_k}/\sum_j e^{z_j} = p_k$ and
$\partial z_y/\partial z_k = \mathbf{1}[k=y]$, so $\partial\ell/\partial z_k = p_k - \mathbf{1}[k=y]$.
The mean over $N$ examples divides every row by $N$.
```python
def softmax_ce_grad(logits, targets):
    grad = torch.softmax(logits, dim=-1)                 # (batch_size, num_classes)
    grad[torch.arange(len(targets)), targets] -= 1       # subtract the one-hot targets
    return grad / len(targets)
```
:::

## Provenance
""")
code(r"""
handson.provenance.report(test_accuracy=accuracy, test_precision=precision, test_recall=recall,
                          test_f1=f1, val_accuracy=history["val_accuracy"][-1],
                          hand_vs_autograd_curve_max_diff=f"{curve_diff:.1e}", num_epochs=num_epochs)
""")

write_notebook(cells, "01_neural_networks.ipynb")

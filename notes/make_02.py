"""Generate notebooks/02_optimization.ipynb from the cell sources below.

Run:  .venv/bin/python notes/make_02.py
Then execute it at cpu scale (see the chapter standard) so the stored outputs are real.
"""
from nbtools import SETUP, Chapter

ch = Chapter()
md, code = ch.md, ch.code

# ----------------------------------------------------------------------------- opening
md(r"""
# 2. Optimization: from gradient descent to AdamW and learning-rate schedules

[Chapter 1](01_neural_networks.ipynb) showed how to compute the gradient of a loss. This chapter
is about what to do with it. Every optimizer used to train large models is a small variation on
"step against the gradient". Each variation fixes a specific failure, and we build each one from
scratch and check it against PyTorch. By the end you will be able to

* run **gradient descent** by hand, predict from a closed form whether it converges, oscillates or
  diverges, and read the largest stable learning rate off the curvature;
* explain what a **mini-batch gradient** estimates, measure its noise, and weigh batch size against
  steps and wall time;
* write **SGD with momentum** (and Nesterov), **Adam** with bias correction and **AdamW** as
  `torch.optim.Optimizer` subclasses that match PyTorch step for step;
* tell an **L2 penalty** from **decoupled weight decay**, and show why the two are the same for SGD
  but not for Adam;
* write the common **learning-rate schedules** (step, exponential, cosine, warmup, one-cycle), pick
  one for a training budget, and **clip gradients** to tame a run that explodes.

**Prerequisites:** [Chapter 1](01_neural_networks.ipynb) (losses, backpropagation, the MLP) and
[Chapter 0](00_using_this_book.ipynb) (scales and the training loop `handson.train.fit`); eigenvalues
of a symmetric matrix, for section 1 and section 5.
""")
code(SETUP)
md(r"""
The stored outputs on this page come from the `cpu` scale on a 2-core machine without a GPU.
We use two real data sets. The **digits** images ship with scikit-learn and are small enough to
train on thousands of times in seconds. A **CIFAR-10** subset is hard enough that the
learning-rate schedule visibly matters.
""")
code(r"""
import inspect
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from handson import data, metrics, plot, seed, train
from handson import optim as ho

torch.set_printoptions(precision=4, sci_mode=False)
torch.set_num_threads(1)    # tiny models: one thread avoids synchronization overhead and keeps timings steady
cpu = torch.device("cpu")   # the small models of this chapter are fastest on the CPU
""")

# ----------------------------------------------------------------------------- 1 GD
md(r"""
## 1. Gradient descent

Training means minimizing a loss $J(\theta)$ over the parameters $\theta$. **Gradient descent**
repeats one update:

$$
\theta_{t+1} = \theta_t - \alpha\,\nabla J(\theta_t),
$$

where $t = 0, 1, 2, \dots$ counts steps, $\nabla J(\theta_t)$ is the gradient at the current point,
and $\alpha > 0$ is the **learning rate**. The gradient points uphill, so a small enough step
against it lowers the loss.

Start with one parameter and the loss $J(\theta) = (\theta - 1)^2$, whose minimum is at
$\theta^\ast = 1$. Its derivative is $J'(\theta) = 2(\theta - 1)$. From $\theta_0 = 2$ with
$\alpha = 0.1$, the gradient is $J'(2) = 2$, so

$$
\theta_1 = 2 - 0.1 \cdot 2 = 1.8 .
$$

Autograd agrees:
""")
code(r"""
# NBVAL_CHECK_OUTPUT
theta = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
loss = (theta - 1) ** 2
loss.backward()                                   # autograd: dJ/dtheta at theta = 2
print(f"J(2) = {loss.item():.4f} | gradient by hand 2 * (2 - 1) = 2, by autograd {theta.grad.item():.4f}")
with torch.no_grad():
    theta -= 0.1 * theta.grad                     # one gradient-descent step
print(f"after one step with alpha = 0.1: theta_1 = {theta.item():.4f}, J = {(theta.item() - 1) ** 2:.4f}")
""")
md(r"""
One step moved $\theta$ from $2$ to $1.8$, and the loss fell from $1$ to $0.8^2 = 0.64$.

### The closed form

For this loss we can solve the whole run. Subtract $\theta^\ast = 1$ from both sides of the update:

$$
\theta_{t+1} - 1 = (\theta_t - 1) - 2\alpha(\theta_t - 1) = (1 - 2\alpha)(\theta_t - 1)
\quad\Longrightarrow\quad
\theta_t - 1 = (1 - 2\alpha)^t\,(\theta_0 - 1).
$$

Each step multiplies the distance to the minimum by the same factor $r = 1 - 2\alpha$. We check the
formula against a loop for five learning rates:
""")
code(r"""
def gd_on_parabola(lr, steps, theta0=2.0):
    # gradient descent on J(theta) = (theta - 1)^2; returns theta_0, ..., theta_steps
    thetas = [theta0]
    for _ in range(steps):
        thetas.append(thetas[-1] - lr * 2 * (thetas[-1] - 1))
    return np.array(thetas)


t = np.arange(31)
for lr in (0.1, 0.5, 0.9, 1.0, 1.05):
    loop = gd_on_parabola(lr, 30)
    closed = 1 + (1 - 2 * lr) ** t * (2.0 - 1)
    rel = np.abs(loop - closed).max() / np.abs(closed).max()
    print(f"alpha = {lr:4.2f}: factor 1 - 2 alpha = {1 - 2 * lr:+.2f}, theta_30 = {loop[-1]:9.4f} | "
          f"loop vs closed form: max relative difference {rel:.1e}")
""")
md(r"""
The loop and the formula agree to float64 rounding, about $10^{-16}$. The factor $r = 1 - 2\alpha$
decides everything. Gradient descent converges exactly when $|1 - 2\alpha| < 1$, that is for
$0 < \alpha < 1$:

* $0 < \alpha < 0.5$: $0 < r < 1$, and $\theta_t$ creeps towards $1$ from one side;
* $\alpha = 0.5$: $r = 0$, and the first step lands exactly on the minimum;
* $0.5 < \alpha < 1$: $-1 < r < 0$, and $\theta_t$ jumps across the minimum every step but still converges;
* $\alpha = 1$: $r = -1$, and $\theta_t$ bounces between $2$ and $0$ forever;
* $\alpha > 1$: $|r| > 1$, and every step overshoots further, so the run **diverges**.

With $\alpha = 1.05$, after 30 steps the distance has grown to $1.1^{30} \approx 17$. Plotted:
""")
code(r"""
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for lr in (0.1, 0.4, 0.5, 0.9, 1.0, 1.05):
    thetas = gd_on_parabola(lr, 30)
    ax1.plot(thetas, marker="o", ms=2.5, label=f"alpha = {lr}")
    ax2.plot(np.abs(thetas - 1) + 1e-17, marker="o", ms=2.5, label=f"alpha = {lr}")
ax1.set(xlabel="step t", ylabel=r"$\theta_t$", ylim=(-1.5, 3.5), title="the parameter")
ax2.set(xlabel="step t", ylabel=r"$|\theta_t - 1|$ (log scale)", yscale="log", ylim=(1e-17, 1e2),
        title="distance to the minimum")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
ax2.legend(fontsize=8, ncol=2)
fig.tight_layout()
""")
md(r"""
On the log scale the distances are straight lines with slope $\log|1 - 2\alpha|$. The lines for
$\alpha = 0.1$ and $\alpha = 0.9$ fall at the same rate, because $|r| = 0.8$ for both: one
approaches from the right, the other jumps from side to side. $\alpha = 0.5$ reaches the minimum
in one step, so its curve drops off the plot. $\alpha = 1$ stays flat, and $\alpha = 1.05$ rises.
Drag the slider to try other values. The slider needs a running kernel; the website shows
$\alpha = 0.1$.
""")
code(r"""
def show_gd(lr=0.1):
    thetas = gd_on_parabola(lr, 12)
    grid = np.linspace(-1.5, 3.5, 200)
    shown = np.clip(thetas, -1.5, 3.5)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
    ax1.plot(grid, (grid - 1) ** 2, color="gray")
    ax1.plot(shown, (shown - 1) ** 2, "o-", color="C3", ms=4)
    ax1.set(xlabel=r"$\theta$", ylabel=r"$J(\theta)$", ylim=(-0.2, 6.5),
            title=f"alpha = {lr:.2f}: factor 1 - 2 alpha = {1 - 2 * lr:+.2f}")
    ax2.plot(thetas - 1, "o-", color="C3", ms=4)
    ax2.axhline(0, color="gray", lw=0.5)
    ax2.set(xlabel="step t", ylabel=r"$\theta_t - 1$")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    plt.show()


display(widgets.interactive(show_gd, lr=widgets.FloatSlider(value=0.1, min=0.02, max=1.1, step=0.02,
                                                            description="alpha")))
""")
md(r"""
### More parameters: the curvature sets the largest learning rate

Near a minimum $\theta^\ast$, any smooth loss looks like a quadratic
$J(\theta) \approx J(\theta^\ast) + \tfrac12(\theta - \theta^\ast)^\top \mathbf{H}\,(\theta - \theta^\ast)$,
where $\mathbf{H}$ is the **Hessian**, the matrix of second derivatives. Its gradient is
$\mathbf{H}(\theta - \theta^\ast)$. Write the error $\theta_t - \theta^\ast$ in the eigenvectors of $\mathbf{H}$.
Each step then multiplies the component along eigenvector $i$ by $(1 - \alpha\lambda_i)$, where
$\lambda_i$ is its eigenvalue, the **curvature** in that direction. Every component shrinks
exactly when

$$
\alpha < \frac{2}{\lambda_{\max}} .
$$

Our parabola has $\mathbf{H} = 2$, which gives $\alpha < 1$ as before. To check the bound we find
the largest convergent $\alpha$ by bisection, by running gradient descent, for a $2\times2$ Hessian:
""")
code(r"""
H = np.array([[3.0, 1.0], [1.0, 2.0]])            # symmetric, eigenvalues (5 +- sqrt 5) / 2


def converges(lr, steps=3000):
    x = np.array([1.0, -0.5])                      # theta - theta*
    for _ in range(steps):
        x = x - lr * H @ x                         # gradient step on 1/2 x^T H x
        if np.linalg.norm(x) > 1e6:                # clearly diverging: stop before overflow
            return False
    return np.linalg.norm(x) < np.linalg.norm([1.0, -0.5])


low, high = 0.0, 2.0
for _ in range(40):
    mid = (low + high) / 2
    low, high = (mid, high) if converges(mid) else (low, mid)
lam_max = np.linalg.eigvalsh(H).max()
print(f"bisection: converges up to alpha = {low:.5f} | formula 2 / lambda_max = {2 / lam_max:.5f}")
""")
md(r"""
The run-based boundary matches $2/\lambda_{\max}$ to the resolution of a 3000-step test. The
**sharpest** direction limits the learning rate. The **flattest** direction, with factor
$1 - \alpha\lambda_{\min}$, then decides how slowly the run converges. Their ratio
$\kappa = \lambda_{\max}/\lambda_{\min}$ is the **condition number**, and section 5 races
optimizers on a landscape with a large one.
""")

# ----------------------------------------------------------------------------- 2 minibatch
md(r"""
## 2. Full-batch, mini-batch and stochastic gradients

A training loss is an average over $N$ examples, $J(\theta) = \frac1N\sum_{i=1}^N \ell_i(\theta)$,
where $\ell_i$ is the loss of example $i$. Its gradient $g = \frac1N\sum_i \nabla\ell_i$ costs a pass over
the whole data set. A **mini-batch** of $B$ examples drawn at random (without replacement) gives the
estimate

$$
g_B = \frac1B\sum_{i\in\text{batch}} \nabla\ell_i, \qquad \mathbb{E}[g_B] = g .
$$

The estimate is unbiased: on average it points the right way, at $B/N$ of the cost. $B = N$ is
**full-batch** gradient descent. $B = 1$ is the original **stochastic gradient descent**
([Robbins & Monro 1951](ref-robbins1951)); in deep learning "SGD" means any batch size. The price
is noise. Let $\sigma^2 = \frac1N\sum_i \lVert\nabla\ell_i - g\rVert^2$ be the spread of the
per-example gradients. Sampling without replacement then gives

$$
\mathbb{E}\,\lVert g_B - g\rVert^2 = \frac{N - B}{N - 1}\cdot\frac{\sigma^2}{B} .
$$

The noise falls like $1/B$, and it vanishes at $B = N$ (the factor $\frac{N-B}{N-1}$ is the
finite-population correction).

### The digits data

The **digits** data ([Alpaydin & Kaynak 1998](ref-alpaydin1998)) ships with scikit-learn, so it
needs no download. It holds 1,797 handwritten digits, each an $8\times8$ grid of pixel intensities
from 0 to 16, with labels 0 to 9. We split it 70/15/15, stratified, into train, validation and test
sets. Then we standardize every pixel with the training set's mean and standard deviation, as in
Chapter 1:
""")
code(r"""
digits = load_digits()                                        # shipped with scikit-learn: no download
X_digits = torch.tensor(digits.data, dtype=torch.float32)     # (1797, 64) intensities 0..16
y_digits = torch.tensor(digits.target)                        # (1797,) labels 0..9
train_idx, val_idx, test_idx = data.split_indices(digits.target, fractions=(0.7, 0.15, 0.15), seed=0)
mu = X_digits[train_idx].mean(0)
sd = X_digits[train_idx].std(0).clamp_min(1e-3)               # some corner pixels are always 0
Xd_train, Xd_val, Xd_test = ((X_digits[idx] - mu) / sd for idx in (train_idx, val_idx, test_idx))
yd_train, yd_val, yd_test = (y_digits[idx] for idx in (train_idx, val_idx, test_idx))
print("train / val / test:", len(yd_train), len(yd_val), len(yd_test))
plot.show_images(X_digits[:16].reshape(-1, 1, 8, 8) / 16, titles=[str(int(c)) for c in y_digits[:16]],
                 ncols=16, scale=0.8);
""")
md(r"""
There are 1,258 training images. At $8\times8$ pixels the digits are coarse but easy to read.
The model is a small MLP, $64 \to 64 \to 10$ with a ReLU. At its random initial weights we compute
all $N$ per-example gradients at once. `torch.func.grad` differentiates the loss of one example, and
`vmap` maps that over the batch. Their mean must be the full-batch gradient that autograd gives:
""")
code(r"""
def digits_mlp(hidden=64, depth=1):
    layers, width = [], 64
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))   # logits for 10 classes


seed.set_seed(0)
net = digits_mlp()
params = {name: p.detach() for name, p in net.named_parameters()}


def example_loss(params, x, y):                   # the loss of ONE example: x (64,), y ()
    logits = functional_call(net, params, (x.unsqueeze(0),))   # (1, 10)
    return F.cross_entropy(logits, y.unsqueeze(0))


per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))(params, Xd_train, yd_train)
N = len(yd_train)
G = torch.cat([g.reshape(N, -1) for g in per_example.values()], dim=1)   # (N, num_params)
g_full = G.mean(0)                                                       # (num_params,)
F.cross_entropy(net(Xd_train), yd_train).backward()
autograd_full = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
print(f"{G.shape[0]} per-example gradients of {G.shape[1]} numbers each")
print(f"their mean vs autograd's full-batch gradient: max abs difference {(g_full - autograd_full).abs().max():.1e}")
""")
md(r"""
The mean of the 1,258 per-example gradients is the full-batch gradient, up to float32 rounding.
A mini-batch gradient is therefore just the mean of $B$ rows of `G`. Now we draw many random
batches of each size, and compare the measured noise with the formula:
""")
code(r"""
sigma2 = (G - g_full).pow(2).sum(1).mean().item()        # spread of the per-example gradients
draws = scale.pick(smoke=50, cpu=400, gpu=400)
gen = torch.Generator().manual_seed(0)
noise_rows = []
for B in (1, 4, 16, 64, 256, 1024):
    errors, cosines = [], []
    for _ in range(draws):
        g_B = G[torch.randperm(N, generator=gen)[:B]].mean(0)
        errors.append((g_B - g_full).pow(2).sum().item())
        cosines.append(F.cosine_similarity(g_B, g_full, dim=0).item())
    predicted = (N - B) / (N - 1) * sigma2 / B
    noise_rows.append((B, np.mean(errors), predicted))
    print(f"B = {B:4d}: E||g_B - g||^2 measured {np.mean(errors):.3e}, formula {predicted:.3e} "
          f"(ratio {np.mean(errors) / predicted:.3f}) | mean cosine(g_B, g) = {np.mean(cosines):.3f}")
signal = g_full.pow(2).sum().item()
print(f"||g||^2 = {signal:.3e}; noise equals signal at B = sigma^2 / ||g||^2 = {sigma2 / signal:.1f}")
""")
md(r"""
The measured noise matches the formula within the Monte Carlo error of a few hundred draws: the
ratios lie within a few percent of 1. A single-example gradient ($B = 1$) points only loosely along
the true gradient (a cosine of about $0.16$), while with $B = 1024$ the cosine is almost 1. The last
line compares noise with signal. The noise $\sigma^2/B$ falls below the squared norm of the
gradient $\lVert g\rVert^2$ at about $B = 50$. Beyond that, each doubling of $B$ buys less and less
direction. [McCandlish et al. 2018](ref-mccandlish2018) call the ratio $\sigma^2/\lVert g\rVert^2$
the *gradient noise scale*, and show that it predicts the largest useful batch size. It grows as
training proceeds and the gradient shrinks.
""")
code(r"""
B_values, measured, formula = map(np.array, zip(*noise_rows))
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(B_values, formula, "-", color="C0", label=r"formula $\frac{N-B}{N-1}\,\sigma^2/B$")
ax.plot(B_values, measured, "o", color="C1", label="measured (random batches)")
ax.axhline(signal, color="gray", ls="--", label=r"signal $\|g\|^2$")
ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel=r"$E\,\|g_B - g\|^2$")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
""")
md(r"""
On log axes the noise is a line of slope $-1$ that bends down near $B = N$, where the correction
factor goes to zero.

### Batch size vs steps vs wall time

Does the noise matter for training? We train the same MLP from the same start with
$B = 1, 8, 64$ and $B = N$ (full batch), the same learning rate $\alpha = 0.05$ and the same number
of steps. Every 20 steps we measure the full training loss $J(\theta)$. `fit` evaluates once per
"epoch", so we give it a loader that yields 20 batches per epoch. A `RandomSampler` draws
$20B$ examples for it. With $B = N$ it repeats the whole training set, so each batch is exactly the
full batch.
""")
code(r"""
steps, eval_every = scale.pick(smoke=40, cpu=400, gpu=1000), 20
lr_digits = 0.05
train_set = torch.utils.data.TensorDataset(Xd_train, yd_train)
full_train_loader = torch.utils.data.DataLoader(train_set, batch_size=N)   # to measure J(theta)
batch_runs = {}
for B in tqdm((1, 8, 64, N), desc="batch sizes"):
    sampler = torch.utils.data.RandomSampler(train_set, num_samples=B * eval_every,
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(train_set, batch_size=B, sampler=sampler)   # 20 batches
    seed.set_seed(0)
    model = digits_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr_digits)
    batch_runs[B] = train.fit(model, loader, F.cross_entropy, optimizer, epochs=steps // eval_every,
                              val_loader=full_train_loader, device=cpu, progress=False)
for B, h in batch_runs.items():
    print(f"B = {B:4d}: J after {steps} steps = {h['val_loss'][-1]:.4f} | "
          f"{1000 * h['time_s'][-1] / steps:.2f} ms per step (with evaluation)")
""")
md(r"""
The next figure puts the same four runs on three axes: optimizer steps, examples processed
($B\times$ steps), and wall-clock time.
""")
code(r"""
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
for B, h in batch_runs.items():
    step_axis = np.array(h["epoch"]) * eval_every
    label = "full batch" if B == N else f"B = {B}"
    axes[0].plot(step_axis, h["val_loss"], label=label)
    axes[1].plot(step_axis * B, h["val_loss"], label=label)
    axes[2].plot(h["time_s"], h["val_loss"], label=label)
for ax, xlabel in zip(axes, ("optimizer steps", "examples processed (steps x B)", "wall time (s)")):
    ax.set(xlabel=xlabel, yscale="log")
    ax.grid(alpha=0.3)
axes[1].set_xscale("log")
axes[0].set_ylabel("training loss J (full training set)")
axes[0].legend()
fig.tight_layout()
""")
md(r"""
Each panel answers a different question.

* **Per step** (left), larger batches are better, but only up to a point. $B = 1$ is the worst and
  its curve is bumpy with noise, and $B = 8$ lags a little. $B = 64$, just above the noise scale of
  about 50, and the full batch of 1,258 lie on top of each other: a 20 times larger batch gives the
  same step.
* **Per example processed** (middle), small batches win by far. $B = 1$ gets the most out of each
  gradient it computes, and the full batch wastes most of its work.
* **Per second** (right), a small batch wins here: $B = 8$ reaches the lowest loss soonest. A step
  with $B = 1$ costs about as much time as one with $B = 8$, because for such a tiny model the fixed
  overhead of a step dominates, but it makes much less progress. The full batch pays for 1,258
  examples at every step. On a GPU the best batch is much larger, because a big batch costs little
  more time than a small one until the GPU is full.

In practice, take the largest batch that fits the hardware and does not exceed the noise scale by
much, and scale the learning rate with it. The *linear scaling rule* of
[Goyal et al. 2017](ref-goyal2017) multiplies $\alpha$ by $k$ when $B$ grows by $k$, with a warmup
(section 7). Noise is not only a cost, either. It lets SGD jump out of sharp minima, and small
batches are often credited with slightly better generalization.
""")

# ----------------------------------------------------------------------------- 3 momentum
md(r"""
## 3. Momentum and Nesterov

When the curvature differs a lot between directions, gradient descent zigzags across a steep
valley while it crawls along the flat floor. **Momentum** ([Polyak 1964](ref-polyak1964)) keeps a
running sum of past gradients, the **velocity** $v$, and steps along it:

$$
v_t = \beta\, v_{t-1} + g_t, \qquad \theta_t = \theta_{t-1} - \alpha\, v_t, \qquad v_0 = 0,
$$

with $g_t = \nabla J(\theta_{t-1})$ and momentum coefficient $0 \le \beta < 1$ (typically $0.9$).
This is exactly `torch.optim.SGD(momentum=beta)`. Unrolled,
$v_t = \sum_{k=1}^{t}\beta^{t-k} g_k$. Components that keep their sign add up, and for a constant
gradient $v_t = \frac{1-\beta^t}{1-\beta}\,g \to \frac{g}{1-\beta}$, ten times $g$ for $\beta = 0.9$.
Components that flip sign every step cancel. The valley floor gets a ten times larger step, and
the zigzag is damped. We check the unrolled sum against the recursion:
""")
code(r"""
beta, T = 0.9, 50
gs = torch.randn(T, dtype=torch.float64, generator=torch.Generator().manual_seed(0))   # g_1 .. g_T
v = torch.tensor(0.0, dtype=torch.float64)
for g in gs:
    v = beta * v + g
unrolled = sum(beta ** (T - k) * gs[k - 1] for k in range(1, T + 1))
print(f"recursion vs unrolled sum after {T} steps: abs difference {abs(v - unrolled):.1e}")
""")
md(r"""
The recursion and the sum agree to rounding.

:::{admonition} Common mistake
:class: warning
Many course notes and blog posts write momentum as an *average*,
$v \leftarrow \beta v + (1-\beta)\,g$, and present it as "SGD with momentum", the method behind
`torch.optim.SGD(momentum=0.9)`. It is not. The average converges to $g$, not to $g/(1-\beta)$, so
with the same $\alpha$ every step is $(1-\beta)$ times as long: **ten times shorter** at
$\beta = 0.9$. The two forms give the same run only if the learning rate is rescaled by
$1/(1-\beta)$. Copy a learning rate from a PyTorch recipe into the averaged form, and training
mysteriously crawls. (In PyTorch the averaged form is `dampening=beta`; the default is `dampening=0`.)
The cell below shows the step length, in units of $\alpha$, for a constant gradient $g = 1$.
:::
""")
code(r"""
# NBVAL_CHECK_OUTPUT
beta, g = 0.9, 1.0
v_sum = v_avg = 0.0
for t in range(1, 101):
    v_sum = beta * v_sum + g                   # PyTorch (Polyak)
    v_avg = beta * v_avg + (1 - beta) * g      # the averaged variant
    if t in (1, 10, 100):
        print(f"t = {t:3d}: step / alpha with v <- beta v + g: {v_sum:6.3f} | "
              f"with v <- beta v + (1 - beta) g: {v_avg:5.3f}")
""")
md(r"""
After 100 steps PyTorch's velocity is $10\,g$ and the averaged one is $1\,g$. At every step the
averaged step is exactly one tenth as long.

### Nesterov momentum

**Nesterov's** variant ([Nesterov 1983](ref-nesterov1983); in deep learning,
[Sutskever et al. 2013](ref-sutskever2013)) computes the gradient where momentum is about to carry
the parameters, not where they are now:

$$
u_t = \beta u_{t-1} - \alpha\,\nabla J(\varphi_{t-1} + \beta u_{t-1}), \qquad \varphi_t = \varphi_{t-1} + u_t .
$$

PyTorch stores the look-ahead point $\theta_t = \varphi_t + \beta u_t$ instead of $\varphi_t$. With
$u = -\alpha v$ the update becomes a gradient at the stored point:

$$
v_t = \beta v_{t-1} + g_t, \qquad \theta_t = \theta_{t-1} - \alpha\,(g_t + \beta v_t).
$$

We check that the two forms trace the same path on a test function. The **Rosenbrock function**
([Rosenbrock 1960](ref-rosenbrock1960)) is

$$
f(x, y) = (1 - x)^2 + 100\,(y - x^2)^2 ,
$$

with its minimum $f = 0$ at $(1, 1)$ at the end of a long, curved, narrow valley. Section 5 races
optimizers on it. Its gradient by hand is $\partial f/\partial x = -2(1-x) - 400x(y - x^2)$ and
$\partial f/\partial y = 200(y - x^2)$:
""")
code(r"""
def rosenbrock(p):                    # p: (2,) -> scalar
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rosenbrock_grad(p):               # the gradient by hand, (2,)
    x, y = p[0], p[1]
    return torch.stack([-2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)])


p = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
rosenbrock(p).backward()
print(f"gradient at (-1.2, 1): by hand {rosenbrock_grad(p.detach()).tolist()}, "
      f"max abs difference to autograd {(rosenbrock_grad(p.detach()) - p.grad).abs().max():.1e}")

lr, beta, T = 1e-3, 0.9, 300
theta = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
opt = torch.optim.SGD([theta], lr=lr, momentum=beta, nesterov=True)
phi, u = theta.detach().clone(), torch.zeros(2, dtype=torch.float64)
max_diff = 0.0
for _ in range(T):
    opt.zero_grad()
    rosenbrock(theta).backward()
    opt.step()                                             # PyTorch's form
    u = beta * u - lr * rosenbrock_grad(phi + beta * u)    # the look-ahead form
    phi = phi + u
    max_diff = max(max_diff, (theta.detach() - (phi + beta * u)).abs().max().item())
print(f"PyTorch's Nesterov theta_t vs look-ahead phi_t + beta u_t over {T} steps: "
      f"max abs difference {max_diff:.1e}")
""")
md(r"""
The hand-derived gradient equals autograd's, and over 300 steps PyTorch's Nesterov iterates equal
the look-ahead form's $\varphi_t + \beta u_t$ to float64 rounding. They are the same method,
written in different variables.

### `handson.optim.SGD`

`handson.optim.SGD(params, lr, momentum=0.0, nesterov=False, weight_decay=0.0)` puts these
updates into a subclass of `torch.optim.Optimizer`. The base class keeps the `param_groups`, which
hold the hyperparameters that schedulers change, and a `state` dictionary per parameter, which
holds the velocity. So our optimizer works with `fit` and with every PyTorch scheduler. Its whole
update is `step`:
""")
code(r"""
print(inspect.getsource(ho.SGD.step))
""")
md(r"""
Weight decay is added to the gradient first (section 6 is about it). The first step sets
$v_1 = g_1$, which is the same as $v_0 = 0$. Is it PyTorch's SGD? We train a float64 copy of the
digits MLP for 100 full-batch steps with each optimizer from the same start, and compare all
parameters at the end. The same helper will test Adam and AdamW.
""")
code(r"""
X64, y64 = Xd_train[:512].double(), yd_train[:512]     # 512 digits, float64


def train_100_steps(make_optimizer, steps=100):
    # full-batch training of a float64 digits MLP from a fixed start; returns all parameters, flattened
    seed.set_seed(0)
    model = digits_mlp().double()
    optimizer = make_optimizer(model.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(X64), y64).backward()
        optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


seed.set_seed(0)
start = torch.cat([p.detach().reshape(-1) for p in digits_mlp().double().parameters()])
max_rel_diffs = []


def compare(ours, theirs, **kwargs):
    a, b = train_100_steps(lambda p: ours(p, **kwargs)), train_100_steps(lambda p: theirs(p, **kwargs))
    rel = ((a - b).abs().max() / b.abs().max()).item()
    max_rel_diffs.append(rel)
    print(f"{ours.__name__:5s} {str(kwargs):58s} moved {(b - start).abs().max():.3f} | "
          f"vs torch.optim.{theirs.__name__}: max relative difference {rel:.1e}")


for kwargs in (dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, nesterov=True),
               dict(lr=0.1, momentum=0.5, weight_decay=0.01)):
    compare(ho.SGD, torch.optim.SGD, **kwargs)
""")
md(r"""
The parameters moved by several tenths, and after 100 steps they agree with PyTorch's to
about $10^{-16}$, the rounding of float64. (The tests in `tests/test_optim.py` demand
$10^{-6}$ on random problems.)
""")

# ----------------------------------------------------------------------------- 4 Adam
md(r"""
## 4. Adam and its bias correction

Momentum uses one learning rate for every parameter. **Adam** ([Kingma & Ba 2015](ref-kingma2015))
gives each parameter its own step size. It keeps exponential moving averages of the gradient and
of its square, divides one by the square root of the other, and corrects both for their start at zero:

$$
\begin{aligned}
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\,g_t, &\qquad \hat m_t &= \frac{m_t}{1-\beta_1^t},\\
s_t &= \beta_2 s_{t-1} + (1-\beta_2)\,g_t^2, &\qquad \hat s_t &= \frac{s_t}{1-\beta_2^t},\\
\theta_t &= \theta_{t-1} - \alpha\,\frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}, & &
\end{aligned}
$$

with $m_0 = s_0 = 0$, all operations element by element, and the defaults $\beta_1 = 0.9$,
$\beta_2 = 0.999$, $\epsilon = 10^{-8}$. $\hat m$ estimates the mean of the gradient, and
$\sqrt{\hat s}$ its root mean square. Their ratio is at most about 1 in size. So every parameter
moves by roughly $\alpha$ per step, whatever the scale of its gradient.

**Why the correction.** Unrolled, $m_t = (1-\beta_1)\sum_{k=1}^t \beta_1^{t-k} g_k$. Its weights
sum to $(1-\beta_1)\frac{1-\beta_1^t}{1-\beta_1} = 1 - \beta_1^t$, not to 1. For a constant gradient,
$m_t = (1-\beta_1^t)\,g$ exactly: at $t = 1$ the "average" is one tenth of the gradient. The same
holds for $s_t$ with $1 - \beta_2^t$, which is only $0.001$ at $t = 1$. Dividing by these factors
removes the bias. The factors at a few step numbers:
""")
code(r"""
# NBVAL_CHECK_OUTPUT
beta1, beta2 = 0.9, 0.999
print("   t   1-beta1^t   1-beta2^t   1/(1-beta1^t)   1/(1-beta2^t)   uncorrected step / alpha")
for t in (1, 10, 100, 1000):
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
    print(f"{t:4d}   {c1:9.4f}   {c2:9.4f}   {1 / c1:13.3f}   {1 / c2:13.2f}   {c1 / math.sqrt(c2):12.2f}")
""")
md(r"""
The first moment is nearly unbiased after a few dozen steps, but the second needs thousands:
$1 - \beta_2^t$ is still $0.63$ at $t = 1000$. For a constant gradient the corrected step is exactly
$\alpha$, since $\hat m = g$ and $\hat s = g^2$. The uncorrected step is
$\alpha\,(1-\beta_1^t)/\sqrt{1-\beta_2^t}$, the last column. A simulation of the two moving averages
confirms the factors:
""")
code(r"""
g_const = 0.3
m = s = 0.0
worst = 0.0
for t in range(1, 2001):
    m = beta1 * m + (1 - beta1) * g_const
    s = beta2 * s + (1 - beta2) * g_const ** 2
    worst = max(worst, abs(m - (1 - beta1 ** t) * g_const), abs(s - (1 - beta2 ** t) * g_const ** 2))
print(f"m_t vs (1 - beta1^t) g and s_t vs (1 - beta2^t) g^2 over 2000 steps: max abs difference {worst:.1e}")
""")
md(r"""
:::{admonition} Common mistake
:class: warning
Widely shared summaries and cheat sheets write Adam without the bias correction,
$\theta \leftarrow \theta - \alpha\, m/(\sqrt{s} + \epsilon)$, or mention the correction as an optional
detail. Both moments are then biased toward zero in the first steps. The second moment is biased
far more ($\beta_2$ is closer to 1), and it sits in the denominator. So the uncorrected steps are
not too small but **too large**: $3.2\alpha$ at $t = 1$, $6.5\alpha$ at $t = 10$, still $3.2\alpha$ at
$t = 100$ and $1.26\alpha$ at $t = 1000$ (table above), just when the weights are random and the
gradients are large. The corrected step is $\alpha$ from the first step on. Keep both corrections,
as `torch.optim.Adam` does.
:::

`handson.optim.Adam` implements the update line by line:
""")
code(r"""
print(inspect.getsource(ho.Adam.step))
""")
md(r"""
The branch on `self.decoupled` belongs to AdamW (section 6). One consequence of the correction:
at $t = 1$, $\hat m_1 = g_1$ and $\sqrt{\hat s_1} = |g_1|$, so Adam's first step is
$-\alpha\,\mathrm{sign}(g_1)$ for every parameter (if $|g_1| \gg \epsilon$):
""")
code(r"""
w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
opt = ho.Adam([w], lr=0.01)
w.grad = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 10.0 ** torch.arange(-3, 3)
opt.step()
print("gradient:  ", w.grad.numpy())
print("first step:", w.detach().numpy())
print(f"max abs difference to -lr * sign(g): {(w.detach() + 0.01 * torch.sign(w.grad)).abs().max():.1e}")
""")
md(r"""
Gradients from $10^{-3}$ to $10^{2}$ all produce a step of exactly $0.01$. The tiny difference
comes from $\epsilon$. This invariance to the scale of the gradient is why Adam needs so little
tuning across layers. Against `torch.optim.Adam`, on the same 100-step problem as before:
""")
code(r"""
for kwargs in (dict(lr=1e-3), dict(lr=1e-2), dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6),
               dict(lr=1e-2, weight_decay=0.1)):
    compare(ho.Adam, torch.optim.Adam, **kwargs)
""")
md(r"""
Again the results are identical to float64 rounding, for several learning rates, betas, $\epsilon$
and an L2 weight decay.
""")

# ----------------------------------------------------------------------------- 5 race
md(r"""
## 5. A race on two landscapes

Now we race the optimizers on two functions of two parameters. We supply the gradient by formula
and stop when a run comes within a tolerance of the minimum.

**An ill-conditioned quadratic.** $J(\theta) = \tfrac12\theta^\top\mathbf{A}\,\theta$, where
$\mathbf{A}$ has eigenvalues $\mu = 1$ and $L = 20$ (condition number $\kappa = 20$), rotated by
$30°$ so that the valley lies along no axis. The theory of section 1 gives gradient descent its
best fixed learning rate, $\alpha = 2/(\mu + L)$. With it the components along both eigenvectors
shrink by the same factor $\rho = \frac{\kappa - 1}{\kappa + 1}$ per step (one of them flips sign).
The distance then falls *exactly* as $\rho^t$, and the number of steps to reach a tolerance
$\varepsilon$ is

$$
t = \left\lceil \frac{\ln(\lVert\theta_0 - \theta^\ast\rVert/\varepsilon)}{\ln(1/\rho)} \right\rceil .
$$

Momentum with Polyak's tuning, $\alpha = 4/(\sqrt{L} + \sqrt{\mu})^2$ and
$\beta = \left(\frac{\sqrt\kappa - 1}{\sqrt\kappa + 1}\right)^2$, contracts by about
$\frac{\sqrt\kappa - 1}{\sqrt\kappa + 1}$ per step: $0.63$ instead of GD's $0.90$. Nesterov uses
$\alpha = 1/L$ and $\beta = \frac{\sqrt\kappa - 1}{\sqrt\kappa + 1}$. Adam gets a hand-picked $\alpha = 0.1$.

**The Rosenbrock function** from section 3, started at the classic point $(-1.2, 1)$. It is not
convex, and the valley floor curves, so no fixed tuning is optimal. GD and both momentum variants
get $\alpha = 10^{-3}$ (ten times larger, and GD diverges within three steps), momentum $\beta = 0.9$,
and Adam $\alpha = 0.02$.
""")
code(r"""
def race(make_optimizer, grad_fn, start, target, tol, max_steps):
    # run an optimizer on a 2-D function from its gradient formula; stop within tol of target
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([theta])
    path = [theta.detach().clone()]
    for step in range(1, max_steps + 1):
        theta.grad = grad_fn(theta.detach())
        optimizer.step()
        path.append(theta.detach().clone())
        if (theta.detach() - target).norm() < tol:
            return step, torch.stack(path)
    return None, torch.stack(path)                      # None: not reached within max_steps


mu_q, L_q = 1.0, 20.0
kappa = L_q / mu_q
c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
A = R @ torch.diag(torch.tensor([mu_q, L_q], dtype=torch.float64)) @ R.T   # (2, 2)
quad_start, quad_tol = [-4.0, 2.0], 1e-4
q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
quad_methods = {
    "GD": lambda p: ho.SGD(p, lr=2 / (mu_q + L_q)),
    "momentum": lambda p: ho.SGD(p, lr=4 / (math.sqrt(L_q) + math.sqrt(mu_q)) ** 2, momentum=q ** 2),
    "Nesterov": lambda p: ho.SGD(p, lr=1 / L_q, momentum=q, nesterov=True),
    "Adam": lambda p: ho.Adam(p, lr=0.1),
}
quad_results = {name: race(make, lambda p: A @ p, quad_start, torch.zeros(2, dtype=torch.float64),
                           quad_tol, 5000) for name, make in quad_methods.items()}
rho = (kappa - 1) / (kappa + 1)
gd_predicted = math.ceil(math.log(np.linalg.norm(quad_start) / quad_tol) / math.log(1 / rho))
print(f"GD on the quadratic: predicted {gd_predicted} steps, measured {quad_results['GD'][0]}")
""")
md(r"""
The measured step count is the one the formula predicts, to the step. Now the Rosenbrock race.
GD needs many thousands of steps here, so this cell takes a few seconds:
""")
code(r"""
rosen_start, rosen_tol = [-1.2, 1.0], 1e-3
rosen_max_steps = scale.pick(smoke=2000, cpu=30_000, gpu=30_000)
rosen_methods = {
    "GD": lambda p: ho.SGD(p, lr=1e-3),
    "momentum": lambda p: ho.SGD(p, lr=1e-3, momentum=0.9),
    "Nesterov": lambda p: ho.SGD(p, lr=1e-3, momentum=0.9, nesterov=True),
    "Adam": lambda p: ho.Adam(p, lr=0.02),
}
rosen_results = {name: race(make, rosenbrock_grad, rosen_start, torch.ones(2, dtype=torch.float64),
                            rosen_tol, rosen_max_steps)
                 for name, make in tqdm(rosen_methods.items(), desc="Rosenbrock")}


def steps_text(result, limit):
    return f"{result[0]:>8d}" if result[0] is not None else f"> {limit:>6d}"


print(f"{'method':10s}{'quadratic (tol 1e-4)':>22s}{'Rosenbrock (tol 1e-3)':>24s}")
for name in quad_methods:
    print(f"{name:10s}{steps_text(quad_results[name], 5000):>22s}"
          f"{steps_text(rosen_results[name], rosen_max_steps):>24s}")
""")
md(r"""
The table gives the steps to reach the tolerance ("> n" means not reached within the cap). On the
quadratic, momentum and Nesterov need a fraction of GD's steps, which is the $\sqrt\kappa$ versus
$\kappa$ behaviour the theory predicts. Adam is the slowest here. Its per-coordinate scaling cannot
undo a *rotated* valley, and with a constant $\alpha$ it keeps steps of about $\alpha$ in size,
so near the minimum it circles instead of closing in. On the Rosenbrock function momentum cuts
GD's step count about tenfold, and Adam sits in between. The paths show why:
""")
code(r"""
fig, axes = plt.subplots(1, 2, figsize=(13, 5))
colors = dict(GD="C0", momentum="C1", Nesterov="C2", Adam="C3")
xq, yq = np.meshgrid(np.linspace(-5.5, 3, 300), np.linspace(-7, 5.5, 300))
pts = np.stack([xq, yq], -1)
Jq = 0.5 * np.einsum("...i,ij,...j->...", pts, A.numpy(), pts)
axes[0].contour(xq, yq, Jq, levels=np.geomspace(0.01, 300, 16), colors="gray", linewidths=0.6)
for name, (n, path) in quad_results.items():
    axes[0].plot(path[:, 0], path[:, 1], ".-", ms=3, lw=0.8, color=colors[name], label=f"{name} ({n} steps)")
axes[0].set(title="ill-conditioned quadratic, kappa = 20", xlabel=r"$\theta_1$", ylabel=r"$\theta_2$")
xr, yr = np.meshgrid(np.linspace(-1.6, 1.6, 300), np.linspace(-0.6, 2.1, 300))
Jr = (1 - xr) ** 2 + 100 * (yr - xr ** 2) ** 2
axes[1].contour(xr, yr, Jr, levels=np.geomspace(0.01, 800, 18), colors="gray", linewidths=0.6)
for name, (n, path) in rosen_results.items():
    axes[1].plot(path[:, 0], path[:, 1], "-", lw=4 if name == "GD" else 1.2, alpha=0.5 if name == "GD" else 1,
                 color=colors[name],
                 label=f"{name} ({n if n is not None else 'not reached'})")
axes[1].plot([1], [1], "k*", ms=12)
axes[1].set(title="Rosenbrock, start (-1.2, 1), minimum at (1, 1)", xlabel="x", ylabel="y")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
""")
md(r"""
On the quadratic, GD with its best fixed $\alpha$ jumps across the steep direction at every step
(its factor there is $-0.90$) while it slides down the shallow one. Momentum with Polyak's tuning
overshoots far out of the valley at first, but its oscillations die out quickly, and Nesterov's
are gentler. Adam first moves diagonally, because its early steps are about $\alpha$ in each
coordinate whatever the gradient, and then spends hundreds of steps circling in towards the
minimum. On the Rosenbrock function every method first drops into the valley and then has to
follow its curved floor to $(1, 1)$. GD (the broad blue line, under the others) creeps along the
floor in tiny steps. Momentum swings from wall to wall but builds up speed, and Adam's normalized
steps keep a steady pace. No optimizer wins everywhere, and their tuning matters as much as their
type.
""")

# ----------------------------------------------------------------------------- 6 AdamW
md(r"""
(ch02-adamw)=
## 6. Weight decay: L2 penalty vs decoupled decay (AdamW)

**Weight decay** pulls every weight toward zero a little at each step, to keep the model simple.
There are two ways to get it, and they are not the same.

* **L2 penalty in the gradient.** Add $\frac\lambda2\lVert\theta\rVert^2$ to the loss, so that
  $\lambda\theta$ is added to the gradient: $\tilde g = g + \lambda\theta$. This is what
  `weight_decay=` does in `torch.optim.SGD` and `torch.optim.Adam` (and in our classes).
* **Decoupled weight decay** ([Loshchilov & Hutter 2019](ref-loshchilov2019)). Shrink the weights
  directly, $\theta \leftarrow \theta - \alpha\lambda\theta$, next to the optimizer's step computed
  from $g$ alone. This is **AdamW**, `torch.optim.AdamW` and `handson.optim.AdamW`, whose default is
  $\lambda = 10^{-2}$.

**For plain SGD the two coincide:**
$\theta - \alpha(g + \lambda\theta) = (1 - \alpha\lambda)\,\theta - \alpha g$. Numerically, with a
decoupled SGD written on top of ours:
""")
code(r"""
class DecoupledSGD(ho.SGD):
    # SGD that shrinks every weight by (1 - lr * decay) itself instead of adding decay * theta to g
    def __init__(self, params, lr, decay):
        super().__init__(params, lr=lr)
        self.decay = decay

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.mul_(1 - group["lr"] * self.decay)
        return super().step(closure)


l2_sgd = train_100_steps(lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05))
decoupled_sgd = train_100_steps(lambda p: DecoupledSGD(p, lr=0.1, decay=0.05))
no_decay = train_100_steps(lambda p: torch.optim.SGD(p, lr=0.1))
print(f"SGD: L2 in the gradient vs decoupled decay: max abs difference {(l2_sgd - decoupled_sgd).abs().max():.1e} "
      f"(the decay itself moved the weights by {(l2_sgd - no_decay).abs().max():.3f})")
l2_adam = train_100_steps(lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.05))
adamw = train_100_steps(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05))
print(f"Adam: L2 in the gradient (Adam) vs decoupled (AdamW): max abs difference {(l2_adam - adamw).abs().max():.3f}")
""")
md(r"""
For SGD the two versions agree to rounding, while the decay moved the weights noticeably, so the
agreement means something. For Adam they end up far apart.

**Why Adam is different.** With an L2 penalty the term $\lambda\theta$ enters $m$ and $s$, and it is
divided by $\sqrt{\hat s}$ like the rest of the gradient. A weight whose gradients are large then
gets almost no decay, and a weight whose gradients are tiny gets its decay amplified into
full-size steps of about $\alpha$. The strength of the regularization ends up depending on the
gradient scale, which is not what "decay every weight by the same fraction" means. AdamW decays
every weight by the same factor $(1 - \alpha\lambda)$ per step. To see it, give three weights
that start at 1 pure-noise gradients of very different sizes ($10$, $1$ and $0.01$), which exert no
pull of their own. The cell averages over 200 runs:
""")
code(r"""
decay_steps, runs, lr_wd, lam_wd = scale.pick(smoke=200, cpu=1000, gpu=1000), 200, 0.01, 0.1
noise_scale = torch.tensor([10.0, 1.0, 0.01], dtype=torch.float64)
noise = torch.randn(decay_steps, runs, 3, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0)) * noise_scale
decay_paths = {}
for name, make in (("Adam + L2", ho.Adam), ("AdamW", ho.AdamW)):
    w = torch.ones(runs, 3, dtype=torch.float64, requires_grad=True)
    opt = make([w], lr=lr_wd, weight_decay=lam_wd)
    path = []
    for t in range(decay_steps):
        w.grad = noise[t].clone()            # the data's gradient: noise only
        opt.step()
        path.append(w.detach().mean(0))
    decay_paths[name] = torch.stack(path)    # (steps, 3): mean weight over the runs

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
ideal = (1 - lr_wd * lam_wd) ** np.arange(1, decay_steps + 1)
for ax, (name, path) in zip(axes, decay_paths.items()):
    for j, sc in enumerate(noise_scale.tolist()):
        ax.plot(path[:, j], label=f"gradient noise scale {sc:g}")
    ax.plot(ideal, "k--", lw=1, label=r"$(1 - \alpha\lambda)^t$")
    ax.set(title=name, xlabel="step t")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("mean weight (starts at 1)")
axes[1].legend(fontsize=8)
fig.tight_layout()
for name, path in decay_paths.items():
    print(f"{name:9s} weights after {decay_steps} steps: {path[-1].numpy().round(3)} | "
          f"(1 - alpha lambda)^t = {ideal[-1]:.3f}")
""")
md(r"""
With AdamW (right) all three weights follow $(1 - \alpha\lambda)^t$, up to the leftover noise of
the average, whatever their gradients do. With Adam and an L2 penalty (left), the weight with large
gradients barely decays, the one with unit-size gradients happens to follow the ideal curve, and the
one with tiny gradients is driven to zero within about 200 steps. That weight's decay term dominates its gradient, and Adam turns
it into full-size steps.

:::{admonition} Common mistake
:class: warning
`torch.optim.Adam(params, weight_decay=0.01)` is **not** AdamW. It adds $0.01\,\theta$ to the
gradient (L2), which Adam then rescales per parameter, as shown above. The decoupled version that
transformer recipes rely on is `torch.optim.AdamW`. The two also differ in their defaults: Adam's
`weight_decay` is 0, and AdamW's is $10^{-2}$. Note that PyTorch multiplies the decay by the learning
rate ($\theta \leftarrow (1 - \alpha\lambda)\theta$), so a schedule that lowers $\alpha$ lowers the
decay as well, and $\lambda$ must be read together with $\alpha$.
:::

Our `AdamW` differs from our `Adam` in the single line `p.mul_(1 - lr * wd)`. Both match PyTorch:
""")
code(r"""
for kwargs in (dict(lr=1e-3), dict(lr=1e-2, weight_decay=0.1), dict(lr=3e-3, betas=(0.8, 0.99), weight_decay=0.5)):
    compare(ho.AdamW, torch.optim.AdamW, **kwargs)
print(f"largest relative difference over all {len(max_rel_diffs)} comparisons with torch.optim: {max(max_rel_diffs):.1e}")
""")
md(r"""
Every comparison, SGD, Adam and AdamW with and without momentum, Nesterov and weight decay,
agrees with `torch.optim` far inside the $10^{-6}$ that the package's tests require.
[Chapter 3](03_regularization.ipynb) uses AdamW's weight decay as a regularizer.
""")

# ----------------------------------------------------------------------------- 7 schedules
md(r"""
## 7. Learning-rate schedules

A large learning rate makes fast progress early, while a small one settles into a minimum instead
of bouncing around it (section 2's noise floor). A **schedule** $\eta_t$ changes $\alpha$ over the
$T$ steps of a run. `fit` steps the scheduler after every batch, so $t$ counts optimizer steps
from $0$. With peak rate $\eta_0$:

| schedule | $\eta_t$ | PyTorch |
| --- | --- | --- |
| step | $\eta_0\,\gamma^{\lfloor t/s\rfloor}$ | `StepLR(step_size=s, gamma)` |
| exponential | $\eta_0\,\gamma^{t}$ | `ExponentialLR(gamma)` |
| cosine ([Loshchilov & Hutter 2017](ref-loshchilov2017)) | $\eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\big(1 + \cos(\pi t/T)\big)$ | `CosineAnnealingLR(T_max=T)` |
| warmup + linear decay (BERT, [Devlin et al. 2019](ref-devlin2019)) | $\eta_0\,t/W$ for $t < W$, then $\eta_0\,\frac{T - t}{T - W}$ | `get_linear_schedule_with_warmup(W, T)` |
| warmup + cosine | $\eta_0\,t/W$, then $\tfrac12\eta_0\big(1 + \cos(\pi\frac{t - W}{T - W})\big)$ | `get_cosine_schedule_with_warmup(W, T)` |
| one-cycle ([Smith & Topin 2019](ref-smith2019)) | cosine rise from $\eta_0/25$ to $\eta_0$ over 30% of the steps, then cosine fall to $\eta_0/(25\cdot10^4)$ | `OneCycleLR(max_lr, total_steps)` |

The **warmup** over the first $W$ steps protects the start of training, when the weights are
random, gradients are large, and Adam's second-moment estimate rests on few samples. The two warmup
schedules come from Hugging Face `transformers`, which builds them as `torch.optim.lr_scheduler.LambdaLR`
objects. Each is one short function in `handson.optim`, for example:
""")
code(r"""
print(inspect.getsource(ho.warmup_linear_lr))
""")
md(r"""
We compare each function with its PyTorch scheduler over $T = 200$ steps ($W = 20$, $\eta_0 = 0.1$).
`torch_lrs` records the learning rate that the optimizer actually uses at each step:
""")
code(r"""
T_sched, W_sched, peak = 200, 20, 0.1
lrsched = torch.optim.lr_scheduler


def torch_lrs(make_scheduler, steps=T_sched, base_lr=peak):
    # the learning rate a PyTorch scheduler gives at steps 0 .. steps-1, stepped once per optimizer step
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=base_lr, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


schedules = {
    "step (x0.5 every 50)": (lambda o: lrsched.StepLR(o, step_size=50, gamma=0.5),
                             lambda t: ho.step_lr(t, peak, 50, 0.5)),
    "exponential (x0.98)": (lambda o: lrsched.ExponentialLR(o, gamma=0.98),
                            lambda t: ho.exponential_lr(t, peak, 0.98)),
    "cosine": (lambda o: lrsched.CosineAnnealingLR(o, T_max=T_sched),
               lambda t: ho.cosine_lr(t, peak, T_sched)),
    "warmup + linear (BERT)": (lambda o: get_linear_schedule_with_warmup(o, W_sched, T_sched),
                               lambda t: ho.warmup_linear_lr(t, peak, W_sched, T_sched)),
    "warmup + cosine": (lambda o: get_cosine_schedule_with_warmup(o, W_sched, T_sched),
                        lambda t: ho.warmup_cosine_lr(t, peak, W_sched, T_sched)),
    "one-cycle": (lambda o: lrsched.OneCycleLR(o, max_lr=peak, total_steps=T_sched),
                  lambda t: ho.one_cycle_lr(t, peak, T_sched)),
}
fig, axes = plt.subplots(2, 3, figsize=(13, 5.5), sharex=True, sharey=True)
for ax, (name, (make_torch, ours)) in zip(axes.flat, schedules.items()):
    reference = torch_lrs(make_torch)
    mine = np.array([ours(t) for t in range(T_sched)])
    print(f"{name:24s} handson.optim vs PyTorch: max abs difference {np.abs(mine - reference).max():.1e}")
    ax.plot(reference, lw=5, alpha=0.35, color="C0", label="PyTorch scheduler")
    ax.plot(mine, "--", color="C3", label="handson.optim")
    ax.set_title(name, fontsize=10)
    ax.grid(alpha=0.3)
axes[0, 0].legend(fontsize=8)
for ax in axes[1]:
    ax.set_xlabel("step t")
for ax in axes[:, 0]:
    ax.set_ylabel("learning rate")
fig.tight_layout()
""")
md(r"""
All six functions reproduce the PyTorch schedulers to float rounding. The dashed lines run inside
the broad ones. To train with one of our functions, `handson.optim.FunctionLR(optimizer, lr_fn)`
wraps it as a scheduler object that `fit` can step.

:::{admonition} Common mistake
:class: warning
Many tutorials step the scheduler once per *epoch* and set `T_max`, `step_size` or `total_steps`
in epochs. `fit`, the Hugging Face `Trainer` and most large-model code step it once per *batch*.
Mixing the two conventions gives a very different schedule. `CosineAnnealingLR(T_max=epochs)`
stepped every batch does not decay over the run. It is periodic, so it falls to zero after
`T_max` batches and climbs back to the peak after `2 * T_max`, over and over. The cell below shows
12 epochs of 50 batches. Count the budget in the unit the scheduler is stepped in: here
`T_max = epochs * batches_per_epoch`.
:::
""")
code(r"""
epochs_demo, batches_demo = 12, 50
wrong = torch_lrs(lambda o: lrsched.CosineAnnealingLR(o, T_max=epochs_demo), epochs_demo * batches_demo)
right = torch_lrs(lambda o: lrsched.CosineAnnealingLR(o, T_max=epochs_demo * batches_demo),
                  epochs_demo * batches_demo)
print(f"T_max = {epochs_demo} (epochs), stepped per batch: the lr returns to its peak "
      f"{int(np.sum(np.isclose(wrong[1:], peak)))} times in {len(wrong)} steps; final lr {wrong[-1]:.4f}")
print(f"T_max = {epochs_demo * batches_demo} (steps): final lr {right[-1]:.6f}, monotone decay: "
      f"{bool(np.all(np.diff(right) <= 1e-12))}")
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(wrong, lw=0.8, label=f"T_max = {epochs_demo} (epochs): wrong")
ax.plot(right, lw=2, label=f"T_max = {epochs_demo * batches_demo} (steps): right")
ax.set(xlabel="optimizer step (batch)", ylabel="learning rate")
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
""")
md(r"""
The wrong setting climbs back to the peak 24 times and ends near the peak, where the run should
have ended at the smallest rate. The right one decays once, smoothly, to zero at the last batch.

### Schedules on a real task: CIFAR-10

Does the schedule change the result? We train a small network on real images, the
**CIFAR-10** data set ([Krizhevsky 2009](ref-krizhevsky2009); the book ships a JPEG re-encoding).
It has $32\times32$ colour photos in 10 classes, and we take a class-balanced subset through
`handson.data.load_cifar10(limit=...)`. The model is an MLP on the flattened, standardized pixels:
$3072 \to 128 \to 10$. It is not a good image model (convolutional networks do much better), but it
is fast, and it is sensitive to the learning rate. Every run uses `handson.optim.SGD` with momentum
$0.9$, batches of 128, the same initial weights, the same order of batches and the same peak
learning rate $0.02$. Only the schedule differs:

* **constant** at $0.02$, the baseline;
* **step decay**, dividing by 10 after one third and two thirds of the steps (`StepLR`);
* **warmup + cosine**, with 5% warmup, through our `warmup_cosine_lr` and `FunctionLR`;
* **one-cycle** (`OneCycleLR`), which also cycles the momentum between $0.95$ and $0.85$, opposite
  to the learning rate.
""")
code(r"""
n_cifar, n_cifar_test = scale.pick(smoke=1000, cpu=20_000, gpu=50_000), scale.pick(smoke=500, cpu=5000, gpu=10_000)
cifar_train = data.load_cifar10("train", limit=n_cifar)
cifar_test = data.load_cifar10("test", limit=n_cifar_test)
pixels = cifar_train.images.float() / 255                                   # (N, 3, 32, 32)
c_mean, c_std = pixels.mean((0, 2, 3), keepdim=True), pixels.std((0, 2, 3), keepdim=True)
Xc_train = ((pixels - c_mean) / c_std).flatten(1)                           # (N, 3072)
Xc_test = ((cifar_test.images.float() / 255 - c_mean) / c_std).flatten(1)  # (N_test, 3072)
print(f"train {tuple(Xc_train.shape)}, test {tuple(Xc_test.shape)}; classes: {', '.join(cifar_train.classes)}")
print("train images per class:", torch.bincount(cifar_train.labels).tolist())
""")
md(r"""
The subset is balanced, with the same number of images in each class. The test images are used only
to plot the curves and to report the result at the end. Nothing is tuned on them.
""")
code(r"""
cifar_epochs, cifar_batch, peak_lr = scale.pick(smoke=1, cpu=15, gpu=30), 128, 0.02
cifar_set = torch.utils.data.TensorDataset(Xc_train, cifar_train.labels)
test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xc_test, cifar_test.labels),
                                          batch_size=1000)


def cifar_loader():   # the same shuffled order of batches for every run
    return torch.utils.data.DataLoader(cifar_set, batch_size=cifar_batch, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))


total_steps = cifar_epochs * len(cifar_loader())
warmup_steps = total_steps // 20
schedule_makers = {
    "constant": lambda opt: None,
    "step decay": lambda opt: lrsched.StepLR(opt, step_size=max(1, total_steps // 3), gamma=0.1),
    "warmup + cosine": lambda opt: ho.FunctionLR(
        opt, lambda t: ho.warmup_cosine_lr(t, peak_lr, warmup_steps, total_steps)),
    "one-cycle": lambda opt: lrsched.OneCycleLR(opt, max_lr=peak_lr, total_steps=total_steps),
}
cifar_runs, lr_curves = {}, {}
for name, make_scheduler in schedule_makers.items():
    seed.set_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3072, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = ho.SGD(model.parameters(), lr=peak_lr, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lr_curves[name] = [peak_lr] * total_steps if scheduler is None else \
        torch_lrs(make_scheduler, total_steps, base_lr=peak_lr)        # the same schedule, for the plot
    cifar_runs[name] = train.fit(model, cifar_loader(), F.cross_entropy, optimizer, cifar_epochs,
                                 val_loader=test_loader, scheduler=scheduler,   # GPU if there is one
                                 metrics={"accuracy": metrics.accuracy})
for name, h in cifar_runs.items():
    print(f"{name:16s} final train loss {h['train_loss'][-1]:.3f} | test loss {h['val_loss'][-1]:.3f} | "
          f"test accuracy {h['val_accuracy'][-1]:.3f} (best epoch {max(h['val_accuracy']):.3f})")
""")
md(r"""
Side by side, the four learning-rate curves and what they do to the loss and the accuracy:
""")
code(r"""
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
steps_per_epoch = len(cifar_loader())
for name, h in cifar_runs.items():
    axes[0].plot(np.arange(total_steps) / steps_per_epoch, lr_curves[name], label=name)
    axes[1].plot(h["epoch"], h["train_loss"], "-", label=f"{name}, train")
    axes[1].plot(h["epoch"], h["val_loss"], ":", color=axes[1].lines[-1].get_color(), label=f"{name}, test")
    axes[2].plot(h["epoch"], h["val_accuracy"], "o-", ms=3, label=name)
axes[0].set(xlabel="epoch", ylabel="learning rate", title="schedule")
axes[1].set(xlabel="epoch", ylabel="cross-entropy", title="loss (solid: train, dotted: test)")
axes[2].set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
for ax in axes:
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
axes[1].legend(fontsize=7, ncol=1)
fig.tight_layout()
""")
md(r"""
At the `cpu` scale (20,000 training images, 15 epochs) the picture is clear. With the constant
learning rate the test loss stops falling after a few epochs and then drifts up, and the test
accuracy jitters between 42% and 44%: the weights keep bouncing at the noise floor that the learning rate
sets. All three decaying schedules end about 5 points higher, within a point or so of each other.
The step schedule jumps by several points at its first drop (after epoch 5) and then hardly moves,
because its rate of $0.0002$ after the second drop is too small to learn much more. Warmup + cosine
and one-cycle keep improving until the last epoch and reach by far the lowest training loss. On
20,000 images part of that extra fitting is overfitting (their test loss ends above step decay's),
so in accuracy they end level with step decay or slightly below it. Decaying to a small rate by the end of the budget
matters more than the exact shape of the decay. Cosine and linear decay with warmup are the default
recipes for large models, because they need no milestones to be tuned and they end exactly when the
budget does.
""")

# ----------------------------------------------------------------------------- 8 clipping
md(r"""
## 8. Gradient clipping

Sometimes one batch produces a huge gradient, for example at a steep wall of the loss surface,
from a deep stack of layers, or from a recurrent network. One step along it can throw the weights
so far that the loss becomes `inf` or `nan`, and the run is lost. **Clipping by global norm**
([Pascanu et al. 2013](ref-pascanu2013)) caps the length of the gradient of *all* parameters
together, $\lVert g\rVert = \sqrt{\sum_{\text{params}}\sum_j g_j^2}$:

$$
g \leftarrow g\cdot\min\!\Big(1, \frac{c}{\lVert g\rVert}\Big).
$$

Gradients shorter than $c$ pass unchanged. Longer ones keep their direction but get length $c$, so
no step can be longer than $\alpha c$ (times the momentum gain). PyTorch adds $10^{-6}$ to
$\lVert g\rVert$ in the denominator, and so do we:
""")
code(r"""
print(inspect.getsource(ho.clip_grad_norm))
grads = [torch.randn(64, 64, dtype=torch.float64) * 3, torch.randn(64, dtype=torch.float64)]
for max_norm in (0.5, 10.0, 1000.0):
    mine = [torch.zeros_like(g, requires_grad=True) for g in grads]
    ref = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for a, b, g in zip(mine, ref, grads):
        a.grad, b.grad = g.clone(), g.clone()
    n_mine, n_ref = ho.clip_grad_norm(mine, max_norm), torch.nn.utils.clip_grad_norm_(ref, max_norm)
    after = math.sqrt(sum(float(a.grad.pow(2).sum()) for a in mine))
    diff = max((a.grad - b.grad).abs().max().item() for a, b in zip(mine, ref))
    print(f"c = {max_norm:6.1f}: norm before {float(n_mine):.3f}, after {after:.3f} | "
          f"vs torch.nn.utils.clip_grad_norm_: max abs difference {diff:.1e}")
""")
md(r"""
A gradient of norm 193.5 is scaled down to norm 0.5 or 10, and left alone when $c = 1000$.
The result equals PyTorch's. `fit(..., grad_clip=c)` applies PyTorch's version after every backward
pass.

### An exploding run

A deeper MLP for the digits, with 4 hidden layers of 128 units, trained with SGD at a deliberately
high learning rate ($\alpha = 0.2$, momentum $0.9$), blows up. To watch it happen we record the
gradient norm at every step with a small subclass of our SGD. It can also clip, using
`handson.optim.clip_grad_norm`, which returns the norm before clipping. A loss function that
remembers every training loss gives the per-step curve (evaluation runs under `torch.no_grad`,
so it is not recorded).
""")
code(r"""
class NormLoggingSGD(ho.SGD):
    # handson.optim.SGD that records the global gradient norm of every step, optionally clipping first
    def __init__(self, params, clip=None, **kwargs):
        super().__init__(params, **kwargs)
        self.clip, self.grad_norms = clip, []

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if self.clip is None:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        else:
            norm = ho.clip_grad_norm(params, self.clip)     # the norm before clipping
        self.grad_norms.append(norm.item())
        return super().step(closure)


def recording_loss(store):
    def loss_fn(logits, targets):
        loss = F.cross_entropy(logits, targets)
        if torch.is_grad_enabled():                          # training batches only
            store.append(loss.item())
        return loss
    return loss_fn


digits_loader = lambda: torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True,   # noqa: E731
                                                    generator=torch.Generator().manual_seed(0))
val_digits = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xd_val, yd_val), batch_size=1000)
clip_epochs, clip_c = scale.pick(smoke=2, cpu=10, gpu=10), 1.0
clip_runs = {}
for clip in (None, clip_c):
    seed.set_seed(0)
    model = digits_mlp(hidden=128, depth=4)
    optimizer = NormLoggingSGD(model.parameters(), clip=clip, lr=0.2, momentum=0.9)
    losses = []
    try:
        history = train.fit(model, digits_loader(), recording_loss(losses), optimizer, clip_epochs,
                            val_loader=val_digits, device=cpu, metrics={"accuracy": metrics.accuracy})
        outcome = f"finished: val accuracy {history['val_accuracy'][-1]:.3f}"
    except FloatingPointError as err:
        history, outcome = None, f"stopped: {err}"
    clip_runs[clip] = dict(losses=losses, norms=optimizer.grad_norms, history=history)
    print(f"clip = {clip}: {len(losses)} steps, {outcome}")
""")
md(r"""
Without clipping, `fit` stops the run with a `FloatingPointError` once the loss becomes `nan`.
At the `cpu` scale this happens after about 100 steps, in the third epoch. With clipping at $c = 1$ the same model, data and
learning rate train to over 90% validation accuracy. The per-step records show what happened:
""")
code(r"""
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
for clip, run in clip_runs.items():
    label = "no clipping" if clip is None else f"clipped at c = {clip}"
    axes[0].plot(run["losses"], lw=0.8, label=label)
    axes[1].plot(run["norms"], lw=0.8, label=label + " (norm before clipping)")
axes[1].axhline(clip_c, color="k", ls="--", lw=1, label="c")
axes[0].set(xlabel="step", ylabel="training loss (batch)", yscale="log")
axes[1].set(xlabel="step", ylabel="global gradient norm", yscale="log")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
""")
md(r"""
Without clipping, the gradient norm hovers between 1 and 10 for several dozen steps and then, within
about 15 steps, shoots up by many orders of magnitude. The steps follow it, the loss climbs to
astronomical values, and then it turns into `nan`. With clipping, the gradient norm before clipping
is often above $c$, but each step is capped, the weights stay in a sane region, and
the loss comes down. Clipping does not fix a learning rate
that is too high. It keeps single bad steps from destroying the run, which is why
`grad_clip=1.0` is part of almost every transformer recipe. Finally, `fit`'s own `grad_clip`
gives the same run as our clipping subclass:
""")
code(r"""
seed.set_seed(0)
model = digits_mlp(hidden=128, depth=4)
fit_losses = []
train.fit(model, digits_loader(), recording_loss(fit_losses), ho.SGD(model.parameters(), lr=0.2, momentum=0.9),
          clip_epochs, grad_clip=clip_c, device=cpu, progress=False)
ours = np.array(clip_runs[clip_c]["losses"])
print(f"per-step losses, fit(grad_clip={clip_c}) vs NormLoggingSGD(clip={clip_c}): "
      f"max abs difference {np.abs(np.array(fit_losses) - ours).max():.1e} over {len(ours)} steps")
""")
md(r"""
The two runs agree to float32 rounding over all steps, so `fit(grad_clip=...)` is the clipping
built in this section.

## Summary

* Gradient descent $\theta \leftarrow \theta - \alpha\nabla J$ on a quadratic multiplies the error
  along each eigenvector of the Hessian by $1 - \alpha\lambda_i$. It converges only for
  $\alpha < 2/\lambda_{\max}$, and the condition number $\lambda_{\max}/\lambda_{\min}$ sets its speed.
* A mini-batch gradient is an unbiased estimate whose noise falls as $\frac{N-B}{N-1}\sigma^2/B$.
  Beyond the noise scale, larger batches stop helping per step, and the best batch size for wall
  time depends on the hardware.
* Momentum sums gradients, $v \leftarrow \beta v + g$, which lengthens consistent steps by up to
  $1/(1-\beta)$ and damps zigzags. The averaged form $(1-\beta)g$ is a different
  parametrization with ten times shorter steps. Nesterov is momentum with a look-ahead gradient.
* Adam scales each parameter's step by $\hat m/\sqrt{\hat s}$. Without bias correction its first
  steps are several times too large, because the second moment starts near zero.
* An L2 penalty and decoupled weight decay are identical for SGD but not for Adam. AdamW decays
  every weight by $(1 - \alpha\lambda)$ per step, whatever its gradient scale.
* Schedules (step, exponential, cosine, warmup + linear or cosine, one-cycle) are one-line functions
  of the step. Stepped per batch, their lengths must be counted in batches, and decaying to a small
  rate at the end of the budget beats a constant rate.
* Clipping the global gradient norm caps single bad steps, and it rescues a run that would
  otherwise explode to `nan`.
* `handson.optim` holds all of it (`SGD`, `Adam`, `AdamW`, the schedules, `FunctionLR`,
  `clip_grad_norm`), equal to `torch.optim` to float64 rounding.

## Exercises
""")

# ----------------------------------------------------------------------------- exercises
md(r"""
:::{exercise} One gradient-descent step by hand
:label: ch02-ex1
Take $J(\theta) = (\theta - 3)^2$, start at $\theta_0 = 0$ and use $\alpha = 0.25$. What is
$\theta_1$? Compute it on paper first.
:::
""")
code(r"""
answer = None  # your answer: theta_1, a number
handson.check.optim.gd_step(answer)
""")
md(r"""
:::{solution} ch02-ex1
:class: dropdown
$J'(\theta) = 2(\theta - 3)$, so $J'(0) = -6$ and $\theta_1 = 0 - 0.25\cdot(-6) = 1.5$. The closed form
agrees: the factor is $1 - 2\alpha = 0.5$, so the distance to $3$ halves, from $3$ to $1.5$.
```python
answer = 0 - 0.25 * 2 * (0 - 3)   # 1.5
```
:::

:::{exercise} The largest stable learning rate
:label: ch02-ex2
Gradient descent runs on $J(\theta) = \tfrac12\theta^\top\mathbf{H}\theta$ with
$\mathbf{H} = \begin{pmatrix}4 & 1\\ 1 & 2\end{pmatrix}$. What is the largest learning rate for which
it converges from every starting point? Compute it with PyTorch or NumPy, and check it by running
gradient descent just below and just above your answer.
:::
""")
code(r"""
H_ex = torch.tensor([[4.0, 1.0], [1.0, 2.0]])
answer = None  # your answer: the largest stable learning rate, a number
handson.check.optim.max_stable_lr(answer, H_ex)
""")
md(r"""
:::{solution} ch02-ex2
:class: dropdown
Along eigenvector $i$ the error is multiplied by $1 - \alpha\lambda_i$ per step. All components shrink
if and only if $|1 - \alpha\lambda_i| < 1$ for every $i$, that is $\alpha < 2/\lambda_{\max}$. Here
$\lambda = 3 \pm \sqrt2$, so $\alpha < 2/(3 + \sqrt2) \approx 0.4531$.
```python
answer = (2 / torch.linalg.eigvalsh(H_ex).max()).item()   # 0.4531
```
:::

:::{exercise} Implement momentum SGD
:label: ch02-ex3
Write `momentum_step(theta, v, grad, lr, beta)` that performs one step of SGD with momentum as
PyTorch defines it, and returns the new `(theta, v)`. All arguments except `lr` and `beta` are tensors
of the same shape.
:::
""")
code(r"""
def momentum_step(theta, v, grad, lr, beta):
    # your code here: update the velocity, then the parameters
    return theta, v


handson.check.optim.momentum_step(momentum_step)
""")
md(r"""
:::{solution} ch02-ex3
:class: dropdown
The velocity sums gradients, with no $(1-\beta)$ factor, and the step follows the *new* velocity:
```python
def momentum_step(theta, v, grad, lr, beta):
    v = beta * v + grad
    return theta - lr * v, v
```
:::

:::{exercise} Pick a schedule for a budget
:label: ch02-ex4
You fine-tune a model with `fit` for exactly **5 epochs of 120 batches**. `fit` steps the scheduler
after every batch. Your peak learning rate is $0.1$. Which schedule from section 7 would you pick,
and why? Write it as a function `lr_at(step)` for `step = 0, ..., 600`: a linear warmup from 0
over the first 6% of the budget (rounded to whole steps), then a cosine decay that reaches 0 exactly
at the end of the budget.
:::
""")
code(r"""
def lr_at(step):
    # your code here: the learning rate at optimizer step `step`
    return 0.1


handson.check.optim.budget_schedule(lr_at)
""")
md(r"""
:::{solution} ch02-ex4
:class: dropdown
A fixed budget wants a schedule that ends at a small learning rate exactly when the budget ends.
Cosine (or linear) decay does that, and a short warmup protects the first steps. Step decay would need
its milestones tuned, and a constant rate ends at the noise floor. The budget is
$5 \times 120 = 600$ steps, counted in batches and not epochs, and the warmup lasts
$\mathrm{round}(0.06 \cdot 600) = 36$ steps:
```python
def lr_at(step):
    return ho.warmup_cosine_lr(step, 0.1, warmup_steps=36, total_steps=5 * 120)
```
:::

:::{exercise} Implement Adam's bias-corrected step
:label: ch02-ex5
Write `adam_step(theta, m, s, grad, t, lr, beta1, beta2, eps)` for step number `t` (1 at the first
step). It returns `(new_theta, new_m, new_s)`, where `m` and `s` are the *uncorrected* moving averages
that the next step needs. Then show with your function that, for a constant gradient, the step
length stays exactly `lr` from $t = 1$ on, while without the two corrections it is not.
:::
""")
code(r"""
def adam_step(theta, m, s, grad, t, lr, beta1, beta2, eps):
    # your code here
    return theta, m, s


handson.check.optim.adam_step(adam_step)
""")
md(r"""
:::{solution} ch02-ex5
:class: dropdown
```python
def adam_step(theta, m, s, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    m_hat = m / (1 - beta1 ** t)
    s_hat = s / (1 - beta2 ** t)
    return theta - lr * m_hat / (s_hat.sqrt() + eps), m, s

theta, m, s = torch.zeros(1), torch.zeros(1), torch.zeros(1)
for t in range(1, 11):
    new_theta, m, s = adam_step(theta, m, s, torch.ones(1), t, 0.01, 0.9, 0.999, 1e-8)
    print(t, (theta - new_theta).item())     # 0.01 every time
    theta = new_theta
```
Keeping `m` and `s` uncorrected matters: storing the corrected values would apply the correction
again at the next step. Without the corrections the step at $t = 10$ would be $0.065$.
:::

## Provenance
""")
code(r"""
acc = {name: h["val_accuracy"][-1] for name, h in cifar_runs.items()}
handson.provenance.report(
    cifar_test_accuracy_constant=acc["constant"], cifar_test_accuracy_step=acc["step decay"],
    cifar_test_accuracy_warmup_cosine=acc["warmup + cosine"], cifar_test_accuracy_one_cycle=acc["one-cycle"],
    cifar_train_images=len(cifar_set), cifar_epochs=cifar_epochs,
    quadratic_gd_steps=quad_results["GD"][0], quadratic_gd_steps_predicted=gd_predicted,
    quadratic_momentum_steps=quad_results["momentum"][0],
    rosenbrock_steps={name: r[0] for name, r in rosen_results.items()},
    max_rel_diff_vs_torch_optim=f"{max(max_rel_diffs):.1e}",
    digits_loss_after_steps={("full" if B == N else B): round(h["val_loss"][-1], 4) for B, h in batch_runs.items()},
    clipped_run_val_accuracy=clip_runs[clip_c]["history"]["val_accuracy"][-1],
    unclipped_run_steps_before_nan=None if clip_runs[None]["history"] else len(clip_runs[None]["losses"]),
    digits="scikit-learn load_digits (1797 images, shipped with the library)",
)
""")

ch.write("02_optimization.ipynb")

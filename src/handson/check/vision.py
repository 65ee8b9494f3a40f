"""Checkers for the exercises of chapter 5, *CNN image classification*."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from . import NO_ANSWER, _say, close, is_integer, reader_error

#: the chain of exercise 1: (kind, kernel, stride, padding, dilation) on a 224 x 224 input
EXERCISE_CHAIN = (("conv", 7, 2, 3, 1), ("maxpool", 3, 2, 1, 1), ("conv", 3, 1, 2, 2),
                  ("conv", 3, 2, 0, 1))


def _chain_sizes(chain, size: int) -> list[int]:
    """Output side lengths after each layer, measured with real PyTorch layers."""
    x, sizes = torch.zeros(1, 1, size, size), []
    for kind, k, s, p, d in chain:
        layer = (nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d) if kind == "conv"
                 else nn.MaxPool2d(k, stride=s, padding=p, dilation=d))
        with torch.no_grad():
            x = layer(x)
        sizes.append(int(x.shape[-1]))
    return sizes


def conv_output_sizes(answer, chain=EXERCISE_CHAIN, input_size: int = 224) -> bool:
    """Side length after each layer of ``chain`` (a list of ints, one per layer)."""
    expected = _chain_sizes(chain, input_size)
    label = "output sizes: "
    nudge = ("apply the output-size formula of section 1 to one layer at a time; each layer's "
             "output size is the next layer's input size")
    hint = ("use the floor in the formula, remember that dilation widens the kernel, and feed "
            "each output size into the next layer; max pooling follows the same rule")
    if answer is None or answer is Ellipsis:
        return _say(False, label, NO_ANSWER, nudge)
    if not isinstance(answer, (list, tuple)):
        return _say(False, label, f"answer with a list of {len(expected)} integers, one per layer",
                    hint)
    if len(answer) != len(expected):
        return _say(False, label, f"your list has {len(answer)} sizes; give one per layer "
                    f"({len(expected)})", hint)
    if not all(is_integer(a) for a in answer):
        return _say(False, label, "every size must be an integer (an int, not a float)", hint)
    return close(list(answer), expected, atol=0, rtol=0, label="output sizes", hint=hint)


def conv_layer_params(answer, in_channels: int, out_channels: int, kernel_size: int,
                      bias: bool = True, groups: int = 1) -> bool:
    """Number of parameters of ``nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)``."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups)
    expected = sum(p.numel() for p in layer.parameters())
    hint = ("every output channel has its own filter, which spans all input channels and the "
            "whole kernel window, plus one bias")
    if is_integer(answer) and bias and int(answer) == expected - out_channels:
        hint = "the filters are counted right; each output channel also has a bias"
    return close(answer, expected, integer=True, label="parameters", hint=hint,
                 nudge="what does one output channel's filter look like, and how many are there?")


def conv_layer_macs(answer, in_channels: int, out_channels: int, kernel_size: int, input_size: int,
                    stride: int = 1, padding: int = 0) -> bool:
    """Multiply-accumulates of that convolution on one ``input_size x input_size`` image."""
    from ..vision import conv_output_size
    out = conv_output_size(input_size, kernel_size, padding, stride)
    expected = out * out * out_channels * kernel_size * kernel_size * in_channels
    return close(answer, expected, integer=True, label="multiply-accumulates",
                 nudge="count the output values first, then the work that each one of them needs",
                 hint="each output value (every channel at every output position) is one dot "
                      "product of a filter with the input patch under it; the bias add is not "
                      "counted, and the padding keeps the output size here")


def _reference_receptive_field(layers) -> int:
    """Receptive field measured, not computed: the span of input pixels with a non-zero
    gradient from one output unit of a chain of all-ones 1-D convolutions.
    ``layers``: ``(kernel, stride)`` or ``(kernel, stride, dilation)`` tuples."""
    specs = [(int(l[0]), int(l[1]), int(l[2]) if len(l) > 2 else 1) for l in layers]
    size = 1
    for k, s, d in reversed(specs):               # input length that gives an output of length 1
        size = (size - 1) * s + d * (k - 1) + 1
    x = torch.zeros(1, 1, size, dtype=torch.float64, requires_grad=True)
    y = x
    for k, s, d in specs:
        y = F.conv1d(y, torch.ones(1, 1, k, dtype=torch.float64), stride=s, dilation=d)
    y[0, 0, 0].backward()
    nonzero = torch.nonzero(x.grad[0, 0])
    return int(nonzero.max() - nonzero.min() + 1)


_RF_NUDGE = ("follow the stack from the input: how many more input pixels does one more layer "
             "add, and how far apart in the input are neighbouring units after a stride?")
_RF_HINT = ("a layer with kernel k adds k - 1 steps of the layer below it, and a step of a layer "
            "is as many input pixels as the product of all strides before it (a pooling layer "
            "counts like a convolution; its own stride only matters for the layers after it)")


def receptive_field_of_chain(answer, layers) -> bool:
    """Receptive field (input pixels along one axis) of ``layers`` = [(kernel, stride), ...]."""
    return close(answer, _reference_receptive_field(layers), integer=True, label="receptive field",
                 nudge=_RF_NUDGE, hint=_RF_HINT)


#: stacks of (kernel, stride) the receptive-field function is tried on
RF_STACKS = ([(3, 1)], [(5, 1), (5, 1)], [(3, 1), (2, 2), (3, 1)], [(7, 2), (3, 2), (3, 1), (3, 1)],
             [(3, 2), (3, 2), (3, 2), (3, 2)], [(1, 1), (3, 1), (1, 3), (5, 1)],
             [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1)], [(2, 2), (2, 2), (3, 1)])


def receptive_field_fn(your_fn) -> bool:
    """``your_fn(layers) -> int``: the receptive field of a stack ``[(kernel, stride), ...]``,
    tried on several stacks (kernels 1-11, strides 1-4) and compared as integers."""
    label = "receptive field function: "
    if your_fn is None:
        return _say(False, label, NO_ANSWER, _RF_NUDGE)
    for number, stack in enumerate(RF_STACKS, 1):
        try:
            got = your_fn([tuple(layer) for layer in stack])
        except Exception as exc:  # the reader's code may fail in any way
            return reader_error(exc, label, _RF_HINT)
        if got is None:
            return _say(False, label, "your function returned None", _RF_NUDGE)
        if not is_integer(got):
            return _say(False, label, f"return an integer number of pixels (an int, not "
                        f"{type(got).__name__})", _RF_HINT)
        if int(got) != _reference_receptive_field(stack):
            return _say(False, label, f"not right yet for stack {number} of {len(RF_STACKS)}, "
                        f"{list(stack)}", _RF_HINT)
    return _say(True, label, f"({len(RF_STACKS)} stacks)", None)


# ----------------------------------------------------------------------------- residual block

def _randomize(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.3)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(1 + torch.rand(m.running_var.shape, generator=g))


def residual_block(your_class, channels: int = 6) -> bool:
    """``your_class(channels)``: He et al.'s basic block ``relu(x + bn2(conv2(relu(bn1(conv1(x))))))``
    with 3x3 convolutions (padding 1), compared in training and in evaluation mode."""
    label = "residual block: "
    hint = ("F(x) is conv -> batch norm -> ReLU -> conv -> batch norm, with 3x3 convolutions that "
            "keep the height and width; the input x is added to F(x) before the final ReLU, not "
            "after it")
    nudge = ("create the two convolutions and two batch norms in __init__, then write forward as "
             "the formula of the exercise")
    if your_class is None:
        return _say(False, label, NO_ANSWER, nudge)
    try:
        block = your_class(channels)
    except Exception as exc:  # the reader's code may fail in any way
        return reader_error(exc, label, hint)
    if not isinstance(block, nn.Module):
        return _say(False, label, f"{type(block).__name__} is not an nn.Module subclass", hint)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != 2 or len(norms) != 2:
        return _say(False, label, f"found {len(convs)} Conv2d and {len(norms)} BatchNorm2d layers, "
                    "expected 2 of each", nudge if not convs and not norms else hint)
    g = torch.Generator().manual_seed(0)
    _randomize(block, g)
    x = torch.randn(4, channels, 7, 7, generator=g)

    def variants(c1, b1, c2, b2):
        # the reader's own layers, wired in the right way and in two wrong ways; layers that
        # do not fit together (e.g. a convolution that changes the size) match nothing
        try:
            inner = b2(c2(torch.relu(b1(c1(x)))))
            return {"right": torch.relu(x + inner), "no skip": torch.relu(inner),
                    "skip after relu": x + torch.relu(inner)}
        except (RuntimeError, ValueError):
            return {}

    for mode in ("train", "eval"):
        block.train(mode == "train")
        try:
            with torch.no_grad():
                got = block(x)
        except Exception as exc:  # the reader's code may fail in any way
            return reader_error(exc, label, hint)
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            return _say(False, label, f"in {mode} mode the block returned "
                        f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}, "
                        f"expected a tensor of the input's shape {tuple(x.shape)}", hint)
        matched = None
        with torch.no_grad():
            for c1, c2 in itertools.permutations(convs):
                for b1, b2 in itertools.permutations(norms):
                    for name, value in variants(c1, b1, c2, b2).items():
                        if value.shape == got.shape and torch.allclose(got, value, atol=1e-5):
                            matched = matched or name
        if matched != "right":
            detail = {"no skip": "the output has no skip connection: add x",
                      "skip after relu": "you add x after the last ReLU (the ResNet-9 form); He et "
                                         "al.'s block adds it before"}.get(matched, "the output differs "
                                                                                   "from the basic block's")
            return _say(False, label, f"{detail} (in {mode} mode)", hint)
    return _say(True, label, "(training and evaluation mode both behave like the basic block)", None)


# ----------------------------------------------------------------------------- double softmax

def _buggy_model() -> nn.Sequential:
    from ..vision import SmallCNN
    torch.manual_seed(0)
    return nn.Sequential(SmallCNN(), nn.Softmax(dim=1)).eval()


def double_softmax_fix(your_fn) -> bool:
    """``your_fn(buggy_model) -> model`` whose outputs are logits (same weights), so that
    ``nn.CrossEntropyLoss`` applies the softmax once."""
    label = "double softmax: "
    hint = ("CrossEntropyLoss applies a (log-)softmax itself, so it must receive the scores "
            "before any softmax; keep the trained layers that compute them and drop only what "
            "turns them into probabilities")
    nudge = ("look at the model's last layer and at what nn.CrossEntropyLoss expects as input")
    if your_fn is None:
        return _say(False, label, NO_ANSWER, nudge)
    buggy = _buggy_model()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
    with torch.no_grad():
        logits = buggy[0](x)
    try:
        fixed = your_fn(buggy)
        if fixed is None:
            return _say(False, label, "your function returned None; return the repaired model", hint)
        with torch.no_grad():
            out = fixed(x)
    except Exception as exc:  # the reader's code may fail in any way
        return reader_error(exc, label, hint)
    if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
        return _say(False, label, f"the repaired model returned "
                    f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}, "
                    f"expected logits of shape {tuple(logits.shape)}", hint)
    if torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4) and (out >= 0).all():
        return _say(False, label, "its outputs are still probabilities (every row sums to 1)", hint)
    # logits are defined up to a constant per row: compare what the loss sees
    same = torch.allclose(F.log_softmax(out, 1), F.log_softmax(logits, 1), atol=1e-5)
    if not same:
        return _say(False, label, "its outputs are not the buggy model's logits (keep the trained "
                    "weights: remove the softmax, do not build a new network)", hint)
    loss = F.cross_entropy(out, y).item()
    return _say(True, label, f"(CrossEntropyLoss now sees logits: loss {loss:.4f} on a test batch)", None)

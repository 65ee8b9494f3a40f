"""Checkers for the exercises of chapter 5, *CNN image classification*."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from . import _say, close, reader_error

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
    if answer is not None and not isinstance(answer, (list, tuple)):
        answer = [answer]
    return close(None if answer is None else list(answer), expected, atol=0, rtol=0,
                 label="output sizes",
                 hint="apply floor((n + 2p - d(k - 1) - 1) / s) + 1 layer after layer, feeding each "
                      "output size into the next layer; max pooling follows the same rule")


def conv_layer_params(answer, in_channels: int, out_channels: int, kernel_size: int,
                      bias: bool = True, groups: int = 1) -> bool:
    """Number of parameters of ``nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)``."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups)
    expected = sum(p.numel() for p in layer.parameters())
    return close(answer, expected, atol=0, rtol=0, label="parameters",
                 hint="every output channel has one k x k x C_in filter plus one bias: "
                      "(k * k * C_in + 1) * C_out")


def conv_layer_macs(answer, in_channels: int, out_channels: int, kernel_size: int, input_size: int,
                    stride: int = 1, padding: int = 0) -> bool:
    """Multiply-accumulates of that convolution on one ``input_size x input_size`` image."""
    from ..vision import conv_output_size
    out = conv_output_size(input_size, kernel_size, padding, stride)
    expected = out * out * out_channels * kernel_size * kernel_size * in_channels
    return close(answer, expected, atol=0, rtol=0, label="multiply-accumulates",
                 hint="each of the H_out x W_out x C_out outputs is a dot product of length "
                      "k * k * C_in (the bias add is not counted)")


def receptive_field_of_chain(answer, layers) -> bool:
    """Receptive field (input pixels along one axis) of ``layers`` = [(kernel, stride), ...]."""
    from ..vision import receptive_field
    return close(answer, receptive_field(layers), atol=0, rtol=0, label="receptive field",
                 hint="start with r = 1 and jump j = 1; for each layer r += (k - 1) * j, then "
                      "j *= stride (a pooling layer counts like a convolution)")


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
    hint = ("two 3x3 convolutions (padding=1) and two BatchNorm2d layers; forward computes "
            "relu(x + bn2(conv2(relu(bn1(conv1(x)))))) -- the input is added before the last ReLU")
    if your_class is None:
        return _say(False, label, "no answer yet (the cell still holds None)", hint)
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
                    "expected 2 of each", hint)
    for conv in convs:
        if conv.weight.shape != (channels, channels, 3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            return _say(False, label, f"a convolution has weight {tuple(conv.weight.shape)}, padding "
                        f"{conv.padding}, stride {conv.stride}; expected ({channels}, {channels}, 3, 3), "
                        "padding (1, 1), stride (1, 1) so that x and f(x) have the same shape", hint)
    g = torch.Generator().manual_seed(0)
    _randomize(block, g)
    x = torch.randn(4, channels, 7, 7, generator=g)

    def variants(c1, b1, c2, b2):
        inner = b2(c2(torch.relu(b1(c1(x)))))
        return {"right": torch.relu(x + inner), "no skip": torch.relu(inner),
                "skip after relu": x + torch.relu(inner)}

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
                        if torch.allclose(got, value, atol=1e-5):
                            matched = matched or name
        if matched != "right":
            detail = {"no skip": "the output has no skip connection: add x",
                      "skip after relu": "you add x after the last ReLU (the ResNet-9 form); He et "
                                         "al.'s block adds it before"}.get(matched, "the output differs "
                                                                                   "from the basic block's")
            return _say(False, label, f"{detail} (in {mode} mode)", hint)
    return _say(True, label, "(training and evaluation mode match relu(x + F(x)))", None)


# ----------------------------------------------------------------------------- double softmax

def _buggy_model() -> nn.Sequential:
    from ..vision import SmallCNN
    torch.manual_seed(0)
    return nn.Sequential(SmallCNN(), nn.Softmax(dim=1)).eval()


def double_softmax_fix(your_fn) -> bool:
    """``your_fn(buggy_model) -> model`` whose outputs are logits (same weights), so that
    ``nn.CrossEntropyLoss`` applies the softmax once."""
    label = "double softmax: "
    hint = ("the model's last layer is nn.Softmax and CrossEntropyLoss applies another (log-)softmax; "
            "return the model without its last layer, e.g. model[0] or model[:-1]")
    if your_fn is None:
        return _say(False, label, "no answer yet (the cell still holds None)", hint)
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

"""Convolutional networks for small images: arithmetic, models, data, TTA, saving.

The pieces of the CNN chapter that later chapters (and readers) reuse:

* convolution arithmetic -- :func:`conv_output_size`, :func:`conv2d_unfold` (im2col
  convolution, equal to ``torch.nn.functional.conv2d``), :func:`pool2d_unfold`,
  :func:`layer_specs` and :func:`receptive_field`;
* bookkeeping -- :func:`count_params`, :func:`layer_table` (output shape, parameters
  and multiply-accumulates per layer) and :func:`format_table`;
* models -- :class:`SmallCNN` (the classic conv32-pool-conv64-pool-conv64-dense64-dense10
  baseline, ending in logits), :func:`conv_bn`, :class:`ResidualBlock` and
  :class:`FastResNet` (a ResNet-9-style CIFAR network with batch norm);
* data -- :func:`channel_stats`, :func:`cifar_transforms` (per-image
  ``torchvision.transforms.v2`` pipeline: random crop with padding, horizontal flip,
  per-channel normalization), :func:`augment_batch`, :func:`cutout` and :class:`ImageLoader`
  (the same augmentation applied to whole batches on the training device, random numbers
  drawn there too, which keeps a GPU busy);
* test-time augmentation -- :class:`FlipTTA` (average of the logits of an image and its
  mirror image);
* training bookkeeping -- :func:`time_to_accuracy`;
* saving -- :func:`save_weights` / :func:`load_weights` (``torch.save`` state dicts or
  ``.safetensors`` files), re-exported from :mod:`handson.models`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import models as _models
from . import validate as _v

# --------------------------------------------------------------------------- arithmetic


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as a pair of ints ``>= minimum`` (an int is used for both sides)."""
    func, what = _v.caller(), f"an int >= {minimum} or a pair of them"
    if _v.is_int(value):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        _v.integer(value, name, func, low=minimum, what=what)      # raises: not an int
    return tuple(_v.integer(v, name, func, low=minimum, what=what) for v in value)


def conv_output_size(n: int, kernel: int, padding: int = 0, stride: int = 1,
                     dilation: int = 1) -> int:
    """Length of a convolution's (or pooling's) output along one axis.

    ``floor((n + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1`` -- the rule
    ``torch.nn.Conv2d`` and ``nn.MaxPool2d`` (with ``ceil_mode=False``) follow.
    """
    for name, value, low in (("n", n, 1), ("kernel", kernel, 1), ("padding", padding, 0),
                             ("stride", stride, 1), ("dilation", dilation, 1)):
        _v.integer(value, name, "conv_output_size", low=low)
    span = dilation * (kernel - 1) + 1          # how many input pixels one kernel covers
    if n + 2 * padding < span:
        raise ValueError(f"the kernel covers {span} pixels but the padded input has only "
                         f"{n + 2 * padding}; use a smaller kernel/dilation or more padding")
    return (n + 2 * padding - span) // stride + 1


def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (batch, channels, height, width), "
                         f"got {tuple(x.shape)}; add a batch axis with x.unsqueeze(0)")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; "
                        "convert uint8 images with x.float() / 255")


def conv2d_unfold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1) -> torch.Tensor:
    """2-D convolution (cross-correlation) as one matrix product over unfolded patches.

    ``x``: ``(N, C, H, W)``; ``weight``: ``(O, C, kh, kw)``; ``bias``: ``(O,)`` or None.
    Returns ``(N, O, H_out, W_out)``, equal to ``F.conv2d(x, weight, bias, stride,
    padding, dilation)`` up to float rounding (groups=1 only).
    """
    _check_images(x)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError("weight must be a tensor of shape (out_channels, in_channels, kh, kw), "
                         f"got {getattr(weight, 'shape', type(weight).__name__)}")
    out_channels, in_channels, kh, kw = weight.shape
    if in_channels != x.shape[1]:
        raise ValueError(f"weight expects {in_channels} input channels but x has {x.shape[1]} "
                         f"(x is {tuple(x.shape)}, weight is {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},), got {tuple(bias.shape)}")
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    h_out = conv_output_size(x.shape[2], kh, padding[0], stride[0], dilation[0])
    w_out = conv_output_size(x.shape[3], kw, padding[1], stride[1], dilation[1])
    # (N, C * kh * kw, L): every column is one receptive-field patch, L = h_out * w_out
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    out = weight.reshape(out_channels, -1) @ cols          # (N, O, L)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1)
    return out.reshape(x.shape[0], out_channels, h_out, w_out)


def pool2d_unfold(x: torch.Tensor, kernel=2, stride=None, mode: str = "max") -> torch.Tensor:
    """Max or average pooling through ``unfold`` (no padding); equals ``F.max_pool2d`` /
    ``F.avg_pool2d``. ``stride`` defaults to ``kernel`` (non-overlapping windows)."""
    _check_images(x)
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    kernel = _pair(kernel, "kernel", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    n, c, h, w = x.shape
    h_out = conv_output_size(h, kernel[0], 0, stride[0])
    w_out = conv_output_size(w, kernel[1], 0, stride[1])
    cols = F.unfold(x, kernel, stride=stride).reshape(n, c, kernel[0] * kernel[1], -1)
    out = cols.amax(dim=2) if mode == "max" else cols.mean(dim=2)
    return out.reshape(n, c, h_out, w_out)


def layer_specs(layers) -> list[tuple[int, int, int]]:
    """``(kernel, stride, dilation)`` of every spatial layer, in order.

    ``layers``: an ``nn.Module`` (its Conv2d / MaxPool2d / AvgPool2d layers in registration
    order; square kernels) or a list of ``(kernel, stride)`` / ``(kernel, stride, dilation)``.
    """
    if isinstance(layers, nn.Module):
        specs = []
        for module in layers.modules():
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
                s = module.stride if isinstance(module.stride, int) else module.stride[0]
                d = getattr(module, "dilation", 1)
                d = d if isinstance(d, int) else d[0]
                specs.append((int(k), int(s), int(d)))
        if not specs:
            raise ValueError("the module has no Conv2d / MaxPool2d / AvgPool2d layers")
        return specs
    specs = []
    for i, spec in enumerate(layers):
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise ValueError(f"layer {i}: give (kernel, stride) or (kernel, stride, dilation), "
                             f"got {spec!r}")
        k, s, d = (*spec, 1) if len(spec) == 2 else spec
        if not all(_v.is_int(v) and v >= 1 for v in (k, s, d)):
            raise ValueError(f"layer {i}: kernel, stride and dilation must be ints >= 1, got {spec!r}")
        specs.append((k, s, d))
    if not specs:
        raise ValueError("receptive_field needs at least one layer")
    return specs


def receptive_field(layers, per_layer: bool = False):
    """Receptive field (in input pixels, along one axis) of a chain of conv/pool layers.

    ``layers``: a list of ``(kernel, stride)`` or ``(kernel, stride, dilation)`` tuples, or
    an ``nn.Module`` whose Conv2d/MaxPool2d/AvgPool2d layers run one after another (square
    kernels; a residual shortcut does not change the largest receptive field).
    With ``r_0 = 1`` and jump ``j_0 = 1``: ``r_l = r_{l-1} + d_l (k_l - 1) j_{l-1}``,
    ``j_l = j_{l-1} s_l``. Returns the final ``r`` or, with ``per_layer``, a list of
    ``(r_l, j_l)`` pairs.
    """
    r, j, steps = 1, 1, []
    for k, s, d in layer_specs(layers):
        r = r + d * (k - 1) * j
        j = j * s
        steps.append((r, j))
    return steps if per_layer else r


# --------------------------------------------------------------------------- bookkeeping


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all by default, or only those with ``requires_grad``).

    The same function as :func:`handson.models.count_parameters` (and
    :func:`handson.lm.count_parameters`), with the same default ``trainable_only=False``.
    """
    return _models.count_parameters(model, trainable_only)


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one forward call (per whole batch)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> list[dict]:
    """One row per leaf module: ``name``, ``layer``, ``output_shape``, ``params``, ``macs``.

    ``input_shape`` is one example's shape without the batch axis, e.g. ``(3, 32, 32)``.
    ``macs`` counts multiply-accumulates of Conv2d and Linear layers for one image
    (one MAC = 2 FLOPs). The model runs once in eval mode on zeros.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"layer_table needs an nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"input_shape must be positive ints without the batch axis, e.g. "
                         f"(3, 32, 32); got {input_shape!r}")
    rows, hooks = [], []

    def hook(name):
        def record(module, inputs, output):
            rows.append({"name": name, "layer": type(module).__name__,
                         "output_shape": tuple(output.shape[1:]),
                         "params": sum(p.numel() for p in module.parameters(recurse=False)),
                         "macs": _macs(module, inputs[0], output)})
        return record

    for name, module in model.named_modules():
        if not list(module.children()):          # leaf modules only
            hooks.append(module.register_forward_hook(hook(name)))
    param = next(model.parameters(), None)
    x = torch.zeros((1, *shape), device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_table(rows: Iterable[dict], total: bool = True, skip: Sequence[str] = ()) -> str:
    """Plain-text table of :func:`layer_table` rows (with a total line).

    ``skip``: layer type names to leave out of the listed rows, e.g. ``("ReLU",)``; the
    total still counts every row.
    """
    rows = list(rows)
    shown = [r for r in rows if r["layer"] not in set(skip)]
    labels = [f"{r['name']} {r['layer']}" for r in shown]
    width = max([len("layer"), *map(len, labels)]) + 2
    lines = [f"{'layer':<{width}}{'output shape':<16}{'params':>11}{'MACs':>14}"]
    for label, r in zip(labels, shown):
        lines.append(f"{label:<{width}}{str(r['output_shape']):<16}{r['params']:>11,}{r['macs']:>14,}")
    if total:
        lines.append(f"{'total':<{width + 16}}{sum(r['params'] for r in rows):>11,}"
                     f"{sum(r['macs'] for r in rows):>14,}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- models


class SmallCNN(nn.Sequential):
    """The classic small CNN for 32x32 colour images, ending in logits (no softmax).

    conv3x3(32) - ReLU - maxpool2 - conv3x3(64) - ReLU - maxpool2 - conv3x3(64) - ReLU -
    flatten - dense(64) - ReLU - dense(num_classes): 122,570 parameters for 10 classes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),   # (32, 30, 30) -> (32, 15, 15)
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),            # (64, 13, 13) -> (64, 6, 6)
            nn.Conv2d(64, 64, 3), nn.ReLU(),                             # (64, 4, 4)
            nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.ReLU(),
            nn.Linear(64, num_classes),                                  # logits
        )


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (no bias: batch norm has one) - BatchNorm2d - ReLU; keeps H and W."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """``x + f(x)`` with ``f`` = two :func:`conv_bn` layers (the ResNet-9 form of the block;
    He et al.'s original adds before the last ReLU: ``relu(x + bn(conv(relu(bn(conv(x))))))``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """Multiply by a fixed number (keeps the initial logits small)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class FastResNet(nn.Sequential):
    """A ResNet-9-style CIFAR network (after Page's DAWNBench entry), ending in logits.

    prep conv_bn(w) @32x32 -> conv_bn(2w) + maxpool + residual @16x16 ->
    conv_bn(4w) + maxpool @8x8 -> conv_bn(8w) + maxpool + residual @4x4 ->
    global max pool -> linear -> x ``head_scale``. ``width=64`` is the full network
    (6.6M parameters); ``width=16`` is a narrow one for CPUs.
    """

    def __init__(self, width: int = 64, num_classes: int = 10, in_channels: int = 3,
                 head_scale: float = 0.125):
        width = _v.positive_int(width, "width", "FastResNet")
        w = width
        super().__init__(
            conv_bn(in_channels, w),                                        # (w, 32, 32)
            nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2), ResidualBlock(2 * w)),  # (2w, 16, 16)
            nn.Sequential(conv_bn(2 * w, 4 * w), nn.MaxPool2d(2)),          # (4w, 8, 8)
            nn.Sequential(conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), ResidualBlock(8 * w)),  # (8w, 4, 4)
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),                          # (8w,)
            nn.Linear(8 * w, num_classes, bias=False), Scale(head_scale),   # logits
        )


# --------------------------------------------------------------------------- data


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of ``uint8 (N, C, H, W)``
    images on the ``[0, 1]`` scale, accumulated in float64 in chunks.

    Channels-last images ``(N, H, W, C)`` (NumPy / PIL layout) are refused: permute them
    first with ``images.permute(0, 3, 1, 2)``.
    """
    _check_uint8_images(images)
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean ** 2).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def cifar_transforms(mean: Sequence[float], std: Sequence[float], train: bool,
                     size: int = 32, padding: int = 4, flip: bool = True,
                     padding_mode: str = "reflect"):
    """``torchvision.transforms.v2`` pipeline for ``uint8 (C, H, W)`` image tensors.

    Train: random ``size`` crop of the image padded by ``padding`` pixels (reflected),
    random horizontal flip, then float in [0, 1] and per-channel normalization.
    Eval (``train=False``): only the conversion and the normalization.
    """
    from torchvision.transforms import v2
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {std}")
    steps = []
    if train:
        if padding > 0:
            steps.append(v2.RandomCrop(size, padding=padding, padding_mode=padding_mode))
        if flip:
            steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo :func:`cifar_transforms`' normalization (for showing images): back to [0, 1]."""
    shape = (-1, 1, 1) if x.ndim == 3 else (1, -1, 1, 1)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(shape)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(shape)
    return (x * s + m).clamp(0, 1)


def _check_uint8_images(images, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{name} must be a uint8 tensor (N, C, H, W), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} "
                         f"{tuple(getattr(images, 'shape', ()))}")
    _, c, _, w = images.shape
    if c > 4 and w in (1, 3, 4):
        raise ValueError(f"{name} has shape {tuple(images.shape)}: that looks like channels-last "
                         f"(N, H, W, C) with C = {w}, but (N, C, H, W) is expected (it would "
                         f"be read as {c} channels); permute it: {name}.permute(0, 3, 1, 2)")


def _check_generator(generator, func: str) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _v.ArgumentTypeError(f"{func}(generator=...): expected a torch.Generator or None, "
                                   f"got {_v.describe(generator)}")


def _draw(fn, *args, generator, device):
    """Random numbers from ``generator`` made on the generator's device (the device itself when
    there is none), then moved to ``device``: with a generator on the images' device nothing is
    copied and the host never waits."""
    where = generator.device if generator is not None else device
    return fn(*args, generator=generator, device=where).to(device, non_blocking=True)


def augment_batch(x: torch.Tensor, padding: int = 4, flip: bool = True,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (of the image padded by reflection) and random horizontal flip, per image.

    ``x``: float ``(N, C, H, W)`` on any device. Every image gets its own offsets
    ``(dy, dx)`` in ``[0, 2 * padding]`` and is mirrored with probability 1/2, the same
    distribution as ``v2.RandomCrop(H, padding, padding_mode="reflect")`` followed by
    ``v2.RandomHorizontalFlip()``. The random numbers come from ``generator``, drawn on the
    generator's device (give it one on ``x``'s device, ``torch.Generator(x.device)``, so that
    no number crosses between host and device); without one, from the default generator of
    ``x``'s device. The result keeps ``x``'s memory format (channels-last stays channels-last).
    """
    _check_images(x)
    _check_generator(generator, "augment_batch")
    padding = _v.nonnegative_int(padding, "padding", "augment_batch")
    n, c, h, w = x.shape
    if padding >= min(h, w):
        raise ValueError(f"reflect padding needs padding < image size, got {padding} for {h}x{w}")
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if padding > 0:
        padded = F.pad(x, (padding,) * 4, mode="reflect")                      # (N, C, H+2p, W+2p)
        dy = _draw(torch.randint, 0, 2 * padding + 1, (n,), generator=generator, device=x.device)
        dx = _draw(torch.randint, 0, 2 * padding + 1, (n,), generator=generator, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]   # (N, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]   # (N, 1, 1, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]                                     # (N, C, H, W)
    if flip:
        mirror = (_draw(torch.rand, n, generator=generator, device=x.device) < 0.5)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def cutout(x: torch.Tensor, size: int = 8, generator: torch.Generator | None = None,
           value: float = 0.0) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): blank one random ``size x size`` square of every image.

    ``x``: float ``(N, C, H, W)`` on any device (after normalization ``value=0`` is the mean
    colour). Each image gets its own centre, uniform over all pixels; the square is clipped
    at the border (so near an edge fewer than ``size**2`` pixels go), as in the paper's code.
    All channels of the square are set to ``value``. ``size=0`` returns ``x`` unchanged and
    draws no random numbers. The centres come from ``generator`` (see :func:`augment_batch`);
    the whole operation is a few tensor operations on ``x``'s device, with no host sync.
    """
    _check_images(x)
    _check_generator(generator, "cutout")
    size = _v.nonnegative_int(size, "size", "cutout")
    n, _, h, w = x.shape
    if size > max(h, w):
        raise ValueError(f"cutout: size {size} is larger than the {h}x{w} images; use a square "
                         f"of at most {max(h, w)} pixels (the paper uses 8 on 32x32 CIFAR-10 "
                         f"images, 16 for its ResNets)")
    if size == 0 or n == 0:
        return x
    cy = _draw(torch.randint, 0, h, (n,), generator=generator, device=x.device)
    cx = _draw(torch.randint, 0, w, (n,), generator=generator, device=x.device)
    low_y, low_x = cy - size // 2, cx - size // 2           # square [low, low + size), clipped
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows[None, :] >= low_y[:, None]) & (rows[None, :] < low_y[:, None] + size)
    in_cols = (cols[None, :] >= low_x[:, None]) & (cols[None, :] < low_x[:, None] + size)
    square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]          # (N, 1, H, W)
    return x.masked_fill(square, value)


class ImageLoader:
    """Batches ``(images, labels)`` of in-memory ``uint8`` images, prepared on the device.

    The whole set is moved to ``device`` once; every batch is converted to float in
    ``[0, 1]``, normalized per channel with ``mean`` / ``std`` and, with ``train=True``,
    augmented by :func:`augment_batch` (random crop + flip). Doing this per batch on the
    GPU instead of per image in ``DataLoader`` workers is what keeps a fast GPU busy; on a
    CPU it is simply cheaper. It plays the role of a ``DataLoader`` for
    :func:`handson.train.fit` (``len(loader)`` batches per epoch, new order every epoch).

    ``data``: an :class:`handson.data.ImageDataset` (its images and labels are used) or a
    uint8 ``(N, C, H, W)`` tensor with ``labels`` given. ``shuffle`` and ``drop_last``
    default to ``train``. ``seed`` fixes the order and the augmentation of every epoch; the
    random numbers are drawn by a generator on ``device`` (on a CPU the same numbers as
    ``torch.Generator().manual_seed(seed)``; on a GPU other ones, but no step waits for the host).
    ``cutout``: with ``train=True``, blank a random ``cutout x cutout`` square of every image
    after the crop and flip (:func:`cutout`; 0 = off). ``channels_last=True`` emits batches in
    channels-last memory layout, so that :func:`handson.train.fit` with ``channels_last=True``
    need not copy them again.
    """

    def __init__(self, data, labels=None, *, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], train: bool = False, padding: int = 4, flip: bool = True,
                 shuffle: bool | None = None, drop_last: bool | None = None, device=None,
                 seed: int = 0, cutout: int = 0, channels_last: bool = False):
        if labels is None:
            if not (hasattr(data, "images") and hasattr(data, "labels")):
                raise ValueError("pass an ImageDataset, or a uint8 image tensor together with labels")
            data, labels = data.images, data.labels
        _check_uint8_images(data)
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or len(labels) != len(data):
            raise ValueError(f"labels must be 1-D with one label per image: {tuple(labels.shape)} "
                             f"for {len(data)} images")
        batch_size = _v.positive_int(batch_size, "batch_size", "ImageLoader")
        mean, std = [float(m) for m in mean], [float(v) for v in std]
        if len(mean) != data.shape[1] or len(std) != data.shape[1]:
            raise ValueError(f"mean and std need one value per channel ({data.shape[1]}), "
                             f"got {len(mean)} and {len(std)}")
        if any(v <= 0 for v in std):
            raise ValueError(f"std must be positive, got {std}")
        if train and padding >= min(data.shape[2], data.shape[3]):
            raise ValueError(f"padding must be smaller than the image, got {padding}")
        cutout = _v.nonnegative_int(cutout, "cutout", "ImageLoader")
        if cutout > max(data.shape[2], data.shape[3]):
            raise ValueError(f"ImageLoader(cutout={cutout}): the square is larger than the "
                             f"{data.shape[2]}x{data.shape[3]} images")
        from . import device as _device
        self.device = torch.device(device) if device is not None else _device.pick()
        self.images = data.to(self.device)
        self.labels = labels.long().to(self.device)
        self.mean = torch.tensor(mean, device=self.device).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).reshape(1, -1, 1, 1)
        self.batch_size, self.train, self.padding, self.flip = batch_size, train, padding, flip
        self.cutout, self.channels_last = cutout, bool(channels_last)
        self.shuffle = train if shuffle is None else bool(shuffle)
        self.drop_last = train if drop_last is None else bool(drop_last)
        if self.drop_last and len(data) < batch_size:
            raise ValueError(f"drop_last with {len(data)} images and batch_size {batch_size} gives "
                             "no batch at all; lower the batch size")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` on the device -> normalized (and, if training, augmented) floats."""
        x = (images.float() / 255 - self.mean) / self.std
        if self.train:
            x = augment_batch(x, self.padding, self.flip, self.generator)
            x = cutout(x, self.cutout, self.generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self):
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator, device=self.device) if self.shuffle \
            else torch.arange(n, device=self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.prepare(self.images[idx]), self.labels[idx]


def time_to_accuracy(history: dict, target: float, key: str = "val_accuracy") -> float | None:
    """Wall time (``history["time_s"]``) at the end of the first epoch whose ``key`` reaches
    ``target``, or ``None`` if no epoch did. ``history`` is what :func:`handson.train.fit` returns."""
    for name in (key, "time_s"):
        if name not in history:
            raise KeyError(f"history has no {name!r}; train with a val_loader (keys: {sorted(history)})")
    for value, seconds in zip(history[key], history["time_s"]):
        if value >= target:
            return float(seconds)
    return None


# --------------------------------------------------------------------------- recipes
# Chapter 5's two training recipes, shared by the notebook and ``tools/gpu.py`` (one code path:
# every size comes from handson.scale.pick, so HANDSON_SCALE=smoke runs the same code tiny).


def recipe(name: str, at: str | None = None) -> dict:
    """The sizes and hyperparameters of one of chapter 5's recipes at the active scale (or at
    the scale ``at``: ``"smoke"``, ``"cpu"`` or ``"gpu"``, e.g. to quote the gpu recipe).

    ``"data"``: ``n_train`` (None = all 50,000), ``n_val`` (held out of them), ``n_test``
    (None = all 10,000), ``eval_batch``. ``"small_cnn"``: the TensorFlow tutorial's baseline
    (Adam 1e-3, no augmentation, 10 epochs at ``gpu`` scale). ``"fast_resnet"``: the ResNet-9
    recipe after Page (2019): SGD with Nesterov momentum, warmup then linear decay, label
    smoothing 0.2, crop + flip, at ``gpu`` scale width 64, batch 512, 24 epochs with an 8x8
    cutout (Page's DAWNBench run) and ``torch.compile``, three seeds.
    """
    from . import scale
    if at is not None and at not in scale.SCALES:
        raise ValueError(f"recipe(at=...): expected one of {scale.SCALES} or None, got {at!r}")

    def pick(**sizes):                        # scale.pick, or the value at the scale ``at``
        return sizes[at] if at is not None else scale.pick(**sizes)

    if name == "data":
        return dict(n_train=pick(smoke=1_000, cpu=20_000, gpu=None),
                    n_val=pick(smoke=200, cpu=2_000, gpu=2_000),
                    n_test=pick(smoke=500, cpu=None, gpu=None),
                    eval_batch=pick(smoke=250, cpu=500, gpu=1000))
    if name == "small_cnn":
        return dict(epochs=pick(smoke=1, cpu=5, gpu=10),
                    batch_size=pick(smoke=64, cpu=128, gpu=32), lr=1e-3)
    if name == "fast_resnet":
        return dict(width=pick(smoke=4, cpu=16, gpu=64),
                    epochs=pick(smoke=1, cpu=4, gpu=24),
                    batch_size=pick(smoke=64, cpu=128, gpu=512),
                    peak_lr=pick(smoke=0.2, cpu=0.2, gpu=0.4),
                    weight_decay=5e-4, warmup_frac=0.2, label_smoothing=0.2,
                    cutout=pick(smoke=0, cpu=0, gpu=8),
                    seeds=pick(smoke=[0], cpu=[0], gpu=[0, 1, 2]),
                    compile=pick(smoke=False, cpu=False, gpu=True))
    raise ValueError(f"recipe(name): expected 'data', 'small_cnn' or 'fast_resnet', got {name!r}")


def fast_resnet_lr(step: int, peak: float, total: int, warmup_frac: float = 0.2) -> float:
    """The fast ResNet's learning rate at ``step``: linear warmup to ``peak`` over the first
    ``warmup_frac`` of ``total`` steps, then linear decay to 0 (``optim.warmup_linear_lr``)."""
    from . import optim
    return optim.warmup_linear_lr(min(step, total), peak, int(warmup_frac * total), total)


def train_fast_resnet(train_set, val_set, mean, std, *, run_seed: int = 0,
                      recipe_: dict | None = None, device=None, amp=None,
                      max_steps: int | None = None, progress: bool = True, **changes):
    """Train one seed of the fast ResNet recipe; return ``(net, history)`` (``train.fit``'s).

    ``recipe_``: :func:`recipe` ``("fast_resnet")`` by default; ``changes`` override entries
    (``width=8``, ``peak_lr=0.1``, ``cutout=8``, ...). ``max_steps`` caps the steps per epoch
    (the schedule then spans the capped run). A fresh network and a fresh augmenting
    :class:`ImageLoader` (seeded with ``run_seed``, channels-last) on ``device``.
    """
    from . import optim, seed as _seed, train as _train, metrics as _metrics
    r = {**(recipe_ or recipe("fast_resnet")), **changes}
    data = recipe("data")
    device = torch.device(device) if device is not None else None
    if device is None:
        from . import device as _device
        device = _device.pick()
    _seed.set_seed(run_seed)
    net = FastResNet(r["width"])
    tr = ImageLoader(train_set, batch_size=r["batch_size"], mean=mean, std=std, train=True,
                     shuffle=True, drop_last=True, device=device, seed=run_seed,
                     cutout=r["cutout"], channels_last=True)
    va = ImageLoader(val_set, batch_size=data["eval_batch"], mean=mean, std=std, device=device,
                     channels_last=True)
    steps = r["epochs"] * min(len(tr), max_steps or len(tr))
    sgd = torch.optim.SGD(net.parameters(), lr=r["peak_lr"], momentum=0.9, nesterov=True,
                          weight_decay=r["weight_decay"])
    sched = optim.FunctionLR(sgd, lambda t: fast_resnet_lr(t, r["peak_lr"], steps,
                                                           r["warmup_frac"]))
    history = _train.fit(net, tr, nn.CrossEntropyLoss(label_smoothing=r["label_smoothing"]), sgd,
                         r["epochs"], val_loader=va, scheduler=sched, device=device, amp=amp,
                         channels_last=True, metrics={"accuracy": _metrics.accuracy},
                         max_steps_per_epoch=max_steps, progress=progress,
                         compile=r["compile"])
    return net, history


def train_small_cnn(train_set, val_set, mean, std, *, run_seed: int = 0, device=None, amp=None,
                    progress: bool = True, recipe_: dict | None = None):
    """Train the small CNN baseline (:func:`recipe` ``("small_cnn")``): Adam, no augmentation,
    shuffled batches; return ``(net, history)``."""
    from . import seed as _seed, train as _train, metrics as _metrics
    r = recipe_ or recipe("small_cnn")
    if device is None:
        from . import device as _device
        device = _device.pick()
    _seed.set_seed(run_seed)
    net = SmallCNN()
    tr = ImageLoader(train_set, batch_size=r["batch_size"], mean=mean, std=std, train=False,
                     shuffle=True, drop_last=True, device=device, seed=run_seed,
                     channels_last=True)
    va = ImageLoader(val_set, batch_size=recipe("data")["eval_batch"], mean=mean, std=std,
                     device=device, channels_last=True)
    history = _train.fit(net, tr, nn.CrossEntropyLoss(), torch.optim.Adam(net.parameters(),
                                                                          lr=r["lr"]),
                         r["epochs"], val_loader=va, device=device, amp=amp, channels_last=True,
                         metrics={"accuracy": _metrics.accuracy}, progress=progress)
    return net, history


# --------------------------------------------------------------------------- TTA


class FlipTTA(nn.Module):
    """Test-time augmentation: the mean of the logits for ``x`` and its mirror image.

    Wrap a trained classifier and use it like the model itself, e.g.
    ``train.predict(FlipTTA(model), loader)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x)
        return (self.model(x) + self.model(torch.flip(x, dims=(-1,)))) / 2


# --------------------------------------------------------------------------- saving

# Not vision-specific: they live in handson.models; these names keep notebooks working.
save_weights = _models.save_weights
load_weights = _models.load_weights

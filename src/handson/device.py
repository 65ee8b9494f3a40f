"""Pick the fastest available device and say what it is."""
from __future__ import annotations

import os
import platform

import torch

ENV_VAR = "HANDSON_DEVICE"

#: device types :func:`pick` accepts (``HANDSON_DEVICE`` / ``prefer``), optionally with an
#: index such as ``cuda:1``
KINDS = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _parse(wanted, source: str) -> torch.device:
    """``wanted`` as a device of one of :data:`KINDS`; ``source`` names where it came from."""
    try:
        dev = torch.device(wanted)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in KINDS:
        raise ValueError(f"{source}={wanted!r} is not a device this book runs on; use one of "
                         f"{', '.join(KINDS)} (optionally with an index, e.g. 'cuda:0'), or "
                         f"leave it unset to pick the fastest available device.")
    return dev


def _check_available(dev: torch.device, wanted, source: str, fix: str) -> torch.device:
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{source}={wanted!r} asks for a CUDA GPU, but CUDA is not "
                               f"available here (torch {torch.__version__}, CUDA build: "
                               f"{torch.version.cuda or 'no'}). {fix}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"{source}={wanted!r}: this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s). {fix}")
    if dev.type == "mps" and not _mps_available():
        raise RuntimeError(f"{source}={wanted!r} asks for an Apple GPU (MPS), but MPS is not "
                           f"available here. {fix}")
    return dev


def pick(prefer: str | torch.device | None = None) -> torch.device:
    """Return ``cuda`` if present, else ``mps`` (Apple), else ``cpu``.

    ``prefer`` (or the ``HANDSON_DEVICE`` environment variable) forces a device,
    e.g. ``"cpu"`` to compare speeds; asking for one that is absent is an error, and
    so is a device type other than ``cpu``, ``cuda`` or ``mps``.
    """
    if prefer is not None:
        dev = _parse(prefer, "prefer")
        return _check_available(dev, prefer, "prefer",
                                "Pass prefer='cpu' or prefer=None (the fastest available device).")
    wanted = os.environ.get(ENV_VAR, "").strip() or None
    if wanted:
        dev = _parse(wanted, ENV_VAR)
        return _check_available(dev, wanted, ENV_VAR,
                                f"Set {ENV_VAR}=cpu, or unset {ENV_VAR} to pick by hardware.")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve(device=None, func: str = "fit") -> torch.device:
    """The device a helper's ``device=`` argument means: :func:`pick` for ``None``, else that
    device, checked to exist (``func`` names the helper in the error)."""
    if device is None:
        return pick()
    if isinstance(device, torch.device):
        dev = device
    else:
        dev = _parse(device, f"{func}(device=...)")
    return _check_available(dev, device if not isinstance(device, torch.device) else str(device),
                            f"{func}(device)",
                            "Pass device='cpu', or device=None to use the fastest available one.")


def describe(device: torch.device | str | None = None) -> str:
    """Human-readable name: GPU model and memory, or CPU model and thread count."""
    dev = torch.device(device) if device is not None else pick()
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        return f"cuda:{idx} {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if dev.type == "mps":
        return "mps (Apple GPU)"
    cpu = platform.processor() or platform.machine()
    return f"cpu {cpu} ({torch.get_num_threads()} torch threads, {os.cpu_count()} cores)"


def mixed_precision(device: torch.device | str | None = None) -> str | None:
    """The mixed precision to train with on ``device``: ``"bf16"``, ``"fp16"`` or ``None``.

    ``"bf16"`` on a CUDA GPU that computes bfloat16 natively (compute capability 8.0 or
    newer: A100, L4, H100, RTX 30xx and later); ``"fp16"``, which needs a gradient scaler
    (``torch.amp.GradScaler``), on older CUDA GPUs such as Colab's T4 (7.5), where
    ``torch.cuda.is_bf16_supported()`` says True only because bfloat16 can be emulated,
    slowly; ``None`` (full float32) on the CPU and on Apple's MPS. ``device=None`` means
    :func:`pick`. For a Hugging Face ``Trainer``:
    ``TrainingArguments(bf16=kind == "bf16", fp16=kind == "fp16", ...)``.
    """
    dev = pick() if device is None else torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    if torch.version.hip:             # ROCm GPUs that PyTorch supports all compute bf16
        return "bf16"
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:                 # torch < 2.3 has no including_emulation
        native = torch.cuda.get_device_capability(dev)[0] >= 8
    return "bf16" if native else "fp16"

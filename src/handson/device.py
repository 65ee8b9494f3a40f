"""Pick the fastest available device and say what it is."""
from __future__ import annotations

import os
import platform

import torch

ENV_VAR = "HANDSON_DEVICE"


def pick(prefer: str | None = None) -> torch.device:
    """Return ``cuda`` if present, else ``mps`` (Apple), else ``cpu``.

    ``prefer`` (or the ``HANDSON_DEVICE`` environment variable) forces a device,
    e.g. ``"cpu"`` to compare speeds; asking for one that is absent is an error.
    """
    wanted = prefer or os.environ.get(ENV_VAR) or None
    if wanted:
        dev = torch.device(wanted)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {wanted!r} was requested but CUDA is not available; "
                               f"unset {ENV_VAR} or pass prefer='cpu'.")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                      and torch.backends.mps.is_available()):
            raise RuntimeError(f"device {wanted!r} was requested but MPS is not available; "
                               f"unset {ENV_VAR} or pass prefer='cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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

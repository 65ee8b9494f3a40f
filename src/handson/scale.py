"""One code path, three sizes.

``HANDSON_SCALE`` chooses how big every experiment is:

* ``smoke`` -- seconds; what CI runs to prove each notebook still executes.
* ``cpu``   -- a few minutes on a 2-core laptop, with results worth reading.
* ``gpu``   -- the full recipe on one datacenter GPU.

If the variable is unset the scale is ``gpu`` when CUDA is available, else ``cpu``.
A notebook never branches on the scale; it only asks for sizes::

    epochs  = scale.pick(smoke=1, cpu=3, gpu=20)
    n_train = scale.pick(smoke=512, cpu=10_000, gpu=None)   # None = everything
"""
from __future__ import annotations

import os

SCALES = ("smoke", "cpu", "gpu")
ENV_VAR = "HANDSON_SCALE"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return torch.cuda.is_available()


def current() -> str:
    """Return the active scale: ``HANDSON_SCALE`` if set, else ``gpu``/``cpu`` by hardware."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if not value:
        return "gpu" if _cuda_available() else "cpu"
    if value not in SCALES:
        raise ValueError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a scale; "
            f"set it to one of {', '.join(SCALES)} (or unset it to pick by hardware)."
        )
    return value


def pick(*, smoke, cpu, gpu):
    """Return the value for the active scale; all three must be given by keyword."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[current()]


def describe() -> str:
    """One line saying which scale is active and why."""
    name = current()
    why = f"from {ENV_VAR}" if os.environ.get(ENV_VAR) else "chosen by hardware"
    return f"scale: {name} ({why})"

"""Helpers for the runnable book *Hands-On Large Models*.

Submodules are imported lazily, so ``import handson`` is instant and
``handson.data`` only pulls in what it needs when first used::

    import handson
    epochs = handson.scale.pick(smoke=1, cpu=3, gpu=20)
"""
from __future__ import annotations

import importlib
import time

__version__ = "0.1.0"

#: Moment the package was first imported; the provenance cell reports the
#: wall time since then (the setup cell imports handson first thing).
STARTED_AT = time.time()

_SUBMODULES = {
    "scale", "device", "seed", "data", "models", "train", "metrics", "plot",
    "check", "provenance", "nn", "optim", "regularization", "attention",
    "vision", "text", "lm", "claims", "validate", "llm", "scaling", "serve", "compress",
    "results",
}

__all__ = sorted(_SUBMODULES) + ["STARTED_AT", "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'handson' has no attribute {name!r}")

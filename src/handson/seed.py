"""Make runs repeatable."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_seed(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python, NumPy and PyTorch (all devices); return the seed.

    ``deterministic=True`` also asks PyTorch for deterministic kernels
    (slower on GPU; some ops then raise if they have no deterministic version).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed

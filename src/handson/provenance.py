"""The last cell of every notebook: what produced these outputs.

:func:`report` prints one ``name: value`` per line so tools (and tests) can read
the numbers back from a notebook's stored outputs with :func:`parse`.
"""
from __future__ import annotations

import platform
import sys
import time

from . import STARTED_AT


def collect(**results) -> dict[str, object]:
    """The provenance fields plus the chapter's results, as an ordered dict."""
    import torch

    from . import data, device, scale
    info: dict[str, object] = {
        "scale": scale.current(),
        "device": device.describe(device.pick()),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for name in ("transformers", "datasets", "torchvision"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = getattr(module, "__version__", "?")
    info["wall_time_s"] = round(time.time() - STARTED_AT, 1)
    info["data"] = "; ".join(f"{k} <- {v}" for k, v in data.SOURCES.items()) or "none"
    from . import models
    if models.CHOSEN:
        info["model"] = "; ".join(models.CHOSEN)
    for key, value in results.items():
        info[key] = round(value, 4) if isinstance(value, float) else value
    return info


class Provenance(dict):
    """The dict :func:`report` returns; a notebook shows nothing more than the printed table."""

    def _ipython_display_(self) -> None:
        pass


def report(**results) -> dict[str, object]:
    """Print the provenance table (``name: value`` per line) and return it (as a dict)."""
    info = Provenance(collect(**results))
    width = max(len(k) for k in info)
    print("provenance")
    for key, value in info.items():
        print(f"  {key:<{width}} : {value}")
    return info


def parse(text: str) -> dict[str, str]:
    """Read back what :func:`report` printed (values stay strings)."""
    out = {}
    lines = text.splitlines()
    if not lines or lines[0].strip() != "provenance":
        raise ValueError("not a provenance report: it must start with the line 'provenance'")
    for line in lines[1:]:
        if " : " in line:
            key, value = line.split(" : ", 1)
            out[key.strip()] = value.strip()
    return out

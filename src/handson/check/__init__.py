"""Exercise checkers: they print PASS or a hint, and never raise at the reader.

``close(actual, expected)`` compares numbers/arrays; ``function_matches``
runs a reader's function on fresh random inputs against a reference.
Chapter checkers live in submodules (``handson.check.intro``, ...).
"""
from __future__ import annotations

import importlib
import traceback
from typing import Callable

import numpy as np

_SUBMODULES = {"intro", "nn", "optim", "regularization", "attention", "vision", "text", "lm"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'handson.check' has no attribute {name!r}")


def _as_array(x):
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x, dtype=float)


class Verdict:
    """What a checker returns: truthy on PASS. It prints nothing more in a notebook
    (the checker already printed PASS or the hint)."""

    def __init__(self, ok: bool):
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other) -> bool:
        return bool(self) == bool(other)

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return "PASS" if self.ok else "NOT YET"

    def _ipython_display_(self) -> None:
        pass


def reader_error(exc: BaseException, label: str, hint: str | None) -> "Verdict":
    """The verdict for a reader's function that raised: 'not implemented yet' or where it failed."""
    if isinstance(exc, NotImplementedError):
        return _say(False, label, "not implemented yet", hint)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    line = f" (line {where.lineno})" if where else ""
    return _say(False, label, f"your function raised {type(exc).__name__}: {exc}{line}", hint)


def _say(ok: bool, label: str, detail: str, hint: str | None) -> Verdict:
    if ok:
        print(f"PASS {label}{detail}")
    else:
        print(f"NOT YET {label}{detail}" + (f"\n  hint: {hint}" if hint else ""))
    return Verdict(ok)


def close(actual, expected, *, rtol: float = 1e-4, atol: float = 1e-6, hint: str | None = None,
          label: str = "") -> Verdict:
    """PASS if ``actual`` equals ``expected`` within tolerance; else print a hint. Returns bool."""
    label = f"{label}: " if label else ""
    if actual is None or actual is Ellipsis:
        return _say(False, label, "no answer yet (the cell still holds None / ...)", hint)
    try:
        a, e = _as_array(actual), _as_array(expected)
    except (TypeError, ValueError) as exc:
        return _say(False, label, f"could not read your answer as numbers ({exc})", hint)
    if a.shape != e.shape:
        return _say(False, label, f"shape {a.shape}, expected {e.shape}", hint)
    if not np.all(np.isfinite(a)):
        return _say(False, label, "your answer contains nan or inf", hint)
    diff = float(np.max(np.abs(a - e))) if a.size else 0.0
    ok = bool(np.allclose(a, e, rtol=rtol, atol=atol))
    return _say(ok, label, f"(max abs difference {diff:.2e})", hint)


def function_matches(your_fn: Callable, reference_fn: Callable, make_inputs: Callable[[int], tuple],
                     *, trials: int = 5, rtol: float = 1e-4, atol: float = 1e-6,
                     hint: str | None = None, label: str = "") -> bool:
    """Run both functions on ``make_inputs(trial)`` for several trials and compare outputs.

    Tuple outputs are compared element by element. Exceptions in the reader's
    function are reported as a short message, not a traceback.
    """
    label = f"{label}: " if label else ""
    for trial in range(trials):
        inputs = make_inputs(trial)
        try:
            got = your_fn(*inputs)
        except Exception as exc:  # the reader's code may fail in any way
            return reader_error(exc, label, hint)
        want = reference_fn(*inputs)
        got_t = got if isinstance(got, tuple) else (got,)
        want_t = want if isinstance(want, tuple) else (want,)
        if len(got_t) != len(want_t):
            return _say(False, label, f"returned {len(got_t)} values, expected {len(want_t)}", hint)
        for g, w in zip(got_t, want_t):
            if g is None:
                return _say(False, label, "returned None", hint)
            try:
                a, e = _as_array(g), _as_array(w)
            except (TypeError, ValueError):
                return _say(False, label, f"returned {type(g).__name__}, expected numbers", hint)
            if a.shape != e.shape:
                return _say(False, label, f"on trial {trial + 1}: shape {a.shape}, "
                            f"expected {e.shape}", hint)
            if not np.allclose(a, e, rtol=rtol, atol=atol):
                diff = float(np.max(np.abs(a - e)))
                return _say(False, label, f"on trial {trial + 1}: max abs difference {diff:.2e}", hint)
    return _say(True, label, f"({trials} random trials)", None)

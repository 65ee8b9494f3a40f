"""Exercise checkers: they print PASS or a hint, and never raise at the reader.

``close(actual, expected)`` compares numbers/arrays; ``function_matches``
runs a reader's function on fresh random inputs against a reference.
Chapter checkers live in submodules (``handson.check.intro``, ...).
"""
from __future__ import annotations

import copy
import importlib
import os
import traceback
from typing import Callable

import numpy as np

_SUBMODULES = {"intro", "nn", "optim", "regularization", "attention", "vision", "text", "lm",
               "llm", "scaling", "serve"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'handson.check' has no attribute {name!r}")


def _as_array(x):
    """A reader's answer as a float64 array; strings and booleans are not numbers here."""
    if isinstance(x, (str, bytes, bool)) or (isinstance(x, (list, tuple)) and any(
            isinstance(v, (str, bytes, bool)) for v in x)):
        raise TypeError(f"{type(x).__name__} is not a number")
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(x)
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "b" and a.ndim == 0):
        raise TypeError(f"{type(x).__name__} of {a.dtype} is not numbers")
    return a.astype(float)


def is_integer(x) -> bool:
    """Python/NumPy integers and 0-d integer tensors count; floats and booleans do not."""
    if isinstance(x, bool) or isinstance(x, np.bool_):
        return False
    if isinstance(x, (int, np.integer)):
        return True
    try:
        import torch
        return isinstance(x, torch.Tensor) and x.dim() == 0 and not x.is_floating_point() \
            and x.dtype != torch.bool and not x.is_complex()
    except ImportError:  # pragma: no cover
        return False


def one_number(answer):
    """A one-element tensor or array answer (e.g. shape ``(1,)``) as a 0-d one; else unchanged."""
    try:
        import torch
        if isinstance(answer, torch.Tensor) and answer.numel() == 1:
            return answer.detach().reshape(())
    except ImportError:  # pragma: no cover
        pass
    if isinstance(answer, np.ndarray) and answer.size == 1:
        return answer.reshape(())
    return answer


def fresh(inputs):
    """A deep copy of a tuple of inputs, so an in-place change by one function cannot
    leak into the next call (tensors are cloned)."""
    return copy.deepcopy(inputs)


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


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _reader_line(exc: BaseException) -> str:
    """' (line N of your code)' for the innermost frame of the reader's own code, if any."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    mine = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)
            and "site-packages" not in f.filename and "/lib/python" not in f.filename]
    return f" (line {mine[-1].lineno} of your code)" if mine else ""


def reader_error(exc: BaseException, label: str, hint: str | None) -> "Verdict":
    """The verdict for a reader's function that raised: 'not implemented yet' or where it failed."""
    if isinstance(exc, NotImplementedError):
        return _say(False, label, "not implemented yet", hint)
    return _say(False, label, f"your function raised {type(exc).__name__}: {exc}{_reader_line(exc)}", hint)


class CheckerBug(RuntimeError):
    """The checker itself failed (not the reader's answer): please report it."""


def _say(ok: bool, label: str, detail: str, hint: str | None) -> Verdict:
    label, detail = label.strip().rstrip(":"), detail.strip()
    text = f"{label}: {detail}" if label and detail else (label or detail)
    if ok:
        print(f"PASS {text}".rstrip())
    else:
        print(f"NOT YET {text}".rstrip() + (f"\n  hint: {hint}" if hint else ""))
    return Verdict(ok)


NO_ANSWER = "no answer yet (the cell still holds None / ...)"


def close(actual, expected, *, rtol: float = 1e-4, atol: float = 1e-6, hint: str | None = None,
          label: str = "", places: int | None = None, integer: bool = False,
          nudge: str | None = None) -> Verdict:
    """PASS if ``actual`` equals ``expected`` within tolerance; else print a hint.

    ``places=k`` accepts an answer typed by hand to k decimals (rounded or cut off);
    ``integer=True`` requires a whole number of an integer type. ``nudge`` is what an
    unanswered cell hears (a conceptual pointer, never the answer); ``hint`` is for a
    wrong answer. Neither the expected value nor the difference is ever printed.
    """
    label = f"{label}: " if label else ""
    if actual is None or actual is Ellipsis:
        return _say(False, label, NO_ANSWER, nudge or hint)
    if integer and not is_integer(actual):
        return _say(False, label, f"the answer must be an integer (an int, not "
                    f"{type(actual).__name__})", hint)
    try:
        a, e = _as_array(actual), _as_array(expected)
    except (TypeError, ValueError) as exc:
        return _say(False, label, f"could not read your answer as numbers ({exc})", hint)
    if a.shape != e.shape:
        return _say(False, label, f"shape {a.shape}, expected {e.shape}", hint)
    if not np.all(np.isfinite(a)):
        return _say(False, label, "your answer contains nan or inf", hint)
    if integer:
        ok = bool(np.array_equal(a, e))
    elif places is not None:
        ok = bool(np.all(np.abs(a - e) <= 10.0 ** -places * (1 + 1e-9)))
    else:
        ok = bool(np.allclose(a, e, rtol=rtol, atol=atol))
    if ok:
        return _say(True, label, "", None)
    return _say(False, label, "not right yet", hint)


def function_matches(your_fn: Callable, reference_fn: Callable, make_inputs: Callable[[int], tuple],
                     *, trials: int = 5, rtol: float = 1e-4, atol: float = 1e-6,
                     hint: str | None = None, label: str = "", nudge: str | None = None) -> bool:
    """Run both functions on ``make_inputs(trial)`` for several trials and compare outputs.

    Each function gets its own deep copy of the inputs (an in-place update by the
    reader cannot change what the reference sees). Tuple outputs are compared element
    by element. Exceptions in the reader's function are reported as a short message
    that points at the reader's line; a failure of the reference is a checker bug.
    """
    label = f"{label}: " if label else ""
    for trial in range(trials):
        inputs = make_inputs(trial)
        try:
            got = your_fn(*fresh(inputs))
        except Exception as exc:  # the reader's code may fail in any way
            return reader_error(exc, label, hint)
        try:
            want = reference_fn(*fresh(inputs))
        except Exception as exc:  # pragma: no cover - a bug of the book, not the reader
            raise CheckerBug(f"the checker {label.rstrip(': ')!r} failed on its own reference; "
                             f"please report this: {exc!r}") from exc
        got_t = got if isinstance(got, tuple) else (got,)
        want_t = want if isinstance(want, tuple) else (want,)
        if all(g is None for g in got_t):
            return _say(False, label, "your function returned None", nudge or hint)
        if len(got_t) != len(want_t):
            return _say(False, label, f"returned {len(got_t)} values, expected {len(want_t)}", hint)
        for g, w in zip(got_t, want_t):
            if g is None:
                return _say(False, label, "returned None", nudge or hint)
            try:
                a, e = _as_array(g), _as_array(w)
            except (TypeError, ValueError):
                return _say(False, label, f"returned {type(g).__name__}, expected numbers", hint)
            if a.shape != e.shape:
                return _say(False, label, f"on trial {trial + 1}: shape {a.shape}, "
                            f"expected {e.shape}", hint)
            if not np.allclose(a, e, rtol=rtol, atol=atol):
                return _say(False, label, f"on trial {trial + 1}: the values differ", hint)
    return _say(True, label, f"({trials} random trials)", None)

"""The argument rules every ``handson`` helper follows: one way to say no to bad input.

Every check returns the cleaned value (an ``int``, a ``float``, a tensor) or raises with
a message that names the function's argument, what it got and what it expects::

    from handson import validate as V
    V.positive_number(-1, "grad_clip", "fit", allow_none=True)
    # ValueError: fit(grad_clip=-1): expected a positive number or None, got -1

Rules:

* **integers** are Python ``int`` and NumPy integers (``np.int64(4)``); ``bool`` is not an
  integer here (``True`` as a batch size is a bug), and neither is ``4.0``;
* **numbers** are integers and floats (Python, NumPy, or a one-element tensor); ``bool`` is not
  a number; NaN and infinity are refused;
* **tensors** must be ``torch.Tensor`` where a tensor is required; :func:`tensor` with
  ``convert=True`` also takes lists and NumPy arrays of numbers, but never ``None`` or a list
  holding ``None`` (NumPy would silently turn those into NaN).

A value of the wrong *type* raises :class:`ArgumentTypeError`, which is both a ``TypeError`` and
a ``ValueError``; a value of the right type but out of range raises ``ValueError``. So
``except ValueError`` catches every bad argument.
"""
from __future__ import annotations

import math
import numbers
import sys
from typing import Iterable

import numpy as np
import torch

__all__ = [
    "ArgumentTypeError", "is_int", "is_number", "integer", "positive_int", "nonnegative_int",
    "number", "positive_number", "nonnegative_number", "probability", "tensor", "choice",
    "describe", "caller",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (both a ``TypeError`` and a ``ValueError``)."""


# --------------------------------------------------------------------------- messages

def describe(value, limit: int = 60) -> str:
    """Short text for ``value`` in an error message (tensors by shape and dtype)."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and value.dim() <= 1:
            return f"tensor({value.item()!r}, dtype={value.dtype})"
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def caller(depth: int = 1) -> str:
    """Name of the public function ``depth`` frames above the caller, for messages.

    Private helpers (names starting with ``_``) are skipped, so ``_check(x)`` called from
    ``SGD.__init__`` gets ``"SGD"`` and from ``sigmoid`` gets ``"sigmoid"``.
    """
    frame = sys._getframe(depth + 1)
    for _ in range(6):
        code = frame.f_code
        name = getattr(code, "co_qualname", code.co_name)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        name = name.replace("<locals>.", "")
        if not name.split(".")[-1].startswith("_") or frame.f_back is None:
            break
        frame = frame.f_back
    return name


def _fail(value, name: str, func: str | None, expected: str, *, type_error: bool = False,
          hint: str = ""):
    shown = describe(value)
    short = shown if len(shown) <= 30 and not isinstance(value, (torch.Tensor, np.ndarray)) \
        else "..."
    where = f"{func}({name}={short})" if func else name
    message = f"{where}: expected {expected}, got {shown}"
    if hint:
        message += f"; {hint}"
    raise (ArgumentTypeError if type_error else ValueError)(message)


# --------------------------------------------------------------------------- predicates

def is_int(value) -> bool:
    """True for Python and NumPy integers, False for ``bool``, floats and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """True for integers and floats (Python or NumPy), False for ``bool`` and the rest."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


# --------------------------------------------------------------------------- integers

def integer(value, name: str, func: str | None = None, *, low: int | None = None,
            high: int | None = None, allow_none: bool = False, what: str | None = None):
    """``value`` as an ``int`` in ``[low, high]`` (either bound optional); see the module rules."""
    if value is None and allow_none:
        return None
    if what is None:
        if low is not None and high is not None:
            what = f"an int in [{low}, {high}]"
        elif low == 1:
            what = "a positive int"
        elif low == 0:
            what = "an int >= 0"
        elif low is not None:
            what = f"an int >= {low}"
        elif high is not None:
            what = f"an int <= {high}"
        else:
            what = "an int"
    if allow_none:
        what += " or None"
    if not is_int(value):
        hint = ""
        if isinstance(value, float) and value.is_integer():
            hint = f"write {int(value)} (an int), not {value!r}"
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            hint = "convert it with int(x)"
        _fail(value, name, func, what, type_error=True, hint=hint)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(value, name, func, what)
    return value


def positive_int(value, name: str, func: str | None = None, *, allow_none: bool = False):
    """An ``int >= 1``."""
    return integer(value, name, func, low=1, allow_none=allow_none)


def nonnegative_int(value, name: str, func: str | None = None, *, allow_none: bool = False):
    """An ``int >= 0``."""
    return integer(value, name, func, low=0, allow_none=allow_none)


# --------------------------------------------------------------------------- floats

def number(value, name: str, func: str | None = None, *, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False,
           allow_none: bool = False, finite: bool = True, what: str | None = None):
    """``value`` as a ``float`` in the interval given by ``low`` / ``high``.

    ``low_open`` / ``high_open`` exclude the bound itself. A one-element tensor is read as its
    number. NaN (and, with ``finite=True``, infinity) is refused.
    """
    if value is None and allow_none:
        return None
    if what is None:
        if low is not None and high is not None:
            what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low == 0 and low_open:
            what = "a positive number"
        elif low == 0:
            what = "a number >= 0"
        elif low is not None:
            what = f"a number {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            what = f"a number {'<' if high_open else '<='} {high:g}"
        else:
            what = "a finite number" if finite else "a number"
    if allow_none:
        what += " or None"
    raw = value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool \
            and not value.is_complex():
        value = value.item()
    if not is_number(value):
        _fail(raw, name, func, what, type_error=True)
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        _fail(raw, name, func, what)
    if low is not None and (value < low or (low_open and value == low)):
        _fail(raw, name, func, what)
    if high is not None and (value > high or (high_open and value == high)):
        _fail(raw, name, func, what)
    return value


def positive_number(value, name: str, func: str | None = None, *, allow_none: bool = False):
    """A finite ``float > 0``."""
    return number(value, name, func, low=0.0, low_open=True, allow_none=allow_none)


def nonnegative_number(value, name: str, func: str | None = None, *, allow_none: bool = False):
    """A finite ``float >= 0``."""
    return number(value, name, func, low=0.0, allow_none=allow_none)


def probability(value, name: str, func: str | None = None, *, zero: bool = True,
                allow_none: bool = False):
    """A ``float`` in ``[0, 1]`` (``zero=False``: in ``(0, 1]``)."""
    return number(value, name, func, low=0.0, high=1.0, low_open=not zero, allow_none=allow_none)


# --------------------------------------------------------------------------- tensors

_KINDS = {
    "floating": (torch.Tensor.is_floating_point, "floating-point", ".float()"),
    "integer": (lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool,
                "integer", ".long()"),
    "bool": (lambda t: t.dtype == torch.bool, "boolean", ".bool()"),
}


def tensor(value, name: str, func: str | None = None, *, ndim: int | Iterable[int] | None = None,
           min_ndim: int | None = None, dtype=None, convert: bool = False,
           shape_hint: str = "") -> torch.Tensor:
    """``value`` as a ``torch.Tensor`` of the given rank and kind.

    ``ndim``: the required number of dimensions (an int or several allowed ints);
    ``min_ndim``: at least that many. ``dtype``: ``"floating"``, ``"integer"``, ``"bool"`` or a
    ``torch.dtype``. ``convert=True`` also accepts lists / NumPy arrays of numbers (floats
    become float32 ... as ``torch.as_tensor`` makes them); ``None`` and lists holding ``None``
    or strings are always refused. ``shape_hint`` (e.g. ``"(N, C, H, W)"``) names the layout.
    """
    kind = _KINDS.get(dtype) if isinstance(dtype, str) else None
    if isinstance(dtype, str) and kind is None:
        raise ValueError(f"dtype must be 'floating', 'integer', 'bool' or a torch.dtype, got {dtype!r}")
    label = f"{kind[1]} " if kind else ""
    what = f"a {label}tensor"
    if shape_hint:
        what += f" {shape_hint}"
    if not isinstance(value, torch.Tensor):
        if not convert or value is None or isinstance(value, (str, bytes, dict)):
            hint = "pass a torch.Tensor (torch.tensor(...))" if value is None or not convert else ""
            _fail(value, name, func, what, type_error=True, hint=hint)
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            _fail(value, name, func, what + " or an array of numbers", type_error=True)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                         or array.dtype == np.bool_):
            _fail(value, name, func, what + " or an array of numbers", type_error=True,
                  hint="every entry must be a number (None or text cannot become a tensor)")
        value = torch.as_tensor(array)
    if kind is not None and not kind[0](value):
        _fail(value, name, func, what, type_error=True, hint=f"convert it with {name}{kind[2]}")
    if isinstance(dtype, torch.dtype) and value.dtype != dtype:
        _fail(value, name, func, f"a tensor of dtype {dtype}", type_error=True,
              hint=f"convert it with {name}.to({dtype})")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            dims = " or ".join(str(d) for d in allowed)
            _fail(value, name, func, f"{what} with {dims} dimension{'' if allowed == (1,) else 's'}")
    if min_ndim is not None and value.dim() < min_ndim:
        _fail(value, name, func, f"{what} with at least {min_ndim} dimensions")
    return value


# --------------------------------------------------------------------------- choices

def choice(value, name: str, options: Iterable, func: str | None = None):
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them."""
    options = list(options)
    try:
        ok = value in options
    except TypeError:          # unhashable or incomparable values
        ok = False
    if not ok:
        listed = ", ".join(repr(o) for o in options)
        _fail(value, name, func, f"one of {listed}")
    return value

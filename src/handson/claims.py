"""Prose that cannot contradict its own run.

Two helpers for the text of a chapter:

* ``glue(key, value)`` stores a number (or short text) that the chapter's markdown
  quotes with myst-nb's ``{glue:text}`key``` role, so the published sentence shows the
  value of *this* run. It displays nothing in the notebook; without the book toolchain
  (Colab, a plain JupyterLab) it still records the value in the same way.
* ``expect(condition, claim)`` asserts a conclusion the text draws from an output. At
  the ``cpu`` and ``gpu`` scales a false claim stops the notebook (so a re-run that
  contradicts the prose cannot be published); at ``smoke``, where tiny data cannot
  support any claim, it only reports.

    acc = metrics.accuracy(logits, y)
    glue("test_acc", acc)                       # prose: {glue:text}`test_acc:.1%`
    expect(acc > 0.5, "the model beats chance")
"""
from __future__ import annotations

import numbers

from . import scale

GLUE_PREFIX = "application/papermill.record/"


class ClaimError(AssertionError):
    """A conclusion in the chapter's text does not hold for this run."""


def _plain(value):
    """Python scalars and strings only: their repr is what the page shows."""
    if hasattr(value, "item") and not isinstance(value, (str, bool, numbers.Number)):
        try:  # a 0-d or one-element tensor / NumPy value
            value = value.item()
        except (ValueError, RuntimeError):
            raise TypeError(f"glue() takes one number, got an array of shape {tuple(value.shape)}") from None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"glue() takes a number or a string, got {type(value).__name__}; "
                    "format it first, e.g. glue(key, f'{x:.2f}')")


def glue(key: str, value, fmt: str | None = None):
    """Record ``value`` under ``key`` for the chapter's prose, displaying nothing.

    ``fmt`` (a format spec such as ``".1%"`` or ``",d"``) stores the formatted text
    instead of the number; otherwise the prose chooses the format
    (``{glue:text}`key:.3f```). Returns the value, so it can wrap an expression.
    """
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"glue key must be a short identifier such as 'test_acc', got {key!r}")
    stored = _plain(value)
    if fmt is not None:
        stored = format(stored, fmt)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab or a plain Jupyter: the same record, written by hand
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - plain Python
            return value
        if get_ipython() is not None:
            display({GLUE_PREFIX + "text/plain": repr(stored)}, raw=True,
                    metadata={"scrapbook": {"name": key, "mime_prefix": GLUE_PREFIX}})
        return value
    myst_glue(key, stored, display=False)
    return value


def expect(condition, claim: str) -> None:
    """Check a conclusion of the text; raise ``ClaimError`` at cpu/gpu scale if it is false.

    Returns nothing, so a cell may end with it without echoing a value."""
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("expect() needs the claim as a sentence, e.g. expect(a > b, 'A beats B')")
    holds = bool(condition)
    if holds:
        print(f"claim holds: {claim}")
        return None
    if scale.current() == "smoke":
        print(f"claim not supported at smoke scale (tiny data; not asserted): {claim}")
        return None
    raise ClaimError(f"The text says: {claim!r}, but this run does not support it. "
                     "Change the text (or the experiment) before publishing.")

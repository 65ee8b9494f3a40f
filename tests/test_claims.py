"""handson.claims: glued values reach the stored outputs; claims fail loudly where they can."""
import numpy as np
import pytest
import torch

from handson import claims


class FakeShell:
    """Collects what IPython.display would publish."""


def test_glue_stores_plain_python_values(monkeypatch):
    published = []
    import myst_nb
    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display: published.append((key, value, display)))
    assert claims.glue("acc", np.float64(0.5)) == np.float64(0.5)
    claims.glue("n", torch.tensor(7))
    claims.glue("text", "hello")
    claims.glue("pct", 0.8423, fmt=".1%")
    assert published == [("acc", 0.5, False), ("n", 7, False), ("text", "hello", False),
                         ("pct", "84.2%", False)]
    assert type(published[0][1]) is float and type(published[1][1]) is int


@pytest.mark.parametrize("bad_key", ["", "two words", "1abc", None, 3])
def test_glue_rejects_bad_keys(bad_key):
    with pytest.raises(ValueError, match="glue key"):
        claims.glue(bad_key, 1.0)


@pytest.mark.parametrize("bad_value", [torch.ones(3), np.zeros((2, 2)), [1, 2], {"a": 1}, None])
def test_glue_rejects_values_the_page_cannot_show(bad_value):
    with pytest.raises(TypeError):
        claims.glue("x", bad_value)


def test_glue_without_myst_nb_writes_the_same_record(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    shown = []
    import IPython
    import IPython.display
    monkeypatch.setattr(builtins, "__import__", no_myst)
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda data, raw, metadata: shown.append((data, metadata)))
    claims.glue("loss", 1.25)
    assert shown == [({claims.GLUE_PREFIX + "text/plain": "1.25"},
                      {"scrapbook": {"name": "loss", "mime_prefix": claims.GLUE_PREFIX}})]


def test_myst_nb_glue_uses_the_record_format_we_write_by_hand():
    from myst_nb.ext.glue import GLUE_PREFIX
    assert GLUE_PREFIX == claims.GLUE_PREFIX


def test_expect_passes_reports_and_fails_by_scale(monkeypatch, capsys):
    monkeypatch.setenv("HANDSON_SCALE", "cpu")
    assert claims.expect(True, "B beats A") is None
    assert "claim holds: B beats A" in capsys.readouterr().out
    with pytest.raises(claims.ClaimError, match="B beats A"):
        claims.expect(False, "B beats A")
    monkeypatch.setenv("HANDSON_SCALE", "gpu")
    with pytest.raises(claims.ClaimError):
        claims.expect(np.bool_(False), "B beats A")
    monkeypatch.setenv("HANDSON_SCALE", "smoke")
    assert claims.expect(False, "B beats A") is None
    assert "not asserted" in capsys.readouterr().out


@pytest.mark.parametrize("claim", ["", "   ", None, 3])
def test_expect_needs_the_claim_in_words(claim):
    with pytest.raises(ValueError):
        claims.expect(True, claim)

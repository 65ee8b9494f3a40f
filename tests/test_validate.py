"""The argument rules of handson.validate: what they accept, what they refuse, what they say."""
import math

import numpy as np
import pytest
import torch

from handson import validate as V


@pytest.mark.parametrize("value", [0, 3, -2, np.int64(4), np.int32(1), np.uint8(7)])
def test_ints_include_numpy_integers(value):
    assert V.is_int(value)
    assert V.integer(value, "n") == int(value) and type(V.integer(value, "n")) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, 2.5, "3", None,
                                   torch.tensor(3), [1]])
def test_bools_floats_strings_are_not_ints(value):
    assert not V.is_int(value)
    with pytest.raises(TypeError) as info:
        V.integer(value, "n", "f")
    assert isinstance(info.value, ValueError)          # one except clause catches every bad value
    assert str(info.value).startswith("f(n=") and "expected an int" in str(info.value)


def test_integer_bounds_and_messages():
    assert V.positive_int(1, "k") == 1
    assert V.nonnegative_int(0, "k") == 0
    assert V.positive_int(None, "k", allow_none=True) is None
    with pytest.raises(ValueError, match=r"^f\(k=0\): expected a positive int, got 0$"):
        V.positive_int(0, "k", "f")
    with pytest.raises(ValueError, match=r"an int >= 0 or None, got -1"):
        V.nonnegative_int(-1, "k", allow_none=True)
    with pytest.raises(ValueError, match=r"an int in \[2, 5\], got 6"):
        V.integer(6, "k", low=2, high=5)
    with pytest.raises(TypeError, match=r"write 4 \(an int\)"):
        V.positive_int(4.0, "k")
    with pytest.raises(TypeError):
        V.positive_int(None, "k")                         # None only where allowed


def test_numbers():
    assert V.number(np.float32(0.5), "x") == 0.5
    assert V.number(torch.tensor(0.25), "x") == 0.25      # a one-element tensor is its number
    assert V.positive_number(3, "lr") == 3.0
    assert V.nonnegative_number(0, "wd") == 0.0
    assert V.number(math.inf, "x", finite=False) == math.inf
    for bad in (True, "0.1", None, [0.1], torch.ones(2)):
        with pytest.raises(TypeError):
            V.number(bad, "x")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            V.number(bad, "x")
    with pytest.raises(ValueError, match=r"^fit\(grad_clip=-1\): expected a positive number or None, "
                                         r"got -1$"):
        V.positive_number(-1, "grad_clip", "fit", allow_none=True)
    with pytest.raises(ValueError, match="positive number"):
        V.positive_number(0.0, "lr")
    with pytest.raises(ValueError, match=r"a number < 1, got 1"):
        V.number(1, "beta", high=1, high_open=True)


def test_probability_closed_and_half_open():
    assert V.probability(0, "p") == 0.0 and V.probability(1, "p") == 1.0
    assert V.probability(1, "p", zero=False) == 1.0
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        V.probability(0, "p", zero=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        V.probability(1.5, "p")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        V.probability(-0.1, "p")


def test_tensor_rank_dtype_and_conversion():
    x = torch.zeros(2, 3)
    assert V.tensor(x, "x", ndim=2, dtype="floating") is x
    assert V.tensor(x, "x", ndim=(1, 2)) is x
    assert V.tensor(torch.zeros(2, dtype=torch.long), "ids", dtype="integer").dtype == torch.long
    assert V.tensor(torch.zeros(2, dtype=torch.bool), "m", dtype=torch.bool).dtype == torch.bool
    assert torch.equal(V.tensor([1.0, 2.0], "x", convert=True), torch.tensor([1.0, 2.0],
                                                                            dtype=torch.float64))
    assert V.tensor(np.arange(3), "x", convert=True).dtype == torch.int64
    with pytest.raises(TypeError, match="torch.Tensor"):
        V.tensor([1.0], "x")                              # lists only with convert=True
    for bad in (None, [None, 1.0], ["a"], {"a": 1}, "abc"):
        with pytest.raises(TypeError) as info:
            V.tensor(bad, "z", "relu", convert=True)
        assert str(info.value).startswith("relu(z=")
    with pytest.raises(ValueError, match="with 3 dimensions"):
        V.tensor(x, "x", ndim=3)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        V.tensor(x, "x", min_ndim=3)
    with pytest.raises(TypeError, match=r"floating-point tensor.*x\.float\(\)"):
        V.tensor(torch.zeros(2, dtype=torch.long), "x", dtype="floating")
    with pytest.raises(TypeError, match=r"ids\.long\(\)"):
        V.tensor(torch.zeros(2), "ids", dtype="integer")
    with pytest.raises(TypeError, match="dtype torch.bool"):
        V.tensor(x, "mask", dtype=torch.bool)


def test_choice():
    assert V.choice("min", "mode", ("min", "max")) == "min"
    assert V.choice(None, "average", ("macro", None)) is None
    with pytest.raises(ValueError, match=r"^f\(mode='up'\): expected one of 'min', 'max', got 'up'$"):
        V.choice("up", "mode", ("min", "max"), "f")
    with pytest.raises(ValueError):
        V.choice([1], "mode", ("min", "max"))              # unhashable: refused, not a crash


def test_describe_is_short_and_names_tensors():
    assert V.describe(torch.zeros(2, 3)) == "a tensor of shape (2, 3) and dtype torch.float32"
    assert len(V.describe(list(range(1000)))) <= 60
    assert V.describe(np.int64(3)) == "3"


def test_caller_skips_private_helpers():
    def _helper():
        return V.caller()

    class Thing:
        def __init__(self):
            self.name = _helper()

    def public():
        return _helper()

    assert public().endswith("public")
    assert Thing().name.endswith("Thing")

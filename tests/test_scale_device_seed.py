import random

import numpy as np
import pytest
import torch

from handson import device, scale, seed


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_pick_uses_env(monkeypatch, name):
    monkeypatch.setenv("HANDSON_SCALE", name)
    assert scale.current() == name
    assert scale.pick(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[name]
    assert name in scale.describe()


def test_default_scale_follows_hardware(monkeypatch):
    monkeypatch.delenv("HANDSON_SCALE", raising=False)
    assert scale.current() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_bad_scale_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HANDSON_SCALE", "huge")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        scale.current()


def test_pick_requires_all_three():
    with pytest.raises(TypeError):
        scale.pick(smoke=1, cpu=2)


def test_device_pick_and_describe(monkeypatch):
    monkeypatch.delenv("HANDSON_DEVICE", raising=False)
    expected = ("cuda" if torch.cuda.is_available() else
                "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
                else "cpu")
    assert device.pick().type == expected
    assert device.describe(torch.device("cpu")).startswith("cpu")
    assert device.pick("cpu") == torch.device("cpu")
    monkeypatch.setenv("HANDSON_DEVICE", "cpu")
    assert device.pick() == torch.device("cpu")
    assert device.resolve(None) == torch.device("cpu")
    assert device.resolve("cpu", "fit") == device.resolve(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"prefer='gpu'.*cpu, cuda, mps"):
        device.pick("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        device.pick("cuda")


def test_set_seed_repeats():
    seed.set_seed(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed.set_seed(123)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(TypeError):
        seed.set_seed("1")

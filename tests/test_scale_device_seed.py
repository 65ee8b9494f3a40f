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


def _fake_gpu(monkeypatch, capability):
    """Pretend a CUDA GPU of this compute capability is present (bf16 emulated below 8.0)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)

    def is_bf16_supported(including_emulation=True):
        # like torch: True on sm75 too when emulation counts, native only from sm80
        return including_emulation or capability[0] >= 8
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"),
                                                  ((8, 0), "bf16"), ((8, 9), "bf16"),
                                                  ((9, 0), "bf16")])
def test_mixed_precision_follows_native_bf16(monkeypatch, capability, expected):
    _fake_gpu(monkeypatch, capability)
    assert device.mixed_precision("cuda") == expected
    assert device.mixed_precision(torch.device("cuda:0")) == expected
    monkeypatch.delenv("HANDSON_DEVICE", raising=False)
    assert device.mixed_precision() == expected          # pick() finds the fake GPU


def test_mixed_precision_old_torch_without_including_emulation(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)   # no keyword
    assert device.mixed_precision("cuda") == "fp16"
    _fake_gpu(monkeypatch, (8, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device.mixed_precision("cuda") == "bf16"


def test_mixed_precision_off_on_cpu_and_mps(monkeypatch):
    assert device.mixed_precision("cpu") is None
    assert device.mixed_precision("mps") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.mixed_precision("cuda") is None


@pytest.mark.parametrize("capability, kind, dtype", [((7, 5), "fp16", torch.float16),
                                                     ((8, 0), "bf16", torch.bfloat16)])
def test_train_autocast_and_scaler_follow_the_gpu(monkeypatch, capability, kind, dtype):
    from handson import train
    _fake_gpu(monkeypatch, capability)
    made = {}

    class FakeAutocast:
        def __init__(self, device_type, dtype):
            made["autocast"] = (device_type, dtype)

    monkeypatch.setattr(torch, "autocast", FakeAutocast)
    context, amp = train._autocast(torch.device("cuda"), None)
    assert amp == kind and made["autocast"] == ("cuda", dtype)
    assert train._autocast(torch.device("cpu"), None)[1] is None      # CPU: no autocast
    assert train._autocast(torch.device("cuda"), False)[1] is None


def test_fp16_training_step_uses_a_grad_scaler(monkeypatch):
    """amp='fp16' scales the loss, unscales before clipping and steps through the scaler."""
    from handson import train
    calls = []

    class RecordingScaler:
        def __init__(self, device_type):
            calls.append(("init", device_type))

        def scale(self, loss):
            calls.append("scale")
            return loss * 1024.0

        def unscale_(self, optimizer):
            calls.append("unscale")
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad /= 1024.0

        def step(self, optimizer):
            calls.append("step")
            optimizer.step()

        def update(self):
            calls.append("update")

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    loader = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1])) for _ in range(2)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    # fp16 autocast on the CPU is real in recent torch; the scaler is what is checked
    train.train_epoch(model, loader, torch.nn.CrossEntropyLoss(), opt, device="cpu", amp="fp16",
                      grad_clip=1.0, progress=False)
    assert calls == [("init", "cpu")] + ["scale", "unscale", "step", "update"] * 2
    assert not torch.equal(before, model.weight)

"""handson.scaling: memory, ZeRO, communication and cost formulas; bad input is refused."""
import math

import pytest
import torch
from torch import nn

from handson import scaling


def test_bytes_per_parameter_fp32_and_mixed_adam_are_16():
    fp32 = scaling.bytes_per_parameter("fp32", "adam")
    mixed = scaling.bytes_per_parameter("mixed", "adam")
    assert fp32 == {"parameters": 4, "gradients": 4, "optimizer": 8, "total": 16}
    assert mixed == {"parameters": 2, "gradients": 2, "optimizer": 12, "total": 16}
    assert scaling.bytes_per_parameter("bf16", "adam")["total"] == 8
    assert scaling.bytes_per_parameter("mixed", "sgd_momentum")["total"] == 12
    assert scaling.bytes_per_parameter("fp32", "sgd")["total"] == 8


def test_bytes_per_parameter_matches_a_real_adam_step():
    model = nn.Linear(10, 5)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 10)).sum().backward()
    opt.step()
    n = sum(p.numel() for p in model.parameters())
    states = sum(v.numel() * v.element_size() for s in opt.state.values()
                 for v in s.values() if v.numel() > 1)
    assert states == n * scaling.bytes_per_parameter("fp32", "adam")["optimizer"]


def test_training_memory_bytes():
    out = scaling.training_memory_bytes(1000, "mixed", "adam", activation_bytes=500)
    assert out == {"parameters": 2000, "gradients": 2000, "optimizer": 12000,
                   "activations": 500, "total": 16500}


def test_zero_memory_matches_the_paper_example():
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 devices, K = 12, GB = 1e9 bytes
    got = [scaling.zero_memory_bytes(7_500_000_000, 64, s) / 1e9 for s in range(4)]
    assert [round(g, 1) for g in got] == [120.0, 31.4, 16.6, 1.9]
    # one device: sharding saves nothing
    assert {scaling.zero_memory_bytes(100, 1, s) for s in range(4)} == {1600.0}


@pytest.mark.parametrize("kwargs, error", [
    (dict(num_params=10, num_devices=2, stage=4), ValueError),
    (dict(num_params=10, num_devices=2, stage=-1), ValueError),
    (dict(num_params=10, num_devices=0, stage=1), ValueError),
    (dict(num_params=-5, num_devices=2, stage=1), ValueError),
    (dict(num_params=10, num_devices=2, stage=1, optimizer_bytes_per_param=-1), ValueError),
    (dict(num_params=10.5, num_devices=2, stage=1), TypeError),
    (dict(num_params=10, num_devices=True, stage=1), TypeError),
    (dict(num_params="10", num_devices=2, stage=1), TypeError),
])
def test_zero_memory_bad_input(kwargs, error):
    with pytest.raises(error):
        scaling.zero_memory_bytes(**kwargs)


@pytest.mark.parametrize("call", [
    lambda: scaling.bytes_per_parameter("fp8"),
    lambda: scaling.bytes_per_parameter("fp32", "lion"),
    lambda: scaling.training_memory_bytes(-1),
    lambda: scaling.training_memory_bytes(10, activation_bytes=-3),
    lambda: scaling.ring_allreduce_bytes(-1, 2),
    lambda: scaling.ring_allreduce_bytes(10, 0),
    lambda: scaling.allreduce_seconds(10, 2, 0),
    lambda: scaling.scaling_efficiency(0, 1),
    lambda: scaling.scaling_efficiency(1, 1, overlap=1.5),
    lambda: scaling.micro_batches(100, 16, 2),
    lambda: scaling.micro_batches(64, 0),
    lambda: scaling.mfu(10, 10, 0, 1e9),
    lambda: scaling.mfu(10, 10, 1, float("nan")),
    lambda: scaling.training_cost(1e9, 1e10, peak_flops=1e15, mfu=1.5),
    lambda: scaling.training_cost(1e9, 1e10, peak_flops=1e15, mfu=0.4, num_gpus=0),
    lambda: scaling.launch("", 2),
])
def test_bad_input_is_a_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_communication_formulas():
    assert scaling.ring_allreduce_bytes(1000, 1) == 0
    assert scaling.ring_allreduce_bytes(1000, 2) == 1000
    assert math.isclose(scaling.ring_allreduce_bytes(1000, 8), 1750)
    assert math.isclose(scaling.allreduce_seconds(1e9, 2, 1e9, latency_s=1e-3), 1.002)
    assert scaling.scaling_efficiency(1.0, 0.0) == 1.0
    assert math.isclose(scaling.scaling_efficiency(1.0, 1.0), 0.5)
    assert math.isclose(scaling.scaling_efficiency(1.0, 1.0, overlap=1.0), 1.0)
    assert scaling.micro_batches(1024, 16, 8) == 8
    assert isinstance(scaling.micro_batches(64, 8), int)


def test_mfu_and_training_cost():
    assert math.isclose(scaling.mfu(1e9, 1e3, 1.0, 6e12), 1.0)
    cost = scaling.training_cost(1e9, 1e12, peak_flops=1e15, mfu=0.5, num_gpus=10,
                                 price_per_gpu_hour=2.0)
    assert math.isclose(cost["flops"], 6e21)
    assert math.isclose(cost["gpu_hours"], 6e21 / 5e14 / 3600)
    assert math.isclose(cost["days"], cost["gpu_hours"] / 10 / 24)
    assert math.isclose(cost["cost"], 2 * cost["gpu_hours"])
    assert "cost" not in scaling.training_cost(1e9, 1e12, peak_flops=1e15, mfu=0.5)


def test_saved_tensors_counts_activations_exactly():
    L, B, d = 3, 8, 16
    layers = nn.Sequential(*[nn.Sequential(nn.Linear(d, d), nn.GELU()) for _ in range(L)])
    x = torch.randn(B, d)
    with scaling.SavedTensors(exclude=layers.parameters()) as saved:
        out = layers(x)
    # each Linear saves its input, each GELU its input: 2 L tensors of B x d floats
    assert saved.bytes == 2 * L * B * d * 4 and saved.count == 2 * L
    out.sum().backward()
    from torch.utils.checkpoint import checkpoint
    with scaling.SavedTensors(exclude=layers.parameters()) as saved:
        h = x
        for layer in layers:
            h = checkpoint(layer, h, use_reentrant=False)
    assert saved.bytes == L * B * d * 4            # only each segment's input is kept
    with scaling.SavedTensors() as everything:
        layers(x)
    assert everything.bytes > 2 * L * B * d * 4    # the weights too, when not excluded


def test_free_port_and_commands():
    port = scaling.free_port()
    assert isinstance(port, int) and 0 < port < 65536
    cmd = scaling.torchrun_command(2, port, args=["--task", "check"])
    assert "--nproc_per_node=2" in cmd and "--master_addr=127.0.0.1" in cmd
    assert f"--master_port={port}" in cmd and cmd[-2:] == ["--task", "check"]
    acc = scaling.accelerate_command(2, port)
    assert acc[-1] == "-m" and "--num_processes=2" in acc
    with pytest.raises(ValueError):
        scaling.torchrun_command(0, port)

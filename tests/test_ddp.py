"""Chapter 9's training script under torchrun: 2 CPU processes, gloo, loopback, bounded time.

One launch runs the gradient / training checks and ``handson.train.fit`` on 2 processes;
``fit`` on one process (in this process) is the reference. No process may be left behind.
"""
import os
import uuid
from pathlib import Path

import pytest
import torch

from handson import scaling, train


def _processes_with(tag: str) -> list[int]:
    """Ids of live processes whose command line contains ``tag`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")


@pytest.fixture(scope="module")
def runs():
    tag = f"test-ddp-{uuid.uuid4().hex[:8]}"
    two = scaling.launch(["check", "fit"], 2, args=["--tag", tag, "--shard-steps", "4"],
                         timeout=90)
    # the one-process reference runs in this process (no process group: plain fit)
    from argparse import Namespace

    from handson import scaling_ddp
    one = {"fit": scaling_ddp.task_fit(Namespace(global_batch=64, width=64, epochs=2),
                                       torch.device("cpu"))}
    return {"two": two, "one": one, "tag": tag}


def _weights(result):
    return torch.tensor(result["weights"], dtype=torch.float64)


def test_allreduced_gradient_equals_the_single_process_gradient(runs):
    check = runs["two"]["check"]
    assert check["world_size"] == 2 and check["backend"] == "gloo"
    assert max(check["grad_max_diff_per_rank"]) < 1e-12       # float64, every rank
    assert check["local_grad_max_diff"] > 1e-3                 # without all-reduce: not equal
    assert check["ddp_vs_single_max_diff"] < 1e-12             # 40 SGD steps with a sampler
    assert check["ranks_agree_max_diff"] == 0.0


def test_distributed_sampler_gives_disjoint_shards(runs):
    first = runs["two"]["check"]["sampler_first_indices"]
    assert len(first) == 2 and not set(first[0]) & set(first[1])


def test_zero1_and_fsdp_equal_ddp_with_less_memory_per_rank(runs):
    check = runs["two"]["check"]
    assert check["zero1_vs_ddp_max_diff"] < 1e-12 and check["fsdp_vs_ddp_max_diff"] < 1e-12
    mem = check["memory_per_rank"]
    ddp = mem["ddp"][0]["total"]
    assert all(m["total"] == ddp for m in mem["ddp"])
    assert all(m["optimizer"] < mem["ddp"][0]["optimizer"] for m in mem["zero1"])
    assert sum(m["total"] for m in mem["fsdp"]) == ddp        # the shards add up to one copy


def test_fit_under_torchrun_matches_one_process(runs):
    two, one = runs["two"]["fit"], runs["one"]["fit"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert (_weights(two) - _weights(one)).abs().max() < 1e-12
    for key in ("train_loss", "val_loss", "val_accuracy", "train_accuracy"):
        assert two["history"][key] == pytest.approx(one["history"][key], rel=1e-12, abs=1e-12)
    assert two["steps_per_epoch_per_rank"] == one["steps_per_epoch_per_rank"]


@needs_proc
def test_no_process_is_left_behind(runs):
    assert _processes_with(runs["tag"]) == []


@needs_proc
def test_a_launch_that_runs_too_long_is_killed():
    tag = f"test-ddp-timeout-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TimeoutError):
        scaling.launch("check", 2, args=["--tag", tag], timeout=1.0)
    assert _processes_with(tag) == []


def test_a_failing_script_is_reported():
    with pytest.raises(RuntimeError, match="failed"):
        scaling.launch("no_such_task", 1, timeout=60)


def test_fit_shows_progress_on_rank_0_only(monkeypatch, capsys):
    from torch.utils.data import DataLoader, TensorDataset
    data = DataLoader(TensorDataset(torch.randn(16, 3), torch.randint(0, 2, (16,))), batch_size=4)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monkeypatch.setattr(train, "_rank", lambda: 1)
    train.fit(model, data, torch.nn.CrossEntropyLoss(), opt, epochs=1, device="cpu")
    assert "train" not in capsys.readouterr().err
    monkeypatch.setattr(train, "_rank", lambda: 0)
    train.fit(model, data, torch.nn.CrossEntropyLoss(), opt, epochs=1, device="cpu")
    assert "train" in capsys.readouterr().err


def test_fit_without_a_process_group_is_unchanged():
    assert not train._is_distributed() and train._rank() == 0

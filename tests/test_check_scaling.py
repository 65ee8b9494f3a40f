"""Checkers of chapter 9: right answers (written several ways) pass, wrong ones do not, and
nothing printed gives the answer away."""
import math

import numpy as np
import pytest
import torch

from handson.check import scaling as chk


def _run(capsys, fn, answer):
    verdict = fn(answer)
    return bool(verdict), capsys.readouterr().out


def _no_leak(text, *values):
    for v in values:
        for shown in {f"{v}", f"{v:.1f}", f"{v:.2f}", f"{v:.3f}", f"{v:g}"}:
            assert shown not in text, (shown, text)


@pytest.mark.parametrize("answer, ok", [
    (12, True), (np.int64(12), True), (torch.tensor(12), True), (2 + 2 + 4 + 4, True),
    (12.0, False), ("12", False), (16, False), (8, False), (10, False), (None, False),
])
def test_bytes_per_param(capsys, answer, ok):
    passed, out = _run(capsys, chk.bytes_per_param, answer)
    assert passed is ok
    if not ok:
        _no_leak(out, 12)
        assert "hint" in out


@pytest.mark.parametrize("answer, ok", [
    (37.4, True), (37.375, True), (37.3, True), (np.float32(37.4), True),
    ((2 * 13e9 + 14 * 13e9 / 16) / 1e9, True),
    (34.8, False),          # GiB instead of GB
    (61.75, False),         # stage 1
    (13.0, False),          # stage 3
    (52.0 + 14 * 13 / 16, False),   # whole fp16 weights *and* gradients
    (37.375e9, False),      # bytes, not GB
    ("37.4", False), (None, False),
])
def test_zero2_memory(capsys, answer, ok):
    passed, out = _run(capsys, chk.zero2_memory, answer)
    assert passed is ok
    if not ok:
        _no_leak(out, 37.375, 37.4)


@pytest.mark.parametrize("answer, ok", [
    (8, True), (1024 // (16 * 8), True), (np.int32(8), True),
    (8.0, False), (64, False), (128, False), (0, False), (None, False),
])
def test_micro_batches(capsys, answer, ok):
    passed, out = _run(capsys, chk.micro_batches, answer)
    assert passed is ok
    if not ok and answer is not None:
        assert "hint" in out and " 8 " not in f" {out} "


@pytest.mark.parametrize("answer, ok", [
    (0.31, True), (0.3125, True), (0.32, True), (6 * 1.3e9 * 1e5 / (8 * 312e12), True),
    (31.25, False),         # a percentage
    (0.104, False),         # 2 N D instead of 6 N D
    (2.5, False),           # the peak of one GPU
    ("0.31", False), (None, False),
])
def test_mfu(capsys, answer, ok):
    passed, out = _run(capsys, chk.mfu, answer)
    assert passed is ok
    if not ok:
        _no_leak(out, 0.3125, 0.31)


def right_shard(n, num_replicas, rank):
    per_rank = math.ceil(n / num_replicas)
    ids = list(range(n))
    ids += ids[:per_rank * num_replicas - n]
    return ids[rank::num_replicas]


def right_shard_numpy(n, num_replicas, rank):    # another legitimate way to write it
    total = -(-n // num_replicas) * num_replicas
    return np.arange(total)[rank::num_replicas] % n


def no_padding(n, num_replicas, rank):
    return list(range(rank, n, num_replicas))


def contiguous(n, num_replicas, rank):
    per_rank = math.ceil(n / num_replicas)
    ids = list(range(n)) + list(range(per_rank * num_replicas - n))
    return ids[rank * per_rank:(rank + 1) * per_rank]


def pad_with_last(n, num_replicas, rank):
    per_rank = math.ceil(n / num_replicas)
    ids = list(range(n)) + [n - 1] * (per_rank * num_replicas - n)
    return ids[rank::num_replicas]


@pytest.mark.parametrize("fn, ok", [
    (right_shard, True), (right_shard_numpy, True),
    (no_padding, False), (contiguous, False), (pad_with_last, False),
    (lambda n, w, r: None, False),
])
def test_sampler_indices(capsys, fn, ok):
    passed, out = _run(capsys, chk.sampler_indices, fn)
    assert passed is ok
    assert "rank::" not in out and "ids[" not in out and "range(" not in out


def test_sampler_reference_is_distributed_sampler():
    assert chk.reference_sampler_indices(10, 3, 2) == [2, 5, 8, 1]

"""Chapter 10 checkers: right answers (in any legitimate form) pass, wrong ones do not, nothing leaks."""
import numpy as np
import pytest
import torch

from handson import compress
from handson.check import serve as check


def verdict(capsys, fn, *args, **kwargs):
    ok = bool(fn(*args, **kwargs))
    return ok, capsys.readouterr().out


def test_int8_scale_zero_point(capsys):
    scale, zp = compress.int8_affine_params(-0.5, 1.5)
    assert verdict(capsys, check.int8_scale_zero_point, (scale, zp), -0.5, 1.5)[0]
    assert verdict(capsys, check.int8_scale_zero_point, [round(scale, 6), np.int64(zp)], -0.5, 1.5)[0]
    for wrong in [(scale, zp + 1), (2 / 255 * 2, zp), (scale, float(zp)), (scale,), None, "0.0078"]:
        ok, out = verdict(capsys, check.int8_scale_zero_point, wrong, -0.5, 1.5)
        assert not ok
        assert f"{scale:.4f}" not in out and f" {zp}" not in out


def test_int8_range_that_does_not_include_zero(capsys):
    scale, zp = compress.int8_affine_params(0.5, 3.0)  # widened to [0, 3]
    assert verdict(capsys, check.int8_scale_zero_point, (scale, zp), 0.5, 3.0)[0]
    assert not verdict(capsys, check.int8_scale_zero_point, (2.5 / 255, zp), 0.5, 3.0)[0]


def test_batch_latency(capsys):
    t1, t32 = 4.0, 35.0  # 1 ms per item, 3 ms fixed
    assert verdict(capsys, check.batch_latency, 11.0, t1, t32, 8)[0]
    assert verdict(capsys, check.batch_latency, np.float32(11.02), t1, t32, 8)[0]
    for wrong in [8 * t1, t32 * 8 / 32, 8.0, None, "11"]:
        ok, out = verdict(capsys, check.batch_latency, wrong, t1, t32, 8)
        assert not ok and "11.0" not in out


def test_kd_loss(capsys):
    s, t, y = [[2.0, 0.5], [0.1, 1.0]], [[3.0, -1.0], [0.0, 2.0]], [0, 1]
    right = compress.distillation_loss(torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64),
                                       torch.tensor(y), temperature=2.0, alpha=0.5).item()
    assert verdict(capsys, check.kd_loss, round(right, 3), s, t, y, 2.0, 0.5)[0]
    assert verdict(capsys, check.kd_loss, torch.tensor(right), s, t, y, 2.0, 0.5)[0]
    no_t2 = right - 0.5 * (4 - 1) * compress.distillation_loss(
        torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64), temperature=2.0).item() / 4
    for wrong in [no_t2, right + 0.01, None, True]:
        ok, out = verdict(capsys, check.kd_loss, wrong, s, t, y, 2.0, 0.5)
        assert not ok and f"{right:.3f}" not in out


def test_rejected_payloads(capsys):
    want = check._must_reject()
    assert verdict(capsys, check.rejected_payloads, sorted(want))[0]
    assert verdict(capsys, check.rejected_payloads, {np.int64(i) for i in want})[0]
    for wrong in [sorted(want)[:-1], sorted(want) + [0], list(range(10)), [1.5], None, "1,3"]:
        ok, out = verdict(capsys, check.rejected_payloads, wrong)
        assert not ok and str(sorted(want)) not in out


def test_payloads_are_what_the_real_server_rejects():
    from fastapi.testclient import TestClient

    from handson import serve
    app = serve.create_app(lambda texts: (["x"] * len(texts), [1.0] * len(texts)), **check.PAYLOAD_LIMITS)
    with TestClient(app) as client:
        codes = [client.post("/predict", content=body.encode()).status_code for body in check.PAYLOADS]
    assert {i for i, code in enumerate(codes) if 400 <= code < 500} == check._must_reject()
    assert all(code in (200, 400, 413, 422) for code in codes)


def test_window_cost(capsys):
    from handson import compress
    load = {0: {"p99_ms": 100.0, "requests_per_s": 50.0}, 5: {"p99_ms": 115.0, "requests_per_s": 80.0},
            25: {"p99_ms": 140.0, "requests_per_s": 95.0}}
    right = compress.cost_per_million(80.0, 0.05)
    assert verdict(capsys, check.window_cost, right, load, 0.05)[0]
    assert verdict(capsys, check.window_cost, round(right, 5), load, 0.05)[0]
    for wrong in [compress.cost_per_million(95.0, 0.05), compress.cost_per_million(50.0, 0.05), None, "0.17"]:
        ok, out = verdict(capsys, check.window_cost, wrong, load, 0.05)
        assert not ok and f"{right:.3f}" not in out

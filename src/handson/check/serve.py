"""Checkers for the exercises of chapter 10 (from notebook to service)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import NO_ANSWER, _as_array, _say, close, is_integer

#: request bodies for the "which payloads must the server reject" exercise (max 4 texts, 20 chars)
PAYLOADS = [
    '{"texts": ["a fine film"]}',
    '{"texts": []}',
    '{"texts": ["good", "bad", "ugly"]}',
    'texts=["a fine film"]',
    '{"texts": ["fine", 42]}',
    '{"text": ["a fine film"]}',
    '{"texts": ["' + "a" * 25 + '"]}',
    '{"texts": ["a", "b", "c", "d", "e"]}',
    '{"texts": [""]}',
    '{"texts": "a fine film"}',
]
PAYLOAD_LIMITS = {"max_items": 4, "max_text_chars": 20}


def _must_reject() -> set[int]:
    from ..serve import BadRequest, parse_request
    rejected = set()
    for i, body in enumerate(PAYLOADS):
        try:
            parse_request(body.encode(), **PAYLOAD_LIMITS)
        except BadRequest:
            rejected.add(i)
    return rejected


def int8_scale_zero_point(answer, x_min: float, x_max: float) -> bool:
    """``answer = (scale, zero_point)`` of the affine int8 map [x_min, x_max] -> [-128, 127]."""
    from ..compress import int8_affine_params
    label = "int8 scale and zero point"
    nudge = ("the 256 integer levels must cover the real range (widened to include 0): the scale is "
             "the real width of one level; the zero point is the integer that stands for 0.0")
    if answer is None:
        return _say(False, label, NO_ANSWER, nudge)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return _say(False, label, "give a pair (scale, zero_point)", nudge)
    scale, zero_point = answer
    want_scale, want_zp = int8_affine_params(x_min, x_max)
    if not is_integer(zero_point):
        return _say(False, label, "the zero point must be an integer (it is one of the int8 levels)",
                    "round it to the nearest integer")
    try:
        s = float(_as_array(scale))
    except (TypeError, ValueError):
        return _say(False, label, "the scale must be a number", nudge)
    scale_right = abs(s - want_scale) <= 1e-3 * abs(want_scale)
    zp_right = int(zero_point) == want_zp
    if scale_right and zp_right:
        return _say(True, label, "", None)
    if not scale_right:
        return _say(False, label, "the scale is not right yet",
                    "divide the width of the range (after including 0) by the number of steps "
                    "between the smallest and the largest int8 value")
    return _say(False, label, "the scale is right; the zero point is not",
                "solve qmin = x_min / scale + zero_point for the zero point, then round")


def batch_latency(answer, latency_1_ms: float, latency_32_ms: float, batch_size: int) -> bool:
    """Latency at ``batch_size`` under the model latency = a + b * n fitted to n = 1 and n = 32."""
    per_item = (latency_32_ms - latency_1_ms) / 31
    fixed = latency_1_ms - per_item
    expected = fixed + per_item * batch_size
    return close(answer, expected, rtol=0.01, atol=0.05, label="latency of the batch",
                 nudge="two measurements fix a straight line: a fixed cost per call plus a cost per item",
                 hint="find the cost per extra item from the two measurements first, then the fixed part")


def kd_loss(answer, student_logits, teacher_logits, labels, temperature: float, alpha: float) -> bool:
    """The distillation loss (to 3 decimals) for the given logits."""
    s = torch.as_tensor(student_logits, dtype=torch.float64)
    t = torch.as_tensor(teacher_logits, dtype=torch.float64)
    y = torch.as_tensor(labels)
    T = float(temperature)
    soft = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean",
                    log_target=True) * T * T
    expected = alpha * soft + (1 - alpha) * F.cross_entropy(s, y)
    return close(answer, expected.item(), places=3, label="distillation loss",
                 nudge="two terms: the KL divergence between the softened teacher and student "
                       "distributions, and the ordinary cross-entropy on the labels",
                 hint="soften both with the same temperature, multiply the KL term by T^2, average over "
                      "the batch, and mix the two terms with alpha")


def rejected_payloads(answer) -> bool:
    """``answer``: the indices into ``PAYLOADS`` that the server must answer with a 4xx."""
    label = "payloads to reject"
    nudge = ("go through the rules of the service: valid JSON, a 'texts' list, not empty, only "
             "strings, at most 4 texts, at most 20 characters each")
    if answer is None:
        return _say(False, label, NO_ANSWER, nudge)
    try:
        chosen = {int(i) for i in answer}
        if any(not is_integer(i) for i in answer):
            raise TypeError
    except (TypeError, ValueError):
        return _say(False, label, "give the indices as a set or list of integers", nudge)
    if not chosen <= set(range(len(PAYLOADS))):
        return _say(False, label, f"indices run from 0 to {len(PAYLOADS) - 1}", nudge)
    want = _must_reject()
    if chosen == want:
        return _say(True, label, "", None)
    missed, extra = len(want - chosen), len(chosen - want)
    detail = []
    if missed:
        detail.append(f"{missed} payload(s) you accept must be rejected")
    if extra:
        detail.append(f"{extra} payload(s) you reject are valid requests")
    return _say(False, label, "; ".join(detail),
                "check every payload against every rule in turn; the rules constrain types, counts and "
                "lengths, not what a text says")


def describe_payloads() -> str:
    """The payloads of the exercise, numbered, with the limits."""
    lines = [f"limits: at most {PAYLOAD_LIMITS['max_items']} texts, at most "
             f"{PAYLOAD_LIMITS['max_text_chars']} characters each"]
    lines += [f"{i}: {body}" for i, body in enumerate(PAYLOADS)]
    return "\n".join(lines)


__all__ = ["int8_scale_zero_point", "batch_latency", "kd_loss", "rejected_payloads", "describe_payloads", "window_cost",
           "PAYLOADS"]


def window_cost(answer, load: dict, price_per_core_hour: float, slack: float = 0.2) -> bool:
    """Dollars per million requests at the fastest window whose p99 is within ``slack`` of the lowest."""
    from ..compress import cost_per_million
    limit = (1 + slack) * min(r["p99_ms"] for r in load.values())
    allowed = [w for w, r in load.items() if r["p99_ms"] <= limit]
    pick = max(allowed, key=lambda w: load[w]["requests_per_s"])
    expected = cost_per_million(load[pick]["requests_per_s"], price_per_core_hour)
    return close(answer, expected, rtol=1e-3, atol=0, label="cost at the allowed window",
                 nudge="the latency promise rules some windows out; among the rest, the cheapest is the "
                       "one that serves the most requests per second",
                 hint="keep only the windows whose p99 is at most 1.2 times the lowest p99, take the one "
                      "with the highest requests_per_s, and price its throughput")

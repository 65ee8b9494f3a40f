"""The chapter 7 checkers grade right: right answers (also written another legitimate way)
PASS, wrong ones do not, and the printed text never holds the expected value or solution code."""
import math

import numpy as np
import pytest
import torch

from handson.check import lm as check_lm
from handson.lm import gpt_num_parameters

LOSS = 1.47
PPL = math.exp(LOSS)                                   # 4.349...
BITS = LOSS / math.log(2)                              # 2.1207...
BLOCK = 12 * 384 ** 2 + 13 * 384                        # 1,774,464
NANO_N = gpt_num_parameters(65, 256, 6, 384)
NANO_D = 5000 * 64 * 256
NANO_C = 6 * NANO_N * NANO_D                            # 5.29e15

# what the printed text must never contain: expected values in the ways a reader would type
# them, and fragments of solution code
LEAKS = ["4.35", "4.349", "2.12", "1774464", "1,774,464", "1.774", "5.29", "5.3e", "529",
         "math.exp", "math.log", "** 1.47", "tril", "masked_fill", "torch.topk", "softmax(",
         "= 6 *", "6 * N", "12 * d", "-inf"]


def _graded(capsys, fn, *args):
    verdict = bool(fn(*args))
    out = capsys.readouterr().out
    for leak in LEAKS:
        assert leak not in out, f"{fn.__name__} printed {leak!r}: {out}"
    return verdict, out


def _right_probs(logits, temperature, top_k=None):
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z, dim=-1)


def _probs_sorted_numpy(logits, temperature, top_k=None):
    """Another legitimate way: NumPy, a sort instead of topk, a large negative number, a list."""
    z = logits.numpy() / temperature
    if top_k is not None:
        kth = np.sort(z, axis=1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -1e300)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).tolist()


def _probs_in_place(logits, temperature, top_k=None):
    logits /= temperature                                  # changes its input: still right
    if top_k is not None:
        values, _ = logits.sort(dim=1, descending=True)
        logits[logits < values[:, top_k - 1:top_k]] = -math.inf
    return torch.nn.functional.softmax(logits, dim=1)


def _right_causal(scores):
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def _causal_big_negative(scores):
    """Another legitimate way: an additive mask of -1e9 from triu."""
    T = scores.shape[-1]
    additive = torch.triu(torch.full((T, T), -1e9, dtype=scores.dtype), diagonal=1)
    return torch.nn.functional.softmax(scores + additive, dim=2)


# --------------------------------------------------------------------------- perplexity, bits
@pytest.mark.parametrize("answer", [PPL, 4.3, 4.35, 4.349, np.float32(PPL), torch.tensor(PPL),
                                    2 ** BITS])
def test_perplexity_right(capsys, answer):
    ok, out = _graded(capsys, check_lm.perplexity, answer, LOSS)
    assert ok and "PASS" in out


@pytest.mark.parametrize("answer", [2 ** LOSS, 2.77, LOSS, 10 ** LOSS, 4.1, 5.0, "4.35", True,
                                    math.nan, [PPL]])
def test_perplexity_wrong(capsys, answer):
    ok, out = _graded(capsys, check_lm.perplexity, answer, LOSS)
    assert not ok and "NOT YET" in out and "hint" in out


def test_perplexity_none_gets_a_nudge(capsys):
    ok, out = _graded(capsys, check_lm.perplexity, None, LOSS)
    assert not ok and "no answer yet" in out and "logarithm" in out


@pytest.mark.parametrize("answer", [BITS, 2.12, 2.1207, LOSS * math.log2(math.e),
                                    torch.tensor(BITS, dtype=torch.float32)])
def test_bits_right(capsys, answer):
    ok, _ = _graded(capsys, check_lm.bits_per_char, answer, LOSS)
    assert ok


@pytest.mark.parametrize("answer", [LOSS * math.log(2), LOSS, LOSS / math.log(10), 2.0, "2.12",
                                    None])
def test_bits_wrong(capsys, answer):
    ok, out = _graded(capsys, check_lm.bits_per_char, answer, LOSS)
    assert not ok and "NOT YET" in out


# --------------------------------------------------------------------------- block parameters
@pytest.mark.parametrize("answer", [BLOCK, np.int64(BLOCK), torch.tensor(BLOCK),
                                    4 * 384 ** 2 + 4 * 384 + 8 * 384 ** 2 + 5 * 384 + 4 * 384])
def test_block_parameters_right(capsys, answer):
    ok, _ = _graded(capsys, check_lm.block_parameters, answer, 384, 6)
    assert ok


@pytest.mark.parametrize("answer", [float(BLOCK), 1.774464e6, 12 * 384 ** 2, 12 * 384 ** 2 + 9 * 384,
                                    BLOCK + 6 * 384, str(BLOCK), None])
def test_block_parameters_wrong(capsys, answer):
    ok, out = _graded(capsys, check_lm.block_parameters, answer, 384, 6)
    assert not ok and "NOT YET" in out and "hint" in out


def test_block_parameters_float_is_told_to_be_an_integer(capsys):
    ok, out = _graded(capsys, check_lm.block_parameters, float(BLOCK), 384, 6)
    assert not ok and "integer" in out


def test_block_parameters_other_width():
    d = 64
    assert check_lm.block_parameters(12 * d * d + 13 * d, d, 4)
    assert not check_lm.block_parameters(BLOCK, d, 4)


# --------------------------------------------------------------------------- temperature / top-k
@pytest.mark.parametrize("fn", [_right_probs, _probs_sorted_numpy, _probs_in_place])
def test_temperature_probs_right(capsys, fn):
    ok, out = _graded(capsys, check_lm.temperature_probs, fn)
    assert ok and "PASS" in out


def _no_temperature(logits, temperature, top_k=None):
    return _right_probs(logits, 1.0, top_k)


def _times_temperature(logits, temperature, top_k=None):
    return _right_probs(logits * temperature, 1.0, top_k)


def _no_top_k(logits, temperature, top_k=None):
    return _right_probs(logits, temperature, None)


def _top_k_zero_fill(logits, temperature, top_k=None):
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, 0.0)                    # 0 is not "removed"
    return torch.softmax(z, dim=-1)


def _top_k_after_softmax(logits, temperature, top_k=None):
    p = torch.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = torch.topk(p, top_k, dim=-1).values[:, -1:]
        p = p.masked_fill(p < kth, 0.0)                    # not renormalized
    return p


def _top_k_one_row_only(logits, temperature, top_k=None):
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z[0], top_k).values[-1]           # the first row's threshold for all
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z, dim=-1)


@pytest.mark.parametrize("fn", [_no_temperature, _times_temperature, _no_top_k, _top_k_zero_fill,
                                _top_k_after_softmax, _top_k_one_row_only,
                                lambda logits, t, k=None: torch.softmax(logits / t, dim=0),
                                lambda logits, t, k=None: None])
def test_temperature_probs_wrong(capsys, fn):
    ok, out = _graded(capsys, check_lm.temperature_probs, fn)
    assert not ok and "NOT YET" in out


def test_temperature_probs_reader_error_is_reported(capsys):
    def broken(logits, temperature, top_k=None):
        raise NotImplementedError

    ok, out = _graded(capsys, check_lm.temperature_probs, broken)
    assert not ok and "not implemented" in out


# --------------------------------------------------------------------------- causal weights
@pytest.mark.parametrize("fn", [_right_causal, _causal_big_negative])
def test_causal_weights_right(capsys, fn):
    ok, out = _graded(capsys, check_lm.causal_attention_weights, fn)
    assert ok and "PASS" in out


def _zero_after_softmax(scores):
    return torch.softmax(scores, -1).tril()


def _future_only(scores):
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).triu()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def _no_diagonal(scores):
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril(-1)
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def _softmax_over_queries(scores):
    T = scores.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-2)


@pytest.mark.parametrize("fn", [lambda s: torch.softmax(s, -1), _zero_after_softmax, _future_only,
                                _no_diagonal, _softmax_over_queries, lambda s: None])
def test_causal_weights_wrong(capsys, fn):
    ok, out = _graded(capsys, check_lm.causal_attention_weights, fn)
    assert not ok and "NOT YET" in out


# --------------------------------------------------------------------------- training FLOPs
@pytest.mark.parametrize("answer", [NANO_C, 5.3e15, 5.2e15, 6 * 10.77e6 * NANO_D, 6 * 10.8e6 * NANO_D,
                                    6 * gpt_num_parameters(65, 256, 6, 384, include_embeddings=False)
                                    * NANO_D, np.float64(NANO_C), int(NANO_C)])
def test_nanogpt_flops_right(capsys, answer):
    ok, _ = _graded(capsys, check_lm.nanogpt_training_flops, answer)
    assert ok


@pytest.mark.parametrize("answer", [2 * NANO_N * NANO_D, 3 * NANO_N * NANO_D, 6 * NANO_N * 5000 * 64,
                                    6 * NANO_N * 5000 * 256, 6 * NANO_N * 5000, 6 * NANO_N,
                                    6 * NANO_N * NANO_D / 312e12 / 180, "5.3e15", None])
def test_nanogpt_flops_wrong(capsys, answer):
    ok, out = _graded(capsys, check_lm.nanogpt_training_flops, answer)
    assert not ok and "NOT YET" in out


def test_training_flops_generic(capsys):
    assert _graded(capsys, check_lm.training_flops, 6 * 1e6 * 2e6, 1e6, 2e6)[0]
    assert not _graded(capsys, check_lm.training_flops, 2 * 1e6 * 2e6, 1e6, 2e6)[0]
    assert not _graded(capsys, check_lm.training_flops, 6 * 1e6, 1e6, 2e6)[0]

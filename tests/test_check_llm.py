"""The chapter-8 checkers pass right answers (written several ways), reject wrong ones, and
never print the expected value or solution code."""
import math

import numpy as np
import torch

from handson.check import llm as check_llm

PROBS = [0.05, 0.4, 0.1, 0.25, 0.2]


def _quiet(out, *secrets):
    for s in secrets:
        assert str(s) not in out, f"the checker printed {s!r}"


def test_top_p_set(capsys):
    assert check_llm.top_p_set({1, 3, 4}, PROBS, 0.7)
    assert check_llm.top_p_set([4, 1, 3], PROBS, 0.7)                   # any order, a list
    assert check_llm.top_p_set(np.array([1, 3, 4]), PROBS, 0.7)
    assert check_llm.top_p_set(torch.tensor([3, 4, 1]), PROBS, 0.7)
    assert check_llm.top_p_set([1], PROBS, 0.3)
    capsys.readouterr()
    assert not check_llm.top_p_set([1, 3], PROBS, 0.7)                  # stops before p
    assert "at least p" in capsys.readouterr().out
    assert not check_llm.top_p_set([1, 3, 4, 2], PROBS, 0.7)            # not the smallest
    assert "smallest" in capsys.readouterr().out
    assert not check_llm.top_p_set([0, 1, 2], PROBS, 0.7)               # first ids, not most likely
    assert not check_llm.top_p_set([0.4, 0.25, 0.2], PROBS, 0.7)        # probabilities, not ids
    assert "not the probabilities" in capsys.readouterr().out
    assert not check_llm.top_p_set([1, 1, 3, 4], PROBS, 0.7)
    assert not check_llm.top_p_set("1, 3, 4", PROBS, 0.7)
    assert not check_llm.top_p_set(None, PROBS, 0.7)
    assert not check_llm.top_p_set([1, 3, 9], PROBS, 0.7)
    out = capsys.readouterr().out
    _quiet(out, "{1, 3, 4}", "[1, 3, 4]", "top_p_filter")


def test_rope_pair(capsys):
    a = 3 * 0.5
    right = (1.0 * math.cos(a) - 2.0 * math.sin(a), 2.0 * math.cos(a) + 1.0 * math.sin(a))
    assert check_llm.rope_pair(right)
    assert check_llm.rope_pair([round(right[0], 4), round(right[1], 4)])          # typed to 4 places
    assert check_llm.rope_pair(np.array(right))
    z = complex(1.0, 2.0) * complex(math.cos(a), math.sin(a))                      # as a complex product
    assert check_llm.rope_pair((z.real, z.imag))
    capsys.readouterr()
    back = (1.0 * math.cos(a) + 2.0 * math.sin(a), 2.0 * math.cos(a) - 1.0 * math.sin(a))
    assert not check_llm.rope_pair(back)
    assert "other way" in capsys.readouterr().out
    once = (math.cos(0.5) - 2 * math.sin(0.5), 2 * math.cos(0.5) + math.sin(0.5))
    assert not check_llm.rope_pair(once)
    assert "m * theta" in capsys.readouterr().out
    assert not check_llm.rope_pair((1.0, 2.0))
    assert not check_llm.rope_pair((round(right[0], 2), round(right[1], 2)))       # too coarse
    assert not check_llm.rope_pair("(-1.9, 0.9)")
    assert not check_llm.rope_pair(None)
    out = capsys.readouterr().out
    _quiet(out, f"{right[0]:.3f}", f"{right[1]:.3f}", f"{right[0]:.2f}")


def test_kv_cache_bytes(capsys):
    args = (80, 8, 128, 4096, 8, 2)
    want = 2 * 80 * 8 * 128 * 4096 * 8 * 2
    assert check_llm.kv_cache_bytes(want, *args, n_head=64)
    assert check_llm.kv_cache_bytes(np.int64(want), *args, n_head=64)
    assert check_llm.kv_cache_bytes(10 * 2 ** 30, *args, n_head=64)                # 10 GiB written so
    capsys.readouterr()
    assert not check_llm.kv_cache_bytes(want // 2, *args, n_head=64)
    assert "keys *and* values" in capsys.readouterr().out
    assert not check_llm.kv_cache_bytes(want * 8, *args, n_head=64)                # query heads
    assert "key/value heads" in capsys.readouterr().out
    assert not check_llm.kv_cache_bytes(want // 8, *args, n_head=64)               # one sequence
    assert not check_llm.kv_cache_bytes(float(want), *args, n_head=64)             # not an int
    assert not check_llm.kv_cache_bytes(str(want), *args, n_head=64)
    assert not check_llm.kv_cache_bytes(None, *args, n_head=64)
    out = capsys.readouterr().out
    _quiet(out, str(want), f"{want:,}")


def test_toy_bpe_merges(capsys):
    assert check_llm.toy_bpe_merges([("a", "a"), ("a", "b"), ("aa", "ab")])
    assert check_llm.toy_bpe_merges([(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab")])
    assert check_llm.toy_bpe_merges((["a", "a"], ["a", "b"], ["aa", "ab"]))
    capsys.readouterr()
    assert not check_llm.toy_bpe_merges([("a", "a"), ("aa", "a"), ("aaa", "b")])   # wrong tie-break
    assert "tie" in capsys.readouterr().out
    assert not check_llm.toy_bpe_merges([("a", "b"), ("a", "a"), ("aa", "ab")])
    assert not check_llm.toy_bpe_merges([("a", "a"), ("a", "b")])
    assert not check_llm.toy_bpe_merges(["aa", "ab", "aaab"])
    assert not check_llm.toy_bpe_merges(None)
    out = capsys.readouterr().out
    _quiet(out, "'aa', 'ab'", "aaab", "BPETokenizer")


def test_llama_parameters(capsys):
    want = 7_241_732_096                                                           # Mistral 7B
    assert check_llm.llama_parameters(want)
    assert check_llm.llama_parameters(np.int64(want))
    d, L, f, V, kv = 4096, 32, 14336, 32000, 1024
    assert check_llm.llama_parameters(L * (2 * d * d + 2 * d * kv + 3 * d * f + 2 * d) + d + 2 * V * d)
    assert check_llm.llama_parameters(want - V * d, tie_embeddings=True)
    capsys.readouterr()
    assert not check_llm.llama_parameters(want + L * 2 * d * (4096 - kv))          # MHA k and v
    assert "KV heads" in capsys.readouterr().out
    assert not check_llm.llama_parameters(want - V * d)                           # tied
    assert "tie" in capsys.readouterr().out
    assert not check_llm.llama_parameters(want - L * d * f)                        # two MLP matrices
    assert "three" in capsys.readouterr().out
    assert not check_llm.llama_parameters(7.24e9)
    assert not check_llm.llama_parameters(None)
    out = capsys.readouterr().out
    _quiet(out, str(want), f"{want:,}")

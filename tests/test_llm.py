"""Tests of handson.llm (chapter 8): BPE, RMSNorm, SwiGLU, RoPE, GQA, KV cache, sampling,
online-softmax attention and the tiny Llama."""
import math

import pytest
import torch
import torch.nn.functional as F

from handson import llm
from handson.lm import GPT, count_parameters

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 5
UNICODE = "你好，世界！ naïve café 🤖🎉 Ωμέγα\n\t  tabs and  double  spaces \x00 end"


def tiny_llama(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=40, block_size=24, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                ffn_hidden=48)
    args.update(kw)
    return llm.TinyLlama(**args)


# --------------------------------------------------------------------------- BPE
def test_bpe_round_trip_on_any_unicode_text():
    tok = llm.BPETokenizer.train(TEXT + UNICODE, 300)
    assert tok.vocab_size == 300 and len(tok.merges) == 44
    for s in (UNICODE, TEXT, "", "🤖", "unseen words: zyxwv 中文 ☃"):
        ids = tok.encode(s)
        assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == s
    assert tok.decode(torch.tensor(tok.encode(UNICODE))) == UNICODE
    # merges make the text shorter than its bytes, and tokens are byte strings of the vocab
    assert len(tok.encode(TEXT)) < len(TEXT.encode("utf-8"))
    assert all(tok.vocab[256 + i] == tok.vocab[a] + tok.vocab[b] for i, (a, b) in enumerate(tok.merges))


def test_bpe_merges_by_hand_and_tie_break():
    tok = llm.BPETokenizer.train("aaabdaaabac", 259, pattern=None)
    assert tok.merges_as_bytes() == [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab")]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    # stops early when nothing is left to merge
    assert llm.BPETokenizer.train("ab", 1000, pattern=None).vocab_size == 257
    # the pre-tokenizer keeps merges inside chunks: no token spans ' w' + 'x'... across a space
    tok = llm.BPETokenizer.train("ab ab ab ab", 300)
    assert all(b" " not in piece[1:] for piece in tok.vocab.values())


def test_bpe_incremental_training_equals_naive_recount():
    def naive(text, vocab_size):
        chunks = llm._splitter(llm.GPT2_SPLIT_PATTERN)(text)
        words = [list(c.encode()) for c in chunks]
        merges = []
        for new_id in range(256, vocab_size):
            counts = {}
            for w in words:
                for p in zip(w, w[1:]):
                    counts[p] = counts.get(p, 0) + 1
            if not counts:
                break
            best = min(counts, key=lambda p: (-counts[p], p))
            merges.append(best)
            words = [llm._merge(w, best, new_id) for w in words]
        return merges
    text = TEXT + UNICODE
    assert llm.BPETokenizer.train(text, 330).merges == naive(text, 330)


def test_bpe_matches_hugging_face_with_its_tie_break():
    pytest.importorskip("tokenizers")
    text = TEXT + UNICODE
    hf = llm.train_hf_bpe(text, 320)
    ours = llm.BPETokenizer.train(text, 320, tie_break="hf")
    assert ours.merges_as_bytes() == llm.hf_merges(hf)
    # the byte order HF's trainer uses is the sorted GPT-2 characters
    vocab = hf.get_vocab()
    table = llm.bytes_to_unicode()
    assert all(vocab[table[b]] == llm.hf_byte_order()[b] for b in range(256))
    assert len(set(table.values())) == 256 and table[32] == "Ġ" and table[10] == "Ċ"
    assert hf.decode(hf.encode(UNICODE).ids) == UNICODE


def test_bpe_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        llm.BPETokenizer.train("", 300)
    with pytest.raises(ValueError, match=">= 256"):
        llm.BPETokenizer.train(TEXT, 255)
    with pytest.raises(ValueError, match=">= 256"):
        llm.BPETokenizer.train(TEXT, 300.0)
    with pytest.raises(TypeError):
        llm.BPETokenizer.train(b"bytes", 300)
    with pytest.raises(ValueError, match="tie_break"):
        llm.BPETokenizer.train(TEXT, 300, tie_break="random")
    tok = llm.BPETokenizer.train(TEXT, 260)
    with pytest.raises(TypeError):
        tok.encode(123)
    with pytest.raises(ValueError, match="vocabulary"):
        tok.decode([0, 260])
    with pytest.raises(ValueError, match="vocabulary"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        llm.BPETokenizer(merges=[(300, 1)])
    with pytest.raises(ValueError):
        llm.train_hf_bpe("", 300)


def test_bits_per_character():
    assert llm.bits_per_character(100 * math.log(2), 50) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        llm.bits_per_character(1.0, 0)
    with pytest.raises(ValueError):
        llm.bits_per_character(-1.0, 10)


# --------------------------------------------------------------------------- norm, MLP
def test_rmsnorm_equals_torch_and_checks_input():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 3 + 1
    ours, ref = llm.RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ref.weight.copy_(ours.weight)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)
    assert ours(x.double()).dtype == torch.float64
    y = llm.RMSNorm(16)(x)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3, 5), atol=1e-4)   # unit RMS
    with pytest.raises(ValueError, match="last dimension"):
        ours(torch.randn(2, 8))
    with pytest.raises(TypeError):
        ours(torch.ones(2, 16, dtype=torch.long))
    with pytest.raises(ValueError):
        llm.RMSNorm(0)
    with pytest.raises(ValueError):
        llm.RMSNorm(8, eps=0)


def test_swiglu_formula_and_width_rule():
    torch.manual_seed(0)
    mlp = llm.SwiGLU(8, 12)
    x = torch.randn(2, 3, 8)
    want = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
    assert torch.allclose(mlp(x), want)
    assert all(m.bias is None for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
    assert count_parameters(mlp) == 3 * 8 * 12
    assert llm.swiglu_hidden(4096) == 11008 and llm.swiglu_hidden(4096, 1) == 10922
    with pytest.raises(ValueError):
        mlp(torch.randn(2, 7))
    with pytest.raises(ValueError):
        llm.SwiGLU(8, 0)
    with pytest.raises(ValueError):
        llm.swiglu_hidden(-4)


# --------------------------------------------------------------------------- RoPE
def test_rope_cache_and_rotation():
    cos, sin = llm.rope_cache(7, 6, base=100.0)
    assert cos.shape == sin.shape == (7, 6)
    assert torch.allclose(cos[0], torch.ones(6)) and torch.allclose(sin[0], torch.zeros(6))
    theta = 100.0 ** (-torch.arange(0, 6, 2) / 6)
    assert torch.allclose(cos[3, :3], torch.cos(3 * theta)) and torch.equal(cos[:, :3], cos[:, 3:])
    x = torch.randn(2, 3, 7, 6)
    y = llm.apply_rope(x, cos, sin)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)        # a rotation
    # pair j = (x_j, x_{j+3}) is turned by m * theta_j
    m, j = 4, 1
    a = 4 * theta[j]
    assert torch.allclose(y[..., m, j], x[..., m, j] * torch.cos(a) - x[..., m, j + 3] * torch.sin(a), atol=1e-6)
    assert torch.allclose(y[..., m, j + 3], x[..., m, j + 3] * torch.cos(a) + x[..., m, j] * torch.sin(a), atol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    T, D = 12, 8
    cos, sin = llm.rope_cache(T, D)
    q, k = torch.randn(D).double(), torch.randn(D).double()
    qs = llm.apply_rope(q.expand(1, 1, T, D).contiguous(), cos.double(), sin.double())[0, 0]
    ks = llm.apply_rope(k.expand(1, 1, T, D).contiguous(), cos.double(), sin.double())[0, 0]
    S = qs @ ks.T                                                        # S[m, n]
    for offset in range(-T + 1, T):
        diag = torch.diagonal(S, offset)
        assert (diag.max() - diag.min()).abs() < 1e-6


def test_rope_interleaved_is_a_permutation_of_half_split():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 8)
    cos, sin = llm.rope_cache(9, 8)
    perm = torch.cat([torch.arange(0, 8, 2), torch.arange(1, 8, 2)])
    assert torch.allclose(llm.apply_rope_interleaved(x)[..., perm], llm.apply_rope(x[..., perm], cos, sin),
                          atol=1e-5)
    # a later start equals the tail of a longer sequence
    long = llm.apply_rope_interleaved(torch.cat([x, x], dim=2))
    assert torch.allclose(llm.apply_rope_interleaved(x, start=9), long[..., 9:, :], atol=1e-5)


def test_rope_matches_hugging_face_llama():
    modeling = pytest.importorskip("transformers.models.llama.modeling_llama")
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 10, 16), torch.randn(2, 2, 10, 16)
    cos, sin = llm.rope_cache(10, 16)
    hq, hk = modeling.apply_rotary_pos_emb(q, k, cos[None], sin[None])
    assert torch.allclose(hq, llm.apply_rope(q, cos, sin), atol=1e-6)
    assert torch.allclose(hk, llm.apply_rope(k, cos, sin), atol=1e-6)


def test_rope_bad_input():
    with pytest.raises(ValueError, match="even"):
        llm.rope_cache(8, 7)
    with pytest.raises(ValueError):
        llm.rope_cache(0, 8)
    with pytest.raises(ValueError):
        llm.rope_cache(8, 8, base=1.0)
    cos, sin = llm.rope_cache(8, 8)
    with pytest.raises(ValueError, match="slice"):
        llm.apply_rope(torch.randn(1, 2, 5, 8), cos, sin)               # 5 positions, cache has 8
    with pytest.raises(ValueError, match="4 dimensions"):
        llm.apply_rope(torch.randn(2, 8, 8), cos, sin)
    with pytest.raises(ValueError, match="even"):
        llm.apply_rope(torch.randn(1, 1, 8, 7), cos[:, :7], sin[:, :7])
    with pytest.raises(TypeError):
        llm.apply_rope(torch.ones(1, 1, 8, 8, dtype=torch.long), cos, sin)
    with pytest.raises(ValueError, match="even"):
        llm.apply_rope_interleaved(torch.randn(1, 1, 4, 5))
    with pytest.raises(ValueError):
        llm.apply_rope_interleaved(torch.randn(1, 1, 4, 4), start=-1)


# --------------------------------------------------------------------------- GQA
def test_repeat_kv_and_sdpa_enable_gqa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 8, 6, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    kr = llm.repeat_kv(k, 4)
    assert kr.shape == (2, 8, 6, 4)
    for h in range(8):
        assert torch.equal(kr[:, h], k[:, h // 4])
    ours = F.scaled_dot_product_attention(q, kr, llm.repeat_kv(v, 4), is_causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert llm.repeat_kv(k, 1) is k
    with pytest.raises(ValueError):
        llm.repeat_kv(k, 0)
    with pytest.raises(ValueError):
        llm.repeat_kv(torch.randn(2, 6, 4), 2)


def test_gqa_bad_configuration():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        llm.GroupedQueryAttention(32, 4, 3)
    with pytest.raises(ValueError, match="divisible"):
        llm.GroupedQueryAttention(30, 4, 2)
    with pytest.raises(ValueError, match="even"):
        llm.GroupedQueryAttention(24, 8, 2)                          # head_dim 3
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        llm.TinyLlama(40, 16, 1, 4, 3, 32)
    with pytest.raises(ValueError):
        llm.llama_num_parameters(40, 1, 4, 3, 32, 48)


def test_kv_cache_bytes_formula_and_real_models():
    assert llm.kv_cache_bytes(32, 32, 128) == 524_288                  # Llama-2-7B, fp16, 0.5 MiB
    assert llm.kv_cache_bytes(32, 8, 128) == 131_072                   # Llama-3-8B
    assert llm.kv_cache_bytes(32, 32, 128, seq_len=4096, batch_size=2) == 2 * 4096 * 524_288
    with pytest.raises(ValueError):
        llm.kv_cache_bytes(32, 0, 128)
    with pytest.raises(ValueError):
        llm.kv_cache_bytes(32, 8, 128, seq_len=1.5)


# --------------------------------------------------------------------------- tiny Llama
def test_tiny_llama_shapes_parameters_and_no_biases():
    model = tiny_llama()
    logits = model(torch.randint(0, 40, (3, 24)))
    assert logits.shape == (3, 24, 40)
    assert count_parameters(model) == llm.llama_num_parameters(40, 2, 4, 2, 32, 48)
    assert model.lm_head.weight is model.embed_tokens.weight
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    untied = tiny_llama(tie_embeddings=False)
    assert count_parameters(untied) == llm.llama_num_parameters(40, 2, 4, 2, 32, 48, tie_embeddings=False)
    # published sizes
    assert llm.llama_num_parameters(32000, 32, 32, 32, 4096, 11008, False) == 6_738_415_616
    assert llm.llama_num_parameters(128256, 32, 32, 8, 4096, 14336, False) == 8_030_261_248


def test_tiny_llama_is_causal_and_checks_input():
    model = tiny_llama().eval()
    x1 = torch.randint(0, 40, (1, 20))
    x2 = x1.clone()
    x2[0, 12:] = (x2[0, 12:] + 1) % 40
    with torch.no_grad():
        l1, l2 = model(x1), model(x2)
    assert torch.allclose(l1[0, :12], l2[0, :12], atol=1e-6)
    assert not torch.allclose(l1[0, 12:], l2[0, 12:])
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError):
        model(torch.full((1, 3), 40))
    with pytest.raises(TypeError):
        model(torch.zeros(3, dtype=torch.long))


def test_tiny_llama_matches_hugging_face_llama():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaForCausalLM
    model = tiny_llama().eval()
    cfg = transformers.LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=24, rms_norm_eps=1e-5, rope_theta=10000.0,
                                   tie_word_embeddings=True, attention_bias=False, mlp_bias=False)
    hf = LlamaForCausalLM(cfg).eval()
    state = {(k if k == "lm_head.weight" else "model." + k): v for k, v in model.state_dict().items()}
    hf.load_state_dict(state)
    idx = torch.randint(0, 40, (2, 24))
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, model(idx), atol=1e-5)


def test_kv_cache_prefill_in_pieces_equals_one_pass():
    model = tiny_llama().eval()
    idx = torch.randint(0, 40, (2, 20))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache()
        parts = [model(idx[:, :7], cache=cache), model(idx[:, 7:8], cache=cache), model(idx[:, 8:], cache=cache)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    assert len(cache) == 20
    assert cache.nbytes() == llm.kv_cache_bytes(2, 2, 8, seq_len=20, batch_size=2, bytes_per_element=4)
    with pytest.raises(ValueError, match="block_size"), torch.no_grad():
        model(idx[:, :5], cache=cache)                                  # 20 + 5 > 24


# --------------------------------------------------------------------------- decoding
def test_generate_with_and_without_cache_agree():
    model = tiny_llama()
    prompt = torch.randint(0, 40, (2, 4))
    a, la = llm.generate(model, prompt, 15, use_cache=True, return_logits=True)
    b, lb = llm.generate(model, prompt, 15, use_cache=False, return_logits=True)
    assert a.shape == (2, 19) and torch.equal(a, b) and torch.equal(a[:, :4], prompt)
    assert la.shape == (2, 15, 40) and (la - lb).abs().max() < 1e-5
    assert torch.equal(a[:, 4:], la.argmax(-1))                       # greedy
    assert model.training                                               # mode restored
    times = []
    llm.generate(model, prompt, 3, timings=times)
    assert len(times) == 3 and all(t > 0 for t in times)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    s1 = llm.generate(model, prompt, 10, temperature=1.0, top_p=0.9, generator=g1)
    s2 = llm.generate(model, prompt, 10, temperature=1.0, top_p=0.9, generator=g2, use_cache=False)
    assert torch.equal(s1, s2)
    assert llm.generate(model, prompt, 0).shape == (2, 4)


def test_generate_works_for_chapter_7_gpt_without_cache_and_checks_input():
    torch.manual_seed(0)
    gpt = GPT(40, 8, 1, 2, 16)
    out = llm.generate(gpt, torch.zeros(1, 3, dtype=torch.long), 12, use_cache=False)  # slides past 8
    assert out.shape == (1, 15)
    with pytest.raises(TypeError, match="use_cache=False"):
        llm.generate(gpt, torch.zeros(1, 3, dtype=torch.long), 2)
    model = tiny_llama()
    with pytest.raises(ValueError, match="block_size"):
        llm.generate(model, torch.zeros(1, 20, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="empty"):
        llm.generate(model, torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(ValueError):
        llm.generate(model, torch.zeros(1, 2, dtype=torch.long), -1)
    with pytest.raises(ValueError):
        llm.generate(model, torch.zeros(1, 2, dtype=torch.long), 2, top_p=0.0)


def test_top_p_filter_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.4, 0.1, 0.25, 0.2]])
    kept = lambda p: set(torch.isfinite(llm.top_p_filter(probs.log(), p))[0].nonzero()[:, 0].tolist())  # noqa: E731
    assert kept(0.7) == {1, 3, 4}
    assert kept(0.65) == {1, 3}                                         # exactly reaches p
    assert kept(0.3) == {1}
    assert kept(1.0) == {0, 1, 2, 3, 4}
    assert kept(0.96) == {0, 1, 2, 3, 4}
    for bad in (0, -0.1, 1.5, float("nan"), True, "0.9"):
        with pytest.raises(ValueError):
            llm.top_p_filter(probs.log(), bad)
    with pytest.raises(ValueError):
        llm.top_p_filter(torch.randn(5), 0.5)


def test_top_p_and_top_k_match_hugging_face_warpers():
    lp = pytest.importorskip("transformers.generation.logits_process")
    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 2
    for p in (0.3, 0.8, 0.95):
        ref = lp.TopPLogitsWarper(p)(None, logits.clone())
        assert torch.equal(torch.isfinite(ref), torch.isfinite(llm.top_p_filter(logits, p)))
    ref = lp.TopKLogitsWarper(7)(None, logits.clone())
    assert torch.equal(torch.isfinite(ref), torch.isfinite(llm.top_k_filter(logits, 7)))
    assert torch.equal(llm.top_k_filter(logits, 100), logits)
    with pytest.raises(ValueError):
        llm.top_k_filter(logits, 0)


def test_sample_token_distribution_and_greedy():
    z = torch.tensor([[2.0, 1.0, 0.1, -1.0]])
    assert llm.sample_token(z, 0.0).item() == 0
    g = torch.Generator().manual_seed(0)
    draws = llm.sample_token(z.expand(20000, -1), 2.0, generator=g)[:, 0]
    freq = torch.bincount(draws, minlength=4) / 20000
    assert (freq - torch.softmax(z[0] / 2, -1)).abs().max() < 0.015
    assert set(llm.sample_token(z.expand(2000, -1), 1.0, top_k=2, generator=g)[:, 0].tolist()) <= {0, 1}
    kept = llm.sample_token(z.expand(2000, -1), 1.0, top_p=0.6, generator=g)[:, 0]
    assert set(kept.tolist()) == {0}                                     # p(0) = 0.64 >= 0.6
    for kw in ({"temperature": -1}, {"top_k": 0}, {"top_p": 1.2}):
        with pytest.raises(ValueError):
            llm.sample_token(z, **kw)


# --------------------------------------------------------------------------- online softmax
@pytest.mark.parametrize("T,block", [(37, 16), (64, 16), (5, 8), (50, 1)])
@pytest.mark.parametrize("causal", [False, True])
def test_online_softmax_attention_equals_sdpa(T, block, causal):
    torch.manual_seed(T)
    q, k, v = torch.randn(2, 3, T, 8) * 2, torch.randn(2, 3, T, 8) * 2, torch.randn(2, 3, T, 8)
    ours = llm.online_softmax_attention(q, k, v, block, causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert (ours - ref).abs().max() < 1e-5


def test_online_softmax_attention_cross_lengths_and_bad_input():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 9, 4), torch.randn(1, 23, 4), torch.randn(1, 23, 6)
    assert torch.allclose(llm.online_softmax_attention(q, k, v, 5),
                          F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    with pytest.raises(ValueError, match="causal"):
        llm.online_softmax_attention(q, k, v, 5, causal=True)
    with pytest.raises(ValueError):
        llm.online_softmax_attention(q, k, v, 0)
    with pytest.raises(ValueError):
        llm.online_softmax_attention(q, k[..., :3], v, 4)
    with pytest.raises(ValueError):
        llm.online_softmax_attention(q, k, v[:, :5], 4)
    with pytest.raises(TypeError):
        llm.online_softmax_attention(q.long(), k, v, 4)


def test_tiny_llama_trains_with_fit_lm():
    from handson.lm import fit_lm
    torch.manual_seed(0)
    data = (torch.arange(400) * 3) % 8                                    # next = (id + 3) mod 8
    model = llm.TinyLlama(8, 16, 1, 2, 1, 16, ffn_hidden=32)
    hist = fit_lm(model, data[:300], data[300:], block_size=16, batch_size=8, max_steps=120, lr=1e-2,
                  eval_every=60, eval_windows=4, device="cpu", progress=False)
    assert hist["val_loss"][-1] < 0.5 < math.log(8)

"""Tests of handson.lm (chapter 7): tokenizer, windows, losses, sampling, models, counting, training."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from handson import lm
from handson.attention import TransformerEncoderBlock
from handson.check import lm as check_lm
from conftest import needs_data

V = 11


def tiny_gpt(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=V, block_size=8, n_layer=2, n_head=2, n_embd=16)
    args.update(kw)
    return lm.GPT(**args)


# --------------------------------------------------------------------------- tokenizer, data
def test_tokenizer_round_trip_and_vocabulary():
    tok = lm.CharTokenizer("hello world")
    assert tok.vocab_size == len(set("hello world")) == 8
    assert tok.chars == sorted(set("hello world"))
    ids = tok.encode("low hello")
    assert ids == [tok.stoi[c] for c in "low hello"]
    assert tok.decode(ids) == "low hello"
    assert tok.decode(torch.tensor(ids)) == "low hello"
    assert lm.CharTokenizer().fit("ba").encode("ab") == [0, 1]


def test_tokenizer_errors_are_clear():
    tok = lm.CharTokenizer("abc")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 7])
    with pytest.raises(ValueError, match="call fit"):
        lm.CharTokenizer().encode("a")
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(torch.zeros(2, 2, dtype=torch.long))


def test_split_by_position_keeps_order():
    data = torch.arange(100)
    train, val = lm.split_by_position(data, 0.9)
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    with pytest.raises(ValueError, match="strictly between"):
        lm.split_by_position(data, 1.0)
    with pytest.raises(TypeError, match="1-D integer tensor"):
        lm.split_by_position(torch.rand(10))


def test_char_windows_shift_targets_by_one():
    data = torch.arange(20)
    ds = lm.CharWindows(data, block_size=5)
    assert len(ds) == 15
    x, y = ds[3]
    assert torch.equal(x, torch.arange(3, 8)) and torch.equal(y, torch.arange(4, 9))
    x_last, y_last = ds[-1]
    assert y_last[-1] == 19
    eval_ds = lm.CharWindows(data, block_size=5, stride=5)
    assert len(eval_ds) == 3 and torch.equal(eval_ds[2][0], torch.arange(10, 15))
    with pytest.raises(ValueError, match="block_size \\+ 1"):
        lm.CharWindows(torch.arange(4), block_size=4)


def test_window_loader_train_and_eval():
    data = torch.arange(200)
    train = lm.window_loader(data, 8, 4, shuffle=True, num_batches=5, seed=1)
    batches = list(train)
    assert len(batches) == 5 and batches[0][0].shape == (4, 8)
    x, y = batches[0]
    assert torch.equal(y, x + 1)                                   # next-token targets
    again = list(lm.window_loader(data, 8, 4, shuffle=True, num_batches=5, seed=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    full = lm.window_loader(data, 8, 4)
    xs = torch.cat([b[0] for b in full])
    assert xs.shape == (24, 8) and torch.equal(xs.reshape(-1), torch.arange(192))   # no overlap
    some = lm.window_loader(data, 8, 4, num_windows=3)
    starts = torch.cat([b[0][:, 0] for b in some]).tolist()
    assert starts == [0, 96, 184]                                  # evenly spaced, first and last


# --------------------------------------------------------------------------- loss, conversions
def test_lm_loss_is_mean_cross_entropy_over_all_positions():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 5, V, dtype=torch.float64), torch.randint(0, V, (3, 5))
    log_probs = torch.log_softmax(logits, -1).gather(-1, targets[..., None])
    assert torch.allclose(lm.lm_loss(logits, targets), -log_probs.mean())
    with pytest.raises(ValueError, match="batch, time, vocab"):
        lm.lm_loss(logits[0], targets[0])
    with pytest.raises(ValueError, match="targets must be"):
        lm.lm_loss(logits, targets[:, :4])


def test_nats_bits_perplexity_conversions():
    loss = 1.47
    bits = lm.nats_to_bits(loss)
    assert bits == pytest.approx(loss / math.log(2))
    assert lm.bits_to_nats(bits) == pytest.approx(loss)
    assert lm.perplexity(loss) == pytest.approx(2 ** bits)
    assert lm.perplexity(math.log(65)) == pytest.approx(65)       # uniform over 65 characters
    assert torch.allclose(lm.perplexity(torch.tensor(1.0)), torch.tensor(math.e))


# --------------------------------------------------------------------------- sampling
def test_sample_next_temperature_zero_and_top_k_one_are_greedy():
    torch.manual_seed(0)
    logits = torch.randn(4, V)
    assert torch.equal(lm.sample_next(logits, temperature=0), logits.argmax(-1, keepdim=True))
    assert torch.equal(lm.sample_next(logits, top_k=1), logits.argmax(-1, keepdim=True))


def test_sample_next_follows_softmax_of_scaled_logits_and_top_k():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    n = 20_000
    draws = lm.sample_next(logits.expand(n, -1), temperature=2.0, generator=g)[:, 0]
    freq = torch.bincount(draws, minlength=4).double() / n
    assert torch.allclose(freq, torch.softmax(logits[0].double() / 2, -1), atol=0.015)
    top2 = lm.sample_next(logits.expand(2000, -1), top_k=2, generator=g)
    assert set(top2.unique().tolist()) == {0, 1}
    with pytest.raises(ValueError, match="top_k"):
        lm.sample_next(logits, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        lm.sample_next(logits, temperature=-1)


# --------------------------------------------------------------------------- models
def test_gpt_shapes_tying_and_parameter_formula():
    model = tiny_gpt()
    logits = model(torch.randint(0, V, (3, 8)))
    assert logits.shape == (3, 8, V)
    assert model.head.weight is model.token_embedding.weight
    assert lm.count_parameters(model) == lm.gpt_num_parameters(V, 8, 2, 16)
    block = TransformerEncoderBlock(16, 2, 64, norm_first=True, activation="gelu")
    assert sum(p.numel() for p in block.parameters()) == 12 * 16 ** 2 + 13 * 16


def test_gpt_is_causal():
    model = tiny_gpt().eval()
    x = torch.randint(0, V, (2, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % V                                  # change only the future
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-4)


def test_gpt_is_causal_path_equals_the_explicit_mask_path():
    """GPT's attention passes is_causal=True; the maths is the boolean causal_mask's."""
    from handson.attention import MultiHeadAttention, causal_mask
    torch.manual_seed(1)
    model = tiny_gpt(block_size=12, n_layer=3, n_head=4, n_embd=32).eval()
    assert all(isinstance(b.attention, lm.CausalSelfAttention) for b in model.blocks)
    idx = torch.randint(0, V, (3, 12))
    for T in (1, 5, 12):
        x = model.token_embedding(idx[:, :T]) + model.position_embedding(torch.arange(T))
        for block in model.blocks:                                # the explicit-mask block
            h = block.norm1(x)
            x = x + MultiHeadAttention.forward(block.attention, h, h, h, causal_mask(T),
                                               need_weights=False)[0]
            x = x + block.ffn(block.norm2(x))
        with torch.no_grad():
            assert torch.allclose(model(idx[:, :T]), model.head(model.norm(x)), atol=1e-6, rtol=0)
    attn = model.blocks[0].attention
    h = torch.randn(2, 6, 32)
    out, weights = attn(h, h, h)                                  # weights: explicit mask path
    assert torch.allclose(out, attn(h, h, h, need_weights=False)[0], atol=1e-6)
    assert torch.equal(weights > 0, causal_mask(6).expand(2, 6, 6))
    with pytest.raises(ValueError, match="mask=None"):
        attn(h, h, h, causal_mask(6))
    with pytest.raises(ValueError, match="one shape"):
        attn(h, h[:, :3], h[:, :3], need_weights=False)


def test_gpt_input_validation():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="0..10"):
        model(torch.full((1, 3), V))
    with pytest.raises(ValueError, match="divisible"):
        lm.GPT(V, 8, 1, 3, 16)


def test_gpt_generate_crops_context_and_is_greedy_at_temperature_zero():
    model = tiny_gpt()
    prompt = torch.randint(0, V, (2, 3))
    out = model.generate(prompt, 12, temperature=0)                # longer than block_size
    assert out.shape == (2, 15) and torch.equal(out[:, :3], prompt)
    assert model.training                                          # mode restored
    with torch.no_grad():
        model.eval()
        expected = model(out[:, 7:14])[:, -1].argmax(-1)
    assert torch.equal(out[:, 14], expected)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(model.generate(prompt, 5, generator=g1), model.generate(prompt, 5, generator=g2))


def test_lstm_shapes_parameter_formula_and_causality():
    torch.manual_seed(0)
    model = lm.LSTMLanguageModel(V, 6, 10, num_layers=2).eval()
    x = torch.randint(0, V, (2, 7))
    logits = model(x)
    assert logits.shape == (2, 7, V)
    assert lm.count_parameters(model) == lm.lstm_num_parameters(V, 6, 10, 2)
    y = x.clone()
    y[:, 4:] = (y[:, 4:] + 1) % V
    with torch.no_grad():
        assert torch.allclose(model(y)[:, :4], logits[:, :4].detach(), atol=1e-6)


def test_lstm_generate_with_carried_state_equals_rerunning_the_whole_text():
    torch.manual_seed(0)
    model = lm.LSTMLanguageModel(V, 6, 10, num_layers=2)
    out = model.generate(torch.randint(0, V, (2, 4)), 6, temperature=0)
    assert out.shape == (2, 10)
    with torch.no_grad():
        model.eval()
        expected = model(out[:, :-1])[:, -1].argmax(-1)            # whole history at once
    assert torch.equal(out[:, -1], expected)
    with pytest.raises(ValueError, match="empty"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)


# --------------------------------------------------------------------------- counting
def test_flops_formula_matches_flop_counter():
    model = tiny_gpt(block_size=16, n_layer=2, n_head=2, n_embd=32)
    B, T = 3, 16
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    counter = FlopCounterMode(display=False)
    with counter:
        lm.lm_loss(model(x), y).backward()
    counts = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    matmuls = sum(v for k, v in counts.items() if "attention" not in k)
    per_token_weights = 12 * 2 * 32 ** 2 + V * 32                 # 12 L d^2 + V d
    assert matmuls == 6 * per_token_weights * B * T               # 6 N D, exactly
    attention_forward = sum(v for k, v in counts.items() if "attention" in k and "backward" not in k)
    assert attention_forward == 4 * 2 * T * 32 * B * T           # 4 L T d per token, forward
    assert lm.gpt_flops_per_token(V, T, 2, 32) == 6 * per_token_weights + 12 * 2 * T * 32
    assert lm.gpt_flops_per_token(V, T, 2, 32, training=False) * 3 == lm.gpt_flops_per_token(V, T, 2, 32)


def test_published_scale_numbers():
    gpt3 = lm.gpt_num_parameters(50257, 2048, 96, 12288)           # Brown et al. 2020, Table 2.1
    assert gpt3 == pytest.approx(175e9, rel=0.01)
    assert lm.training_flops(175e9, 300e9) == pytest.approx(3.14e23, rel=0.01)
    with pytest.raises(ValueError):
        lm.training_flops(-1, 10)


# --------------------------------------------------------------------------- training
def test_fit_lm_learns_a_periodic_text_and_counts_tokens():
    torch.manual_seed(0)
    data = torch.tensor([0, 1, 2, 3, 4] * 200)
    model = lm.GPT(5, 8, 1, 2, 16)
    history = lm.fit_lm(model, data[:800], data[800:], block_size=8, batch_size=8, max_steps=60,
                        lr=1e-2, warmup_steps=5, eval_every=20, eval_windows=4, progress=False,
                        device="cpu")
    assert history["step"] == [20, 40, 60]
    assert history["tokens"] == [s * 8 * 8 for s in history["step"]]
    assert history["val_loss"][-1] < 0.3 < math.log(5) < history["train_loss"][0] + 1
    assert history["lr"][-1] == pytest.approx(1e-3)                # cosine ends at lr / 10


def test_fit_lm_stops_at_the_time_budget():
    torch.manual_seed(0)
    data = torch.randint(0, V, (500,))
    model = lm.LSTMLanguageModel(V, 4, 8)
    history = lm.fit_lm(model, data, data, block_size=8, batch_size=4, max_steps=10_000,
                        time_budget_s=0.3, eval_every=5, eval_windows=2, progress=False, device="cpu")
    assert history["step"][-1] < 10_000 and history["time_s"][-1] < 5
    assert history["lr"][-1] == pytest.approx(1e-4, rel=0.05)     # the cosine has run out
    with pytest.raises(ValueError, match="time_budget_s"):
        lm.fit_lm(model, data, data, block_size=8, batch_size=4, max_steps=5, time_budget_s=0)


# --------------------------------------------------------------------------- checkers
def test_checkers_pass_right_answers_and_reject_wrong_ones(capsys):
    assert check_lm.perplexity(math.exp(1.47), 1.47)
    assert not check_lm.perplexity(2 ** 1.47, 1.47)
    assert not check_lm.perplexity(None, 1.47)
    assert check_lm.bits_per_char(1.47 / math.log(2), 1.47)
    assert check_lm.block_parameters(12 * 384 ** 2 + 13 * 384, 384, 6)
    assert not check_lm.block_parameters(12 * 384 ** 2, 384, 6)

    def probs(logits, temperature, top_k):
        z = logits / temperature
        if top_k is not None:
            z = z.masked_fill(z < torch.topk(z, top_k, -1).values[:, -1:], -math.inf)
        return torch.softmax(z, -1)

    assert check_lm.temperature_probs(probs)
    assert not check_lm.temperature_probs(lambda logits, t, k: torch.softmax(logits, -1))
    assert not check_lm.temperature_probs(lambda logits, t, k: None)

    def weights(scores):
        T = scores.shape[-1]
        return torch.softmax(scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -math.inf), -1)

    assert check_lm.causal_attention_weights(weights)
    assert not check_lm.causal_attention_weights(lambda s: torch.softmax(s, -1))
    assert not check_lm.causal_attention_weights(lambda s: torch.softmax(s, -1).tril())
    assert check_lm.training_flops(6 * 10.7e6 * 81.92e6, 10.7e6, 81.92e6)
    assert not check_lm.training_flops(2 * 10.7e6 * 81.92e6, 10.7e6, 81.92e6)
    assert not check_lm.training_flops(None, 1, 1)
    assert check_lm.nanogpt_training_flops(6 * lm.gpt_num_parameters(65, 256, 6, 384) * 5000 * 64 * 256)
    assert not check_lm.nanogpt_training_flops(6 * 10.7e6 * 5000 * 64)
    out = capsys.readouterr().out
    assert "PASS" in out and "hint" in out


@needs_data
def test_tiny_shakespeare_vocabulary():
    from handson import data
    text = data.load_tiny_shakespeare()
    tok = lm.CharTokenizer(text)
    assert len(text) == 1_115_394 and tok.vocab_size == 65
    train, val = lm.split_by_position(torch.tensor(tok.encode(text[:10_000])))
    assert len(train) == 9_000 and len(val) == 1_000

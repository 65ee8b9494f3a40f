"""handson.attention equals PyTorch's own attention, multi-head attention and encoder layer."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from handson import attention as A


def _qkv(*batch, L=5, S=7, d_k=8, d_v=6, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, L, d_k, generator=g, dtype=dtype)
    k = torch.randn(*batch, S, d_k, generator=g, dtype=dtype)
    v = torch.randn(*batch, S, d_v, generator=g, dtype=dtype)
    return q, k, v


# ---------------------------------------------------------------- scaled dot-product attention
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_sdpa_equals_torch(dtype, tol, batch):
    q, k, v = _qkv(*batch, dtype=dtype)
    out, weights = A.scaled_dot_product_attention(q, k, v)
    assert out.shape == (*batch, 5, 6) and weights.shape == (*batch, 5, 7)
    assert out.dtype == dtype
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=tol, rtol=tol)
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch, 5, dtype=dtype))


def test_sdpa_weights_are_the_formula():
    q, k, v = _qkv(2, dtype=torch.float64)
    _, weights = A.scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1)
    torch.testing.assert_close(weights, expected)


@pytest.mark.parametrize("mask_shape", [(5, 7), (2, 5, 7), (2, 1, 7), (1, 7)])
def test_sdpa_masks_equal_torch(mask_shape):
    q, k, v = _qkv(2)
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(*mask_shape, generator=g) > 0.3
    mask[..., 0] = True                      # every query may see at least one key
    out, weights = A.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               atol=1e-5, rtol=1e-5)
    assert torch.all(weights.masked_select(~mask.expand_as(weights)) == 0)


def test_sdpa_fully_masked_row_gives_zeros_like_torch():
    q, k, v = _qkv(1, L=3, S=3)
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, False]])
    out, weights = A.scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.all(weights[:, 1] == 0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_sdpa_causal_equals_is_causal():
    q, k, v = _qkv(2, 3, L=6, S=6)
    out, _ = A.scaled_dot_product_attention(q, k, v, A.causal_mask(6))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-5, rtol=1e-5)


def test_sdpa_gradients_flow_through_masks():
    q, k, v = (t.requires_grad_() for t in _qkv(1, L=3, S=3, dtype=torch.float64))
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, _ = A.scaled_dot_product_attention(q, k, v, mask)
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_sdpa_bad_inputs():
    q, k, v = _qkv(2)
    with pytest.raises(ValueError, match="same feature size"):
        A.scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="same length"):
        A.scaled_dot_product_attention(q, k, v[:, :3])
    with pytest.raises(TypeError, match="floating-point"):
        A.scaled_dot_product_attention(q.long(), k.long(), v.long())
    with pytest.raises(TypeError, match="share a dtype"):
        A.scaled_dot_product_attention(q, k.double(), v)
    with pytest.raises(TypeError, match="boolean"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(5, 7))
    with pytest.raises(ValueError, match="does not broadcast"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        A.scaled_dot_product_attention(torch.randn(3), torch.randn(3), torch.randn(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        A.scaled_dot_product_attention([[1.0]], k, v)


# ---------------------------------------------------------------- masks
def test_causal_mask():
    m = A.causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert m.tolist()[1] == [True, True, False, False]
    torch_mask = nn.Transformer.generate_square_subsequent_mask(4)   # -inf above the diagonal
    assert torch.equal(m, torch_mask == 0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            A.causal_mask(bad)


def test_public_api_keyword_names():
    """The names the chapter's issue promises: tests elsewhere call them by keyword."""
    assert torch.equal(A.causal_mask(L=3, device="cpu"), A.causal_mask(3))
    assert A.causal_mask(3, device=torch.device("cpu")).device.type == "cpu"
    assert A.sinusoidal_positional_encoding(length=5, dim=6).shape == (5, 6)
    q, k, v = _qkv(1)
    out, w = A.scaled_dot_product_attention(q=q, k=k, v=v, mask=None)
    assert out.shape == (1, 5, 6) and w.shape == (1, 5, 7)
    mha = A.MultiHeadAttention(embed_dim=8, num_heads=2, bias=False)
    assert mha(query=torch.randn(1, 3, 8), key=torch.randn(1, 4, 8), value=torch.randn(1, 4, 8),
               mask=None)[1].shape == (1, 3, 4)
    block = A.TransformerEncoderBlock(d_model=8, num_heads=2, dim_feedforward=16, dropout=0.0,
                                      norm_first=True)
    assert block(torch.randn(2, 3, 8)).shape == (2, 3, 8)


def test_padding_mask():
    m = A.padding_mask([3, 1], 4)
    assert m.shape == (2, 1, 4)
    assert m[:, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        A.padding_mask([5], 4)
    with pytest.raises(ValueError, match="1-D"):
        A.padding_mask([[1, 2]], 4)


# ---------------------------------------------------------------- multi-head attention
@pytest.mark.parametrize("bias", [True, False])
def test_mha_equals_torch(bias):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(16, 4, bias=bias, batch_first=True).eval()
    ours = A.MultiHeadAttention.from_torch(theirs).eval()
    x, y = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    out, w = ours(x, y, y)
    out_t, w_t = theirs(x, y, y)
    torch.testing.assert_close(out, out_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, w_t, atol=1e-6, rtol=1e-5)
    out_f, none = ours(x, y, y, need_weights=False)
    assert none is None
    torch.testing.assert_close(out_f, out_t, atol=1e-5, rtol=1e-5)
    per_head = ours(x, y, y, average_weights=False)[1]
    assert per_head.shape == (2, 4, 5, 7)
    torch.testing.assert_close(per_head.mean(1), w)


def test_mha_masks_equal_torch_with_opposite_convention():
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(12, 3, batch_first=True).eval()
    ours = A.MultiHeadAttention.from_torch(theirs)
    x = torch.randn(2, 6, 12)
    causal = A.causal_mask(6)
    torch.testing.assert_close(ours(x, x, x, causal)[0],
                               theirs(x, x, x, attn_mask=~causal)[0], atol=1e-5, rtol=1e-5)
    pad = A.padding_mask([6, 4], 6)                                  # (N, 1, S)
    torch.testing.assert_close(ours(x, x, x, pad)[0],
                               theirs(x, x, x, key_padding_mask=~pad[:, 0])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x, x, x, pad, need_weights=False)[0],
                               theirs(x, x, x, key_padding_mask=~pad[:, 0])[0], atol=1e-5, rtol=1e-5)


def test_mha_parameter_count():
    for e, h, bias in [(16, 4, True), (384, 12, True), (64, 8, False)]:
        ours = A.MultiHeadAttention(e, h, bias=bias)
        theirs = nn.MultiheadAttention(e, h, bias=bias)
        expected = 4 * e * e + (4 * e if bias else 0)
        assert sum(p.numel() for p in ours.parameters()) == expected
        assert sum(p.numel() for p in theirs.parameters()) == expected


def test_mha_split_merge_roundtrip():
    mha = A.MultiHeadAttention(12, 3)
    x = torch.randn(2, 5, 12)
    assert mha.split_heads(x).shape == (2, 3, 5, 4)
    assert torch.equal(mha.merge_heads(mha.split_heads(x)), x)


def test_mha_bad_inputs():
    with pytest.raises(ValueError, match="divisible"):
        A.MultiHeadAttention(10, 3)
    mha = A.MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="batch first"):
        mha(torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="batch, length, 8"):
        mha(torch.randn(1, 3, 6), torch.randn(1, 3, 6), torch.randn(1, 3, 6))
    x = torch.randn(1, 3, 8)
    with pytest.raises(TypeError, match="boolean"):
        mha(x, x, x, torch.zeros(3, 3))
    with pytest.raises(TypeError, match="MultiheadAttention"):
        A.MultiHeadAttention.from_torch(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="kdim"):
        A.MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))


# ---------------------------------------------------------------- positional encoding, norm, block
def test_sinusoidal_positional_encoding():
    P = A.sinusoidal_positional_encoding(50, 16)
    assert P.shape == (50, 16) and P.dtype == torch.float32
    pos, i = 7, 3                               # column pair (2i, 2i+1)
    angle = pos / 10000 ** (2 * i / 16)
    assert P[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert P[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert A.sinusoidal_positional_encoding(4, 5).shape == (4, 5)       # odd sizes work
    with pytest.raises(ValueError, match="positive int"):
        A.sinusoidal_positional_encoding(0, 8)
    with pytest.raises(ValueError, match="dim must be"):
        A.sinusoidal_positional_encoding(4, 2.0)


def test_layer_norm_equals_torch():
    x = torch.randn(3, 4, 10)
    ours, theirs = A.LayerNorm(10), nn.LayerNorm(10)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
        ours.weight.copy_(theirs.weight)
        ours.bias.copy_(theirs.bias)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_equals_torch(norm_first, activation):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.1, activation=activation,
                                        batch_first=True, norm_first=norm_first).eval()
    with torch.no_grad():                      # non-trivial LayerNorm parameters
        for norm in (theirs.norm1, theirs.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    ours = A.TransformerEncoderBlock.from_torch(theirs)
    assert not ours.training and ours.norm_first == norm_first
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
        causal = A.causal_mask(6)
        torch.testing.assert_close(ours(x, causal), theirs(x, src_mask=~causal), atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_encoder_block_train_mode_matches_without_dropout():
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    ours = A.TransformerEncoderBlock.from_torch(theirs)
    assert ours.training
    x = torch.randn(2, 3, 8, requires_grad=True)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    ours(x).sum().backward()                  # gradients flow through the fused path
    assert torch.isfinite(x.grad).all()


def test_encoder_block_without_bias():
    theirs = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True,
                                        bias=False).eval()
    ours = A.TransformerEncoderBlock.from_torch(theirs)
    x = torch.randn(1, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_encoder_block_bad_input():
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        A.TransformerEncoderBlock.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="relu"):
        A.TransformerEncoderBlock(8, 2, 16, activation="tanh")


# ---------------------------------------------------------------- cost helpers
def test_cost_helpers_on_cpu():
    q = torch.randn(1, 2, 128, 16)

    def naive(q):
        return torch.softmax(q @ q.mT, -1) @ q

    assert A.time_call(naive, q, repeats=2) > 0
    peak = A.peak_memory(naive, q)
    assert peak >= 2 * 128 * 128 * 4          # at least the (2, 128, 128) float32 score matrix


# ---------------------------------------------------------------- exercise checkers
def test_checkers_pass_right_answers_and_survive_stubs(capsys):
    from handson.check import attention as C

    def stub(*args):
        raise NotImplementedError

    assert C.mha_parameters(4 * 256 ** 2 + 4 * 256, 256, 8)
    assert not C.mha_parameters(None, 256, 8)
    assert C.causal_mask(A.causal_mask) and not C.causal_mask(stub)
    assert not C.causal_mask(lambda n: torch.ones(n, n).tril())          # float, not bool
    assert C.padding_mask(A.padding_mask) and not C.padding_mask(stub)
    assert C.scaled_dot_product_attention(A.scaled_dot_product_attention)
    assert not C.scaled_dot_product_attention(stub)
    wrong = lambda q, k, v, mask=None: A.scaled_dot_product_attention(q, k, v)   # ignores the mask
    assert not C.scaled_dot_product_attention(wrong)
    assert C.dot_product_variance(lambda d, s: d * s ** 4)
    assert not C.dot_product_variance(lambda d, s: d * s ** 2)
    assert not C.dot_product_variance(stub)
    d, f = 64, 256
    right = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    assert C.encoder_block_parameters(right, d, 4, f)
    assert not C.encoder_block_parameters(right - 4 * d, d, 4, f)
    out = capsys.readouterr().out
    assert "PASS" in out and "NOT YET" in out
    # the notebook's stubs return None: a hint, no exception
    assert not C.causal_mask(lambda n: None)
    assert not C.padding_mask(lambda valid_lens, num_keys: None)
    assert not C.scaled_dot_product_attention(lambda q, k, v, mask: (None, None))
    assert not C.dot_product_variance(lambda d_k, sigma: None)
    assert not C.encoder_block_parameters(None, d, 4, f)
    assert capsys.readouterr().out.count("returned None") == 4

"""The exercise checkers of chapters 4 and 5 grade right: known-right answers (also written
another legitimate way) PASS, known-wrong ones do not, and nothing printed leaks the
expected value or code of the solution."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from handson import vision
from handson.check import attention as CA
from handson.check import vision as CV

# fragments of solution code that no checker output may contain
CODE_LEAKS = ("tril(", "triu(", "torch.ones(", "torch.arange(", "masked_fill", "softmax(",
              "k.transpose", "@", "model[0]", "model[:-1]", "r +=", "j *=", "**", "sqrt(d_k) *",
              "def ", "return torch", "return model", "return (")


def run(capsys, checker, *args, **kwargs):
    verdict = checker(*args, **kwargs)
    out = capsys.readouterr().out
    for leak in CODE_LEAKS:
        assert leak not in out, f"printed text leaks solution code {leak!r}: {out}"
    return bool(verdict), out


def assert_no_number(out, value):
    """The printed text does not contain the expected value (as digits, with or without commas)."""
    digits = re.sub(r"[,_]", "", out)
    assert str(value) not in digits and f"{value:,}" not in out, f"leaks {value}: {out}"


# ---------------------------------------------------------------- chapter 4: attention
@pytest.mark.parametrize("E,h", [(512, 8), (64, 4), (384, 12)])
def test_mha_parameters(capsys, E, h):
    expected = 4 * E * E + 4 * E
    assert run(capsys, CA.mha_parameters, expected, E, h)[0]
    assert run(capsys, CA.mha_parameters, torch.tensor(expected), E, h)[0]    # 0-d int tensor
    for wrong in (4 * E * E, 3 * E * E + 3 * E, float(expected), str(expected), None,
                  4 * E * E // h + 4 * E, expected + 1):
        ok, out = run(capsys, CA.mha_parameters, wrong, E, h)
        assert not ok and "NOT YET" in out
        assert_no_number(out, expected)


def right_causal(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def right_causal_other_way(n):
    i = torch.arange(n)
    return i[:, None] >= i[None, :]


@pytest.mark.parametrize("fn", [right_causal, right_causal_other_way,
                                lambda n: ~torch.ones(n, n, dtype=torch.bool).triu(1)])
def test_causal_mask_right(capsys, fn):
    assert run(capsys, CA.causal_mask, fn)[0]


@pytest.mark.parametrize("fn", [
    lambda n: torch.ones(n, n, dtype=torch.bool).triu(),          # sees the future
    lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1),        # not even itself
    lambda n: ~torch.ones(n, n, dtype=torch.bool).tril(),         # "may not attend" convention
    lambda n: torch.ones(n, n).tril(),                            # float, not bool
    lambda n: torch.ones(4, 4, dtype=torch.bool).tril(),          # fixed size
    lambda n: None,
])
def test_causal_mask_wrong(capsys, fn):
    ok, out = run(capsys, CA.causal_mask, fn)
    assert not ok and "hint:" in out


def right_padding(valid_lens, num_keys):
    positions = torch.arange(num_keys)
    return (positions[None, :] < valid_lens[:, None])[:, None, :]


def right_padding_other_way(valid_lens, num_keys):
    grid = torch.arange(num_keys).expand(len(valid_lens), num_keys)
    return (grid < valid_lens.unsqueeze(1)).unsqueeze(1)


@pytest.mark.parametrize("fn", [right_padding, right_padding_other_way])
def test_padding_mask_right(capsys, fn):
    assert run(capsys, CA.padding_mask, fn)[0]


@pytest.mark.parametrize("fn", [
    lambda v, s: (torch.arange(s)[None, :] <= v[:, None])[:, None, :],       # off by one
    lambda v, s: torch.arange(s)[None, :] < v[:, None],                      # no query axis
    lambda v, s: (torch.arange(s)[None, :] < v[:, None])[:, :, None],        # axis in the wrong place
    lambda v, s: (torch.arange(s)[None, :] >= v[:, None])[:, None, :],       # marks the padding
    lambda v, s: (torch.arange(s)[None, :] < int(v.max()))[:, None, :].expand(len(v), 1, s),
    lambda v, s: (torch.arange(s)[None, :] < v[:, None]).float()[:, None, :],
    lambda v, s: (torch.arange(6)[None, :] < v[:, None])[:, None, :],         # fixed num_keys
    lambda v, s: None,
])
def test_padding_mask_wrong(capsys, fn):
    ok, out = run(capsys, CA.padding_mask, fn)
    assert not ok and "hint:" in out


def right_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights @ v, weights


def right_attention_other_way(q, k, v, mask=None):
    scores = torch.einsum("nld,nsd->nls", q, k) * q.shape[-1] ** -0.5
    scores = torch.where(mask, scores, torch.tensor(-1e9))
    weights = F.softmax(scores, -1)
    return torch.einsum("nls,nsd->nld", weights, v), weights


@pytest.mark.parametrize("fn", [right_attention, right_attention_other_way])
def test_attention_right(capsys, fn):
    assert run(capsys, CA.scaled_dot_product_attention, fn)[0]


def _weights_then_mask(q, k, v, mask):        # masks after the softmax: rows no longer sum to 1
    w = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), -1) * mask
    return w @ v, w


def _scale_outside(q, k, v, mask):
    w = torch.softmax((q @ k.mT).masked_fill(~mask, -math.inf), -1) / math.sqrt(q.shape[-1])
    return w @ v, w


def _no_scale(q, k, v, mask):
    w = torch.softmax((q @ k.mT).masked_fill(~mask, -math.inf), -1)
    return w @ v, w


def _ignores_mask(q, k, v, mask):
    w = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), -1)
    return w @ v, w


def _opposite_convention(q, k, v, mask):
    w = torch.softmax((q @ k.mT / math.sqrt(q.shape[-1])).masked_fill(mask, -1e9), -1)
    return w @ v, w


@pytest.mark.parametrize("fn", [_weights_then_mask, _scale_outside, _no_scale, _ignores_mask,
                                _opposite_convention, lambda q, k, v, mask: (None, None)])
def test_attention_wrong(capsys, fn):
    ok, out = run(capsys, CA.scaled_dot_product_attention, fn)
    assert not ok and "hint:" in out


def test_dot_product_variance(capsys):
    assert run(capsys, CA.dot_product_variance, lambda d, s: d * s ** 4)[0]
    assert run(capsys, CA.dot_product_variance, lambda d, s: torch.tensor(d * (s * s) ** 2))[0]
    for wrong in (lambda d, s: d * s ** 2, lambda d, s: s ** 4, lambda d, s: math.sqrt(d) * s ** 2,
                  lambda d, s: d, lambda d, s: str(d * s ** 4), lambda d, s: None):
        ok, out = run(capsys, CA.dot_product_variance, wrong)
        assert not ok and "hint:" in out


@pytest.mark.parametrize("d,h,f", [(512, 8, 2048), (64, 4, 256)])
def test_encoder_block_parameters(capsys, d, h, f):
    expected = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    assert run(capsys, CA.encoder_block_parameters, expected, d, h, f)[0]
    wrongs = (expected - 4 * d, expected - 2 * d, expected - f - d, expected - d * f - d,
              float(expected), None, 4 * d * d + 2 * d * f)
    for wrong in wrongs:
        ok, out = run(capsys, CA.encoder_block_parameters, wrong, d, h, f)
        assert not ok and "NOT YET" in out
        assert_no_number(out, expected)
        assert f"{4 * d}" not in out.replace(str(wrong), "")      # no "... is 4d short"


# ---------------------------------------------------------------- chapter 5: vision
def test_conv_output_sizes(capsys):
    assert run(capsys, CV.conv_output_sizes, [112, 56, 56, 27])[0]
    assert run(capsys, CV.conv_output_sizes, (112, 56, 56, 27))[0]
    for wrong in ([112, 56, 56, 28], [112.0, 56.0, 56.0, 27.0], [112, 56, 54, 26], 27, None,
                  [112, 56], ["112", "56", "56", "27"]):
        ok, out = run(capsys, CV.conv_output_sizes, wrong)
        assert not ok and "NOT YET" in out
        assert "112, 56" not in out and "[112" not in out.replace(str(wrong), "")


def test_conv_layer_params_and_macs(capsys):
    assert run(capsys, CV.conv_layer_params, 295_168, in_channels=128, out_channels=256,
               kernel_size=3)[0]
    for wrong in (294_912, 295_168.0, 3 * 3 * 128 * 256 + 128, None):
        ok, out = run(capsys, CV.conv_layer_params, wrong, in_channels=128, out_channels=256,
                      kernel_size=3)
        assert not ok and "hint:" in out
        assert_no_number(out, 295_168)
    kw = dict(in_channels=128, out_channels=256, kernel_size=3, input_size=16, padding=1)
    assert run(capsys, CV.conv_layer_macs, 16 * 16 * 256 * 3 * 3 * 128, **kw)[0]
    for wrong in (14 * 14 * 256 * 9 * 128, 2 * 75_497_472, 75_497_472.0, None):
        ok, out = run(capsys, CV.conv_layer_macs, wrong, **kw)
        assert not ok and "hint:" in out
        assert_no_number(out, 75_497_472)


VGG = [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (3, 1)]


def test_receptive_field_of_chain(capsys):
    assert run(capsys, CV.receptive_field_of_chain, 40, VGG)[0]
    assert run(capsys, CV.receptive_field_of_chain, torch.tensor(40), VGG)[0]
    for wrong in (19, 46, 40.0, "40", None, 25):        # 19: strides ignored; 46: jump after the layer
        ok, out = run(capsys, CV.receptive_field_of_chain, wrong, VGG)
        assert not ok and "hint:" in out
        assert_no_number(out, 40)


def rf_recurrence(layers):
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def rf_closed_form(layers):
    total = 1
    for i, (k, _) in enumerate(layers):
        total += (k - 1) * math.prod(s for _, s in layers[:i])
    return int(total)


def rf_backwards(layers):                  # input size needed for one output unit
    size = 1
    for k, s in reversed(layers):
        size = (size - 1) * s + k
    return size


@pytest.mark.parametrize("fn", [rf_recurrence, rf_closed_form, rf_backwards,
                                lambda layers: vision.receptive_field(layers)])
def test_receptive_field_fn_right(capsys, fn):
    assert run(capsys, CV.receptive_field_fn, fn)[0]


def _jump_after(layers):                   # multiplies the jump before adding
    r, jump = 1, 1
    for k, s in layers:
        jump *= s
        r += (k - 1) * jump
    return r


@pytest.mark.parametrize("fn", [
    lambda layers: 1 + sum(k - 1 for k, _ in layers),                 # ignores strides
    _jump_after,
    lambda layers: float(rf_recurrence(layers)),                      # float
    lambda layers: sum(k for k, _ in layers),                         # adds kernels
    lambda layers: 40,                                                # a constant
    lambda layers: None,
])
def test_receptive_field_fn_wrong(capsys, fn):
    ok, out = run(capsys, CV.receptive_field_fn, fn)
    assert not ok and "hint:" in out


def block_class(skip="before", padding=1, conv_bias=False, order=("conv1", "conv2")):
    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=padding, bias=conv_bias)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=padding, bias=conv_bias)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            c1, c2 = getattr(self, order[0]), getattr(self, order[1])
            inner = self.bn2(c2(torch.relu(self.bn1(c1(x)))))
            if skip == "before":
                return torch.relu(x + inner)
            if skip == "after":
                return x + torch.relu(inner)
            return torch.relu(inner)
    return Block


class SequentialBlock(nn.Module):          # a right answer written with nn.Sequential and F.relu
    def __init__(self, channels):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(channels, channels, 3, padding="same", bias=False),
                               nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                               nn.Conv2d(channels, channels, (3, 3), padding=(1, 1), bias=False),
                               nn.BatchNorm2d(channels))

    def forward(self, x):
        return F.relu(self.f(x) + x)


@pytest.mark.parametrize("cls", [block_class(), block_class(padding="same"),
                                 block_class(conv_bias=True), SequentialBlock])
def test_residual_block_right(capsys, cls):
    ok, out = run(capsys, CV.residual_block, cls)
    assert ok, out


class NoLayers(nn.Module):
    def __init__(self, channels):
        super().__init__()

    def forward(self, x):
        return x


@pytest.mark.parametrize("cls", [block_class(skip="after"), block_class(skip="none"),
                                 block_class(padding=0), NoLayers, None])
def test_residual_block_wrong(capsys, cls):
    ok, out = run(capsys, CV.residual_block, cls)
    assert not ok and "hint:" in out


@pytest.mark.parametrize("fn", [lambda m: m[0], lambda m: m[:-1],
                                lambda m: nn.Sequential(*list(m.children())[:-1]),
                                lambda m: nn.Sequential(m[0], nn.LogSoftmax(dim=1))])
def test_double_softmax_fix_right(capsys, fn):
    assert run(capsys, CV.double_softmax_fix, fn)[0]


@pytest.mark.parametrize("fn", [lambda m: m, lambda m: vision.SmallCNN(),
                                lambda m: nn.Sequential(m, nn.LogSoftmax(dim=1)),
                                lambda m: None, None])
def test_double_softmax_fix_wrong(capsys, fn):
    ok, out = run(capsys, CV.double_softmax_fix, fn)
    assert not ok and "hint:" in out


def test_receptive_field_reference_is_independent_of_the_package_formula():
    import random
    rng = random.Random(0)
    for _ in range(100):
        layers = [(rng.randint(1, 7), rng.randint(1, 3), rng.randint(1, 3))
                  for _ in range(rng.randint(1, 6))]
        assert CV._reference_receptive_field(layers) == vision.receptive_field(layers)

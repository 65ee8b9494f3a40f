"""handson.lora: LoRA from scratch, checked against peft's implementation."""
import copy
import math

import pytest
import torch
from torch import nn

from handson import lora


def tiny_bert(seed=0):
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval()


def randomize_lora(model, seed=1):
    """Non-zero B, so the adapters change the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, lora.LoRALinear):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g))


def test_identity_at_initialisation():
    torch.manual_seed(0)
    base = nn.Linear(7, 5)
    layer = lora.LoRALinear(copy.deepcopy(base), r=3, alpha=6)
    x = torch.randn(4, 2, 7)
    assert torch.equal(layer(x), base(x))
    assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(layer.lora_A) > 0
    assert layer.scaling == 2.0
    assert layer.lora_A.shape == (3, 7) and layer.lora_B.shape == (5, 3)
    bound = 1 / math.sqrt(7)                      # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(in), ..)
    assert layer.lora_A.abs().max() <= bound


def test_forward_formula():
    torch.manual_seed(0)
    layer = lora.LoRALinear(nn.Linear(6, 4), r=2, alpha=5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 6, dtype=torch.float32)
    W, b = layer.base.weight, layer.base.bias
    want = x @ (W + 2.5 * layer.lora_B @ layer.lora_A).T + b
    torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-6)


def test_parameter_count_and_freezing():
    layer = lora.LoRALinear(nn.Linear(384, 1536), r=8, alpha=16)
    assert lora.count_trainable(layer) == 8 * (384 + 1536) == lora.lora_parameter_count(384, 1536, 8)
    assert not layer.base.weight.requires_grad and not layer.base.bias.requires_grad
    model = tiny_bert()
    names = lora.apply_lora(model, ["query", "value"], r=4, alpha=8)
    assert len(names) == 4 and all(n.endswith(("query", "value")) for n in names)
    head = sum(p.numel() for p in model.classifier.parameters())
    assert lora.count_trainable(model) == 4 * lora.lora_parameter_count(16, 16, 4) + head
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("classifier.") for n in trainable)
    loss = model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([1])).loss
    loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    assert model.bert.encoder.layer[0].attention.self.query.lora_B.grad is not None


def test_equal_to_peft():
    peft = pytest.importorskip("peft")
    ours = tiny_bert()
    theirs = peft.get_peft_model(
        tiny_bert(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                     lora_dropout=0.0))
    names = lora.apply_lora(ours, ["query", "value"], r=4, alpha=8)
    randomize_lora(ours)
    inner = theirs.base_model.model
    with torch.no_grad():
        for name in names:
            mine, other = ours.get_submodule(name), inner.get_submodule(name)
            assert other.scaling["default"] == mine.scaling
            other.lora_A["default"].weight.copy_(mine.lora_A)
            other.lora_B["default"].weight.copy_(mine.lora_B)
    ids = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask).logits
        b = theirs(input_ids=ids, attention_mask=mask).logits
        plain = tiny_bert()(input_ids=ids, attention_mask=mask).logits
    assert (a - b).abs().max() < 1e-6
    assert (a - plain).abs().max() > 1e-5          # the adapters really changed the output
    # peft trains the same number of LoRA numbers (its head is frozen without task_type)
    peft_lora = sum(p.numel() for n, p in theirs.named_parameters() if "lora_" in n)
    assert peft_lora == sum(p.numel() for n, p in ours.named_parameters() if "lora_" in n)


def test_merge_equals_unmerged():
    torch.manual_seed(0)
    layer = lora.LoRALinear(nn.Linear(8, 3), r=2, alpha=4)
    with torch.no_grad():
        layer.lora_B.normal_()
    merged = layer.merge()
    assert type(merged) is nn.Linear
    x = torch.randn(5, 8)
    torch.testing.assert_close(merged(x), layer(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged.weight, layer.base.weight + 2 * layer.lora_B @ layer.lora_A)
    model = tiny_bert()
    lora.apply_lora(model, ["query", "value"], r=4, alpha=8)
    randomize_lora(model)
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        lora.merge_lora(model)
        after = model(input_ids=ids).logits
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    assert (before - after).abs().max() < 1e-5
    layer_no_bias = lora.LoRALinear(nn.Linear(4, 4, bias=False), r=1, alpha=1)
    assert layer_no_bias.merge().bias is None


def test_bad_input():
    with pytest.raises(ValueError, match="rank r"):
        lora.LoRALinear(nn.Linear(4, 4), r=0, alpha=1)
    with pytest.raises(ValueError, match="rank r"):
        lora.LoRALinear(nn.Linear(4, 4), r=2.0, alpha=1)
    with pytest.raises(ValueError, match="alpha"):
        lora.LoRALinear(nn.Linear(4, 4), r=2, alpha=0)
    with pytest.raises(TypeError, match="nn.Linear"):
        lora.LoRALinear(nn.Conv1d(4, 4, 1), r=2, alpha=1)
    with pytest.raises(ValueError, match="dropout"):
        lora.LoRALinear(nn.Linear(4, 4), r=2, alpha=1, dropout=1.5)
    model = tiny_bert()
    with pytest.raises(ValueError, match="no nn.Linear layer"):
        lora.apply_lora(model, ["q_proj"], r=2, alpha=4)
    with pytest.raises(ValueError, match="no nn.Linear layer"):
        lora.apply_lora(model, ["attention"], r=2, alpha=4)        # a module, but not a Linear
    with pytest.raises(TypeError, match="list"):
        lora.apply_lora(model, "query", r=2, alpha=4)
    with pytest.raises(ValueError, match="empty"):
        lora.apply_lora(model, [], r=2, alpha=4)
    with pytest.raises(ValueError, match="rank r"):
        lora.apply_lora(model, ["query"], r=-1, alpha=4)
    with pytest.raises(ValueError, match="no LoRALinear"):
        lora.merge_lora(tiny_bert())
    with pytest.raises(ValueError, match="in_features"):
        lora.lora_parameter_count(0, 4, 2)
    # a failed apply_lora leaves the model untouched
    assert all(p.requires_grad for p in model.parameters())

"""handson.compress: export equality, the int8 mapping, pruning, distillation, saving for serving."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handson import compress


def tiny_bert(vocab=120, seed=0):
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(config).eval()


class BertLogits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    model = BertLogits(tiny_bert())
    ids = torch.randint(0, 120, (2, 9))
    mask = torch.ones_like(ids)
    path = compress.export_onnx(model, (ids, mask), folder / "bert.onnx",
                                input_names=["input_ids", "attention_mask"],
                                dynamic={"input_ids": {0: "batch", 1: "sequence"},
                                         "attention_mask": {0: "batch", 1: "sequence"}})
    return model, path


@pytest.mark.parametrize("batch,seq", [(1, 5), (3, 17), (8, 9)])
def test_onnx_export_equals_pytorch_for_other_batch_and_sequence_sizes(exported, batch, seq):
    model, path = exported
    session = compress.onnx_session(path, threads=1)
    ids = torch.randint(0, 120, (batch, seq))
    mask = torch.ones_like(ids)
    mask[0, seq // 2:] = 0  # padding in the first row
    with torch.no_grad():
        want = model(ids, mask).numpy()
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4


def test_dynamic_int8_quantization_is_smaller_and_close(exported, tmp_path):
    model, path = exported
    q_path = compress.quantize_onnx_dynamic(path, tmp_path / "bert-int8.onnx")
    assert compress.folder_size_mb(q_path) < compress.folder_size_mb(path)
    ids = torch.randint(0, 120, (4, 11))
    mask = torch.ones_like(ids)
    fp = compress.onnx_session(path).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    q = compress.onnx_session(q_path).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.max(np.abs(fp - q)) < 0.1


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (-0.3, 2.7), (0.5, 3.0), (-4.0, -1.0)])
def test_int8_affine_mapping_round_trips_within_half_a_step(lo, hi):
    scale, zp = compress.int8_affine_params(lo, hi)
    assert -128 <= zp <= 127 and isinstance(zp, int)
    x = torch.linspace(lo, hi, 1001)
    q = compress.quantize_int8(x, scale, zp)
    assert q.dtype == torch.int8
    err = (compress.dequantize_int8(q, scale, zp) - x).abs().max().item()
    assert err <= scale / 2 + 1e-6
    # zero is exactly representable
    assert compress.dequantize_int8(compress.quantize_int8(torch.zeros(1), scale, zp), scale, zp).item() == 0.0


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_int8_affine_mapping_matches_torch_quantize_per_tensor():
    x = torch.randn(64) * 3
    scale, zp = compress.int8_affine_params(x.min().item(), x.max().item())
    ours = compress.quantize_int8(x, scale, zp)
    theirs = torch.quantize_per_tensor(x, scale, zp, torch.qint8).int_repr()
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("args", [(1.0, -1.0), ("a", 1.0), (float("nan"), 1.0)])
def test_int8_affine_params_rejects_bad_ranges(args):
    with pytest.raises(ValueError):
        compress.int8_affine_params(*args)


def test_magnitude_pruning_reaches_the_asked_sparsity_and_keeps_large_weights():
    model = tiny_bert()
    big_before = max(m.weight.abs().max().item() for m, _ in compress.linear_weights(model))
    compress.magnitude_prune(model, 0.6)
    assert abs(compress.sparsity(model) - 0.6) < 0.01
    big_after = max(m.weight.abs().max().item() for m, _ in compress.linear_weights(model))
    assert big_after == big_before
    assert not any(name.endswith("_orig") for name, _ in model.named_parameters()), "pruning made permanent"
    assert (model.classifier.weight != 0).all(), "the classifier head is skipped"


@pytest.mark.parametrize("amount", [-0.1, 1.5, "half"])
def test_magnitude_prune_rejects_bad_amounts(amount):
    with pytest.raises(ValueError):
        compress.magnitude_prune(tiny_bert(), amount)


def test_magnitude_prune_needs_linear_layers():
    with pytest.raises(ValueError, match="no nn.Linear"):
        compress.magnitude_prune(torch.nn.Sequential(torch.nn.ReLU()), 0.5)


def test_distillation_loss_equals_its_formula():
    torch.manual_seed(0)
    s, t = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    T, alpha = 3.0, 0.7
    p = torch.softmax(t / T, -1)
    kl = (p * (p.log() - torch.log_softmax(s / T, -1))).sum(-1).mean()
    want = alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)
    got = compress.distillation_loss(s, t, y, temperature=T, alpha=alpha)
    assert abs(got.item() - want.item()) < 1e-12
    assert abs(compress.distillation_loss(s, t, temperature=T).item() - T * T * kl.item()) < 1e-12
    assert compress.distillation_loss(t, t, temperature=T).item() == pytest.approx(0.0, abs=1e-12)


def test_distillation_loss_does_not_backpropagate_into_the_teacher():
    s = torch.randn(4, 2, requires_grad=True)
    t = torch.randn(4, 2, requires_grad=True)
    compress.distillation_loss(s, t).backward()
    assert s.grad is not None and t.grad is None


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"alpha": 1.5}, {"temperature": -1.0}])
def test_distillation_loss_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        compress.distillation_loss(torch.randn(2, 3), torch.randn(2, 3), **kwargs)


def test_distillation_loss_rejects_mismatched_logits():
    with pytest.raises(ValueError, match="same shape"):
        compress.distillation_loss(torch.randn(2, 3), torch.randn(2, 4))


def test_save_and_load_for_serving_round_trip(tmp_path):
    from transformers import AutoTokenizer

    from handson import models
    tokenizer = AutoTokenizer.from_pretrained(models.bert_checkpoint())
    model = tiny_bert(vocab=tokenizer.vocab_size)
    folder = compress.save_for_serving(model, tokenizer, tmp_path / "served", labels=["negative", "positive"],
                                       max_len=32)
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    loaded, tok, meta = compress.load_for_serving(folder)
    assert meta["labels"] == ["negative", "positive"] and meta["max_len"] == 32
    enc = tok(["a fine film"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(loaded(**enc).logits, model(**enc).logits, atol=1e-6)
    from handson import serve
    labels, scores = serve.predictor_from_folder(folder)(["a fine film", "awful"])
    assert set(labels) <= {"negative", "positive"} and all(0.5 <= s <= 1 for s in scores)


def test_load_for_serving_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_for_serving"):
        compress.load_for_serving(tmp_path)


def test_latency_and_cost_helpers():
    assert compress.median_latency_ms(lambda: None, repeats=3, warmup=0) >= 0
    assert compress.cost_per_million(100.0, 3.6) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        compress.cost_per_million(0, 1.0)
    with pytest.raises(ValueError):
        compress.median_latency_ms(lambda: None, repeats=0)


def test_onnx_export_of_a_sequential_model_whose_argument_has_another_name(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 5)).eval()
    path = compress.export_onnx(model, (torch.randn(2, 3, 8, 8),), tmp_path / "seq.onnx",
                                input_names=["images"], dynamic={"images": {0: "batch"}})
    x = torch.randn(7, 3, 8, 8)
    got = compress.onnx_session(path).run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        assert np.max(np.abs(got - model(x).numpy())) < 1e-5

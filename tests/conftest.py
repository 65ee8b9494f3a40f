import os
from pathlib import Path

# A plain `pytest` behaves like the README's test command (tools/book.py test): smoke scale,
# offline, one thread, no plot windows. Variables already set by the caller win.
for _name, _value in {"HANDSON_SCALE": "smoke", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                      "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                      "MPLBACKEND": "agg"}.items():
    os.environ.setdefault(_name, _value)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_data_dir(tmp_path, monkeypatch):
    """An empty data folder with a SHA256SUMS file, selected through HANDSON_DATA."""
    (tmp_path / "SHA256SUMS").write_text("")
    monkeypatch.setenv("HANDSON_DATA", str(tmp_path))
    monkeypatch.setenv("HANDSON_OFFLINE", "1")
    return tmp_path


def shared_data_available() -> bool:
    from handson import data
    try:
        return (data.data_dir() / "SHA256SUMS").exists() and (data.data_dir() / "sst2").exists()
    except data.DataNotFoundError:
        return False


needs_data = pytest.mark.skipif(not shared_data_available(), reason="the book's data folder is not present")

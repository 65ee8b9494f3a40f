"""Saving, exporting and shrinking a trained model (chapter 10).

* ``save_for_serving`` / ``load_for_serving``: safetensors weights + config + tokenizer +
  a small ``handson.json`` (labels, max length, versions) -- usable without the notebook.
* ``export_onnx`` and ``onnx_session``: the dynamo ONNX export with dynamic batch (and
  sequence) axes, run by ONNX Runtime.
* ``int8_affine_params`` / ``quantize_int8`` / ``dequantize_int8``: the affine int8 mapping
  by hand; ``quantize_onnx_dynamic``: ONNX Runtime's dynamic int8 quantization of a model.
* ``magnitude_prune`` / ``sparsity``: global L1 pruning of linear layers.
* ``distillation_loss``: Hinton et al.'s temperature-scaled soft-target loss.
* ``median_latency_ms``: wall-clock latency of a call, median of repeats.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from . import validate

METADATA = "handson.json"


# --------------------------------------------------------------------------- saving

def save_for_serving(model, tokenizer, path, *, labels: Sequence[str], max_len: int = 128,
                     extra: dict | None = None) -> Path:
    """Save a Hugging Face classifier so that a service can load it without the notebook.

    Weights go to ``model.safetensors`` (no pickle: loading it cannot run code), with the
    model config, the tokenizer files and ``handson.json`` (labels, max length, versions).
    """
    import transformers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    meta = {"labels": list(labels), "max_len": validate.positive_int(max_len, "max_len", "save_for_serving"),
            "torch": torch.__version__, "transformers": transformers.__version__, **(extra or {})}
    (path / METADATA).write_text(json.dumps(meta, indent=2))
    return path


def load_for_serving(path, device: str = "cpu"):
    """``(model, tokenizer, metadata)`` from a folder written by :func:`save_for_serving`.

    ``device="cpu"`` also loads a checkpoint that was saved on a GPU (safetensors stores
    plain tensors; they are placed where asked).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / METADATA).exists():
        raise FileNotFoundError(f"{path} has no {METADATA}: save the model with "
                                "handson.compress.save_for_serving(model, tokenizer, path, labels=...)")
    meta = json.loads((path / METADATA).read_text())
    model = AutoModelForSequenceClassification.from_pretrained(path, device_map=None).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, meta


def folder_size_mb(path, pattern: str = "*") -> float:
    """Total size in MB (10^6 bytes) of the files matching ``pattern`` under ``path`` (or one file)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob(pattern) if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


# --------------------------------------------------------------------------- ONNX

def export_onnx(model: torch.nn.Module, example_inputs: tuple, path, *, input_names: Sequence[str],
                output_names: Sequence[str] = ("logits",), dynamic: dict | None = None) -> Path:
    """Export ``model`` with ``torch.onnx.export(dynamo=True)``.

    ``dynamic`` maps an input name to ``{axis: name}`` (e.g. ``{"input_ids": {0: "batch",
    1: "sequence"}}``); those axes may change size at inference time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dynamic_shapes = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=1024)
        dims = {}
        for axis_name in {a for axes in dynamic.values() for a in axes.values()}:
            dims[axis_name] = batch if axis_name == "batch" else torch.export.Dim(axis_name, min=2, max=4096)
        # a tuple in the order of the inputs: the forward's own argument names may differ
        # from the names the ONNX graph gives its inputs (nn.Sequential calls it `input`)
        dynamic_shapes = tuple({axis: dims[a] for axis, a in dynamic[name].items()} if name in dynamic else None
                               for name in input_names)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, tuple(example_inputs), dynamo=True, input_names=list(input_names),
                                    output_names=list(output_names), dynamic_shapes=dynamic_shapes,
                                    verbose=False)
    program.save(str(path))
    return path


def onnx_session(path, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path`` (``threads`` intra-op threads, default: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads is not None:
        options.intra_op_num_threads = validate.positive_int(threads, "threads", "onnx_session")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def quantize_onnx_dynamic(src, dst) -> Path:
    """Dynamic int8 quantization of an ONNX model's MatMul/Gemm weights (ONNX Runtime)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    prepared = dst.with_name(dst.stem + "-prep.onnx")
    try:
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        source = prepared
    except Exception:  # pre-processing only helps; quantize the original if it fails
        source = src
    quantize_dynamic(str(source), str(dst), weight_type=QuantType.QInt8)
    if prepared.exists():
        prepared.unlink()
    return dst


# --------------------------------------------------------------------------- int8 by hand

def int8_affine_params(x_min: float, x_max: float, *, qmin: int = -128, qmax: int = 127) -> tuple[float, int]:
    """``(scale, zero_point)`` mapping the real range [x_min, x_max] onto the integers [qmin, qmax].

    The range is widened to include 0 so that 0.0 is exactly representable (padding and
    ReLU zeros stay exact): scale = (max - min) / (qmax - qmin),
    zero_point = round(qmin - min / scale), clamped to [qmin, qmax].
    """
    x_min = validate.number(x_min, "x_min", "int8_affine_params")
    x_max = validate.number(x_max, "x_max", "int8_affine_params")
    if x_max < x_min:
        raise ValueError(f"int8_affine_params: x_max={x_max} is below x_min={x_min}")
    qmin, qmax = validate.integer(qmin, "qmin", "int8_affine_params"), validate.integer(qmax, "qmax", "int8_affine_params")
    if qmax <= qmin:
        raise ValueError(f"int8_affine_params: need qmin < qmax, got {qmin}, {qmax}")
    x_min, x_max = min(x_min, 0.0), max(x_max, 0.0)
    if x_max == x_min:
        return 1.0, 0
    scale = (x_max - x_min) / (qmax - qmin)
    zero_point = int(round(qmin - x_min / scale))
    return scale, max(qmin, min(qmax, zero_point))


def quantize_int8(x: torch.Tensor, scale: float, zero_point: int, *, qmin: int = -128, qmax: int = 127):
    """q = clamp(round(x / scale) + zero_point, qmin, qmax) as int8/int16 integers."""
    x = validate.tensor(x, "x", "quantize_int8")
    scale = validate.positive_number(scale, "scale", "quantize_int8")
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    return q.to(torch.int8 if qmin >= -128 and qmax <= 127 else torch.int16)


def dequantize_int8(q: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """x_hat = scale * (q - zero_point)."""
    q = validate.tensor(q, "q", "dequantize_int8")
    return scale * (q.float() - zero_point)


# --------------------------------------------------------------------------- pruning

def linear_weights(model: torch.nn.Module, skip: Sequence[str] = ("classifier",)) -> list[tuple]:
    """``(module, "weight")`` of every nn.Linear whose name does not contain a ``skip`` part."""
    return [(m, "weight") for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not any(s in name for s in skip)]


def magnitude_prune(model: torch.nn.Module, amount: float, skip: Sequence[str] = ("classifier",)):
    """Zero the ``amount`` fraction of smallest-magnitude linear weights, globally, in place.

    Uses ``torch.nn.utils.prune.global_unstructured`` and then makes the pruning permanent
    (the mask is folded into the weights). Returns the model.
    """
    from torch.nn.utils import prune

    amount = validate.probability(amount, "amount", "magnitude_prune")
    params = linear_weights(model, skip)
    if not params:
        raise ValueError("magnitude_prune: the model has no nn.Linear layers to prune")
    if amount > 0:
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
        for module, name in params:
            prune.remove(module, name)
    return model


def sparsity(model: torch.nn.Module, skip: Sequence[str] = ("classifier",)) -> float:
    """Fraction of exactly-zero weights over the linear layers ``magnitude_prune`` touches."""
    params = linear_weights(model, skip)
    total = sum(m.weight.numel() for m, _ in params)
    if total == 0:
        raise ValueError("sparsity: the model has no nn.Linear layers")
    return sum(int((m.weight == 0).sum()) for m, _ in params) / total


# --------------------------------------------------------------------------- distillation

def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels=None, *,
                      temperature: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    """Hinton et al. (2015): alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(student, labels).

    p_T and q_T are the teacher's and the student's softmax at temperature T; the T^2 keeps
    the soft term's gradients on the scale of the hard term's. With ``labels=None`` only the
    soft term is returned (alpha is then ignored).
    """
    s = validate.tensor(student_logits, "student_logits", "distillation_loss", ndim=2)
    t = validate.tensor(teacher_logits, "teacher_logits", "distillation_loss", ndim=2)
    if s.shape != t.shape:
        raise ValueError(f"distillation_loss: student logits {tuple(s.shape)} and teacher logits "
                         f"{tuple(t.shape)} must have the same shape")
    T = validate.positive_number(temperature, "temperature", "distillation_loss")
    alpha = validate.probability(alpha, "alpha", "distillation_loss")
    soft = F.kl_div(F.log_softmax(s / T, dim=-1), F.log_softmax(t.detach() / T, dim=-1),
                    reduction="batchmean", log_target=True) * T * T
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, labels)


# --------------------------------------------------------------------------- timing

def median_latency_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall-clock time of ``fn()`` in milliseconds (after ``warmup`` untimed calls)."""
    repeats = validate.positive_int(repeats, "repeats", "median_latency_ms")
    warmup = validate.nonnegative_int(warmup, "warmup", "median_latency_ms")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def cost_per_million(requests_per_s: float, dollars_per_hour: float) -> float:
    """Dollars to serve one million requests at a sustained rate on a machine of a given price."""
    rps = validate.positive_number(requests_per_s, "requests_per_s", "cost_per_million")
    price = validate.nonnegative_number(dollars_per_hour, "dollars_per_hour", "cost_per_million")
    return 1e6 / rps / 3600 * price



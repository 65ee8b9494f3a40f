"""The book's one training loop: :func:`fit`, :func:`train_epoch`, :func:`evaluate`, :func:`predict`.

Batches may be

* a tuple/list ``(x1, ..., xk, y)`` -- the model is called as ``model(x1, ..., xk)``;
* a dict with a ``"labels"`` key (Hugging Face style) -- the model is called as
  ``model(**inputs)``; if it returns an object with ``.logits`` those are used,
  and with ``loss_fn=None`` the model's own ``.loss`` is used.

Learning-rate schedulers are stepped **once per batch** (warmup, one-cycle and
cosine-with-warmup schedules are all defined per step).
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Mapping

import torch
from tqdm.auto import tqdm

from . import device as _device
from . import validate as _v

Metric = Callable[[torch.Tensor, torch.Tensor], float]


# --------------------------------------------------------------------------- distributed
# Under torchrun (or ``accelerate launch``), inside an initialised process group of 2+
# processes, :func:`fit` wraps the model in DistributedDataParallel, gives each rank its
# shard of the data (a DistributedSampler), sums the loss and metrics it reports over all
# ranks and shows progress on rank 0 only. Each rank keeps the loader's batch size (global
# batch = world size x batch size), PyTorch's DDP convention. See chapter 9.

def progress_bar(iterable=None, **kwargs):
    """A ``tqdm.auto`` bar that stays readable in JupyterLab, Colab and on the website.

    A notebook bar is three widgets in a row: the label, the bar and the counts with the
    metrics. Left alone, long metrics squeeze the bar to 0 px and are clipped at the
    right; here the bar keeps a minimum width and the counts and metrics move to a second
    line when they do not fit. A finished ``leave=False`` bar collapses instead of leaving
    a blank band.
    """
    bar = tqdm(iterable, **kwargs)
    container = getattr(bar, "container", None)    # only notebook bars are widgets
    if container is not None and len(getattr(container, "children", ())) == 3:
        _label, progress, counts = container.children
        container.layout.width = "100%"
        container.layout.flex_flow = "row wrap"
        progress.layout.flex = "1 1 12em"
        progress.layout.min_width = "12em"
        counts.layout.flex = "0 1 auto"
        if kwargs.get("leave") is False:
            # tqdm hides a finished leave=False bar with visibility: hidden, which keeps
            # its height: a blank band in the notebook and on the website. Remove it.
            close = bar.close

            def close_and_collapse():
                close()
                if progress.bar_style != "danger":     # a failed bar stays visible
                    container.layout.display = "none"

            bar.close = close_and_collapse
    return bar


def _bar_metrics(row: dict) -> dict:
    """The few numbers fit's bar shows after an epoch, under short names so that the line
    fits a narrow notebook column: the training loss and the validation loss and accuracy
    (the training accuracy instead when there is no validation set)."""
    has_val = any(k.startswith("val_") for k in row)
    shown = {}
    for key, value in row.items():
        if not key.endswith(("loss", "accuracy")):
            continue
        if key == "train_loss" or key.startswith("val_") or not has_val:
            short = key.removeprefix("train_").replace("accuracy", "acc")
            shown[short] = f"{value:.3f}"
    return shown


def _is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _rank() -> int:
    return torch.distributed.get_rank() if _is_distributed() else 0


_SYNC = [False]   # True while a distributed fit runs an epoch: tallies sum over the ranks


def _epochs(epochs: int, distributed: bool, loader):
    """Epoch numbers 1..epochs for :func:`fit`; sets the sampler's epoch (a new shuffle)."""
    try:
        for epoch in range(1, epochs + 1):
            if hasattr(getattr(loader, "sampler", None), "set_epoch"):
                loader.sampler.set_epoch(epoch)
            _SYNC[0] = distributed
            yield epoch
    finally:
        _SYNC[0] = False


class _ShardSampler(torch.utils.data.Sampler):
    """Rank r of W gets samples r, r + W, ... exactly once (no padding: for evaluation)."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _shard_loader(loader, *, for_eval: bool):
    """``loader`` rebuilt on this rank's shard of its dataset (a DataLoader with a default
    sampler); any other loader is returned as it is (sharding it is then the caller's job)."""
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler
    if not isinstance(loader, DataLoader) or loader.batch_size is None or \
            type(loader.sampler) not in (RandomSampler, SequentialSampler):
        return loader
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    shuffle = isinstance(loader.sampler, RandomSampler)
    if for_eval:
        sampler = _ShardSampler(len(loader.dataset), rank, world)
    else:
        seed = torch.randint(0, 2**31 - 1, (), dtype=torch.int64) if shuffle else \
            torch.zeros((), dtype=torch.int64)
        if dist.get_backend() == "nccl":
            seed = seed.cuda()
        dist.broadcast(seed, 0)                    # one shuffle order for all ranks
        sampler = DistributedSampler(loader.dataset, num_replicas=world, rank=rank,
                                     shuffle=shuffle, seed=int(seed), drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      persistent_workers=loader.persistent_workers)


def _wrap_ddp(model, device):
    """``model`` in DistributedDataParallel unless it is already wrapped (DDP or FSDP)."""
    from torch.nn.parallel import DistributedDataParallel
    if isinstance(model, DistributedDataParallel) or any(
            type(m).__name__.startswith(("FSDP", "FullyShardedDataParallel"))
            for m in model.modules()):
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


# --------------------------------------------------------------------------- pieces

def _to(obj, device, channels_last=False):
    if isinstance(obj, torch.Tensor):
        if channels_last and obj.ndim == 4 and obj.is_floating_point():
            return obj.to(device, non_blocking=True, memory_format=torch.channels_last)
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device, channels_last) for v in obj)
    return obj


def _forward(model, batch, loss_fn):
    """Return ``(loss, logits, targets)`` for one batch (loss is None without loss_fn/labels)."""
    if isinstance(batch, Mapping):
        inputs = dict(batch)
        if "labels" not in inputs:
            raise ValueError("a dict batch needs a 'labels' key (the Hugging Face convention); "
                             "use a DataCollator that keeps the labels")
        targets = inputs["labels"]
        if loss_fn is not None:
            inputs.pop("labels")
        out = model(**inputs)
    elif isinstance(batch, (list, tuple)) and len(batch) >= 2:
        *xs, targets = batch
        out = model(*xs)
    else:
        raise ValueError("each batch must be a tuple (inputs..., targets) or a dict with 'labels'; "
                         f"got {type(batch).__name__}")
    logits = out.logits if hasattr(out, "logits") else out
    if loss_fn is None:
        loss = getattr(out, "loss", None)
        if loss is None:
            raise ValueError("loss_fn is None but the model returned no .loss; pass a loss_fn "
                             "such as torch.nn.CrossEntropyLoss()")
    else:
        loss = loss_fn(logits, targets)
    return loss, logits, targets


def _autocast(device: torch.device, amp):
    """Mixed precision context. ``amp``: None (auto, :func:`handson.device.mixed_precision`:
    bf16 on GPUs that compute it natively, fp16 with a GradScaler on older CUDA GPUs such
    as a T4, off on the CPU), False, 'bf16' or 'fp16'."""
    if amp is None:
        amp = _device.mixed_precision(device) or False
    if amp in (False, "off", "no"):
        return contextlib.nullcontext(), None
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp must be None, False, 'bf16' or 'fp16', got {amp!r}")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype), amp


def _predictions(logits: torch.Tensor) -> torch.Tensor:
    """Class ids from logits ``(..., num_classes)``; 1-D scores become 0/1 at logit 0."""
    if logits.is_floating_point():
        if logits.ndim >= 2 and logits.shape[-1] > 1:
            return logits.argmax(-1)
        return (logits.reshape(-1) > 0).long()
    return logits


class _Tally:
    """Running sums for one pass over a loader, kept on the device: nothing here waits for
    the accelerator, the host reads them once, in :meth:`result` (and :meth:`check_finite`).

    The loss sum is float64 (float32 on Apple GPUs, which have no float64): on a CPU it is the
    same arithmetic as summing ``float(loss) * n`` in Python, so the numbers do not change.
    """

    def __init__(self, keep: bool):
        self.loss, self.count, self.keep, self.has_loss = 0.0, 0, keep, False
        self.sync = _SYNC[0] and _is_distributed()   # sum over the ranks in result()
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.first_bad = None        # device tensor: index of the first non-finite loss, or -1
        self.steps = 0

    def add(self, loss, logits, targets):
        n = targets.numel() if isinstance(targets, torch.Tensor) else len(targets)
        if loss is not None:
            loss = loss.detach()
            wide = torch.float32 if loss.device.type == "mps" else torch.float64
            term = loss.to(wide) * n
            self.loss = term if not self.has_loss else self.loss + term
            self.has_loss = True
        self.count += n
        if self.keep:
            self.preds.append(_predictions(logits.detach()).reshape(-1))
            self.targets.append(targets.detach().reshape(-1))

    def watch(self, loss) -> None:
        """Remember (on the device) the first step whose loss is not finite."""
        bad = ~torch.isfinite(loss.detach())
        if self.first_bad is None:
            self.first_bad = torch.where(bad, 0, -1)
        else:
            self.first_bad = torch.where(bad & (self.first_bad < 0), self.steps, self.first_bad)
        self.steps += 1

    def check_finite(self, epoch: int | None, first_step: int) -> None:
        """Raise FloatingPointError if a watched loss was nan/inf (one host read per epoch)."""
        if self.first_bad is None:
            return
        bad = int(self.first_bad)
        if bad < 0:
            return
        where = f"epoch {epoch}, " if epoch is not None else ""
        last = first_step + self.steps - 1
        raise FloatingPointError(
            f"the loss became nan or inf in {where}global step {first_step + bad} (of steps "
            f"{first_step}-{last}, checked once per epoch); lower the learning rate or clip "
            f"gradients (grad_clip=1.0)")

    def _host(self) -> None:
        """Bring the device sums to the host (the one read of the epoch)."""
        if isinstance(self.loss, torch.Tensor):
            self.loss = float(self.loss)
        if self.preds and self.preds[0].device.type != "cpu":
            self.preds = [torch.cat(self.preds).cpu()]
            self.targets = [torch.cat(self.targets).cpu()]

    def _all_ranks(self):
        """Sums and predictions of every rank: the metrics of the whole data set."""
        dist = torch.distributed
        sums = torch.tensor([self.loss, float(self.count), float(self.has_loss)],
                            dtype=torch.float64)
        if dist.get_backend() == "nccl":
            sums = sums.cuda()
        dist.all_reduce(sums)
        self.loss, self.count, self.has_loss = float(sums[0]), int(sums[1]), bool(sums[2])
        if self.keep:
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, (self.preds, self.targets))
            self.preds = [p for preds, _ in parts for p in preds]
            self.targets = [t for _, targets in parts for t in targets]
        self.sync = False

    def result(self, metrics: Mapping[str, Metric] | None, prefix: str) -> dict[str, float]:
        self._host()
        if self.sync:
            self._all_ranks()
        out = {f"{prefix}loss": self.loss / max(self.count, 1)} if self.has_loss else {}
        if metrics and self.preds:
            preds, targets = torch.cat(self.preds), torch.cat(self.targets)
            keep = targets != -100  # the ignore_index of CrossEntropyLoss
            for name, fn in metrics.items():
                out[f"{prefix}{name}"] = float(fn(targets[keep], preds[keep]))
        return out


def _check_metrics(metrics, func: str):
    """``metrics`` must be ``None`` or a dict name -> function(y_true, y_pred)."""
    if metrics is None:
        return None
    if not isinstance(metrics, Mapping):
        hint = ""
        if isinstance(metrics, (list, tuple, set)) or callable(metrics):
            fns = metrics if isinstance(metrics, (list, tuple, set)) else [metrics]
            names = ", ".join(f"{getattr(f, '__name__', 'name')!r}: "
                              f"{getattr(f, '__name__', 'fn')}" for f in fns)
            hint = f"give each function a name, e.g. metrics={{{names}}}"
        raise _v.ArgumentTypeError(
            f"{func}(metrics=...): expected a dict name -> function(y_true, y_pred) such as "
            f"{{'accuracy': handson.metrics.accuracy}}, got {_v.describe(metrics)}"
            + (f"; {hint}" if hint else ""))
    for name, fn in metrics.items():
        if not isinstance(name, str) or not callable(fn):
            raise _v.ArgumentTypeError(
                f"{func}(metrics=...): expected a dict name -> function(y_true, y_pred), got the "
                f"entry {name!r}: {_v.describe(fn)}")
    return metrics


def _check_optimizer(model, optimizer, func: str) -> None:
    """The optimizer must update (some of) this model's parameters."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is None or not callable(getattr(optimizer, "step", None)):
        raise _v.ArgumentTypeError(
            f"{func}(optimizer=...): expected a torch.optim.Optimizer built on the model's "
            f"parameters, e.g. torch.optim.SGD(model.parameters(), lr=0.1); got "
            f"{type(optimizer).__name__}")
    own = {id(p) for p in model.parameters()}
    if not own:
        return
    theirs = [p for group in groups for p in group["params"]]
    if not any(id(p) in own for p in theirs):
        raise ValueError(
            f"{func}(optimizer=...): none of the optimizer's {len(theirs)} parameter tensors "
            f"belongs to this model, so training would not change it; build the optimizer on "
            f"this model: torch.optim.AdamW(model.parameters(), ...) (after creating the "
            f"model, and again after replacing it)")


def _check_loader(loader, name: str, func: str) -> None:
    if loader is None:
        raise _v.ArgumentTypeError(f"{func}({name}=None): expected a DataLoader or an iterable "
                                   f"of batches, got None")
    try:
        size = len(loader)
    except TypeError:               # no len(): e.g. a generator or an IterableDataset's loader
        return
    if size == 0:
        raise ValueError(f"{func}({name}=...): the loader is empty (0 batches); check the "
                         f"dataset size, and batch_size with drop_last=True")


def _no_batches(name: str, func: str) -> ValueError:
    return ValueError(f"{func}({name}=...): the loader gave no batches, so there is nothing to "
                      f"{'evaluate' if func == 'evaluate' else 'train on'}; check the dataset "
                      f"size, and batch_size with drop_last=True")


# --------------------------------------------------------------------------- loops

def train_epoch(model, loader: Iterable, loss_fn, optimizer, *, scheduler=None, device=None,
                amp=None, grad_clip: float | None = None, metrics: Mapping[str, Metric] | None = None,
                max_steps: int | None = None, channels_last: bool = False,
                progress: bool = True, desc: str = "train", _bar=None, _epoch=None,
                _steps: list | None = None) -> dict[str, float]:
    """One pass over ``loader`` with gradient updates; returns ``{"train_loss", "train_<metric>", "lr"}``.

    The step never waits for the accelerator: the loss, the predictions and a non-finite
    check are accumulated on the device and read once, at the end of the pass (a nan/inf
    loss raises ``FloatingPointError`` then, naming the step).
    (``_bar`` is :func:`fit`'s single progress bar, advanced once per step instead of a bar per
    epoch; ``_epoch`` and ``_steps``, fit's ``[steps done so far]``, name the epoch and the global
    steps in errors.)
    """
    if _bar is None:                      # fit checks these once for the whole run
        _check_loader(loader, "loader", "train_epoch")
        _check_optimizer(model, optimizer, "train_epoch")
        grad_clip = _v.positive_number(grad_clip, "grad_clip", "train_epoch", allow_none=True)
        max_steps = _v.positive_int(max_steps, "max_steps", "train_epoch", allow_none=True)
        metrics = _check_metrics(metrics, "train_epoch")
    device = _device.resolve(device, "train_epoch")
    model.train()
    context, amp_kind = _autocast(device, amp)
    scaler = torch.amp.GradScaler(device.type) if amp_kind == "fp16" else None
    tally = _Tally(keep=bool(metrics))
    total = len(loader) if hasattr(loader, "__len__") else None
    if max_steps is not None and total is not None:
        total = min(total, max_steps)
    bar = _bar if _bar is not None else progress_bar(total=total, desc=desc, leave=False,
                                                    disable=not progress or _rank() != 0)
    params = [p for p in model.parameters()] if grad_clip is not None else None  # once
    for step, batch in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        batch = _to(batch, device, channels_last)
        with context:
            loss, logits, targets = _forward(model, batch, loss_fn)
        tally.watch(loss)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        tally.add(loss, logits, targets)
        bar.update(1)
    done_before = _steps[0] if _steps is not None else 0
    if _steps is not None:
        _steps[0] += tally.steps
    tally.check_finite(_epoch, done_before + 1)
    out = tally.result(metrics, "train_")   # sums over all ranks first when distributed
    if _bar is None:
        if "train_loss" in out:
            bar.set_postfix(loss=f"{out['train_loss']:.4f}", refresh=False)
        bar.close()
    if _bar is None and tally.count == 0:
        raise _no_batches("loader", "train_epoch")
    out["lr"] = optimizer.param_groups[0]["lr"]
    return out


@torch.no_grad()
def evaluate(model, loader: Iterable, loss_fn=None, *, device=None, amp=None,
             metrics: Mapping[str, Metric] | None = None, max_steps: int | None = None,
             channels_last: bool = False, progress: bool = False) -> dict[str, float]:
    """Average loss (if ``loss_fn`` or the model gives one) and metrics over ``loader`` in eval mode."""
    _check_loader(loader, "loader", "evaluate")
    max_steps = _v.positive_int(max_steps, "max_steps", "evaluate", allow_none=True)
    metrics = _check_metrics(metrics, "evaluate")
    device = _device.resolve(device, "evaluate")
    was_training = model.training
    model.eval()
    context, _ = _autocast(device, amp)
    tally = _Tally(keep=bool(metrics))
    for step, batch in enumerate(progress_bar(loader, desc="eval", leave=False,
                                              disable=not progress)):
        if max_steps is not None and step >= max_steps:
            break
        batch = _to(batch, device, channels_last)
        with context:
            if loss_fn is None and not isinstance(batch, Mapping):
                *xs, targets = batch
                out = model(*xs)
                loss, logits = None, (out.logits if hasattr(out, "logits") else out)
            else:
                loss, logits, targets = _forward(model, batch, loss_fn)
        tally.add(loss, logits, targets)
    model.train(was_training)
    scores = tally.result(metrics, "")      # sums over all ranks first when distributed
    if tally.count == 0:
        raise _no_batches("loader", "evaluate")
    return scores


@torch.no_grad()
def predict(model, loader: Iterable, *, device=None, amp=None, channels_last: bool = False,
            progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets for every batch of ``loader`` (concatenated, on the CPU, float32)."""
    _check_loader(loader, "loader", "predict")
    device = _device.resolve(device, "predict")
    was_training = model.training
    model.eval()
    context, _ = _autocast(device, amp)
    all_logits, all_targets = [], []
    for batch in progress_bar(loader, desc="predict", leave=False, disable=not progress):
        batch = _to(batch, device, channels_last)
        with context:
            if isinstance(batch, Mapping):
                inputs = {k: v for k, v in batch.items() if k != "labels"}
                out, targets = model(**inputs), batch.get("labels")
            else:
                *xs, targets = batch
                out = model(*xs)
        logits = out.logits if hasattr(out, "logits") else out
        all_logits.append(logits.float().cpu())
        if targets is not None:
            all_targets.append(targets.cpu())
    model.train(was_training)
    if not all_logits:
        raise _no_batches("loader", "predict")
    return torch.cat(all_logits), (torch.cat(all_targets) if all_targets else None)


def fit(model, train_loader: Iterable, loss_fn, optimizer, epochs: int, val_loader=None,
        scheduler=None, device=None, amp=None, grad_clip: float | None = None, *,
        metrics: Mapping[str, Metric] | None = None, max_steps_per_epoch: int | None = None,
        channels_last: bool = False, callback: Callable | None = None,
        progress: bool = True, compile: bool = False,
        cudnn_benchmark: bool | None = None) -> dict[str, list]:
    """Train ``model`` for ``epochs`` epochs; return the history as a dict of per-epoch lists.

    History keys: ``epoch``, ``train_loss``, ``train_<metric>``, ``val_loss``,
    ``val_<metric>`` (with ``val_loader``), ``lr`` (at epoch end) and
    ``time_s`` (cumulative wall time).  ``callback(history, model)`` runs after
    each epoch; if it returns True training stops (early stopping).

    Bad arguments fail before any step: an empty loader, ``grad_clip`` that is not a positive
    number, ``metrics`` that is not a dict name -> function, or an optimizer built on another
    model's parameters.

    Speed: no step waits for the accelerator (losses and predictions are summed on the device
    and read once per epoch, when a nan/inf loss also raises); ``compile=True`` trains
    ``torch.compile(model)`` (same parameters; worth it on a GPU for long runs);
    ``cudnn_benchmark`` (default: on for CUDA) lets cuDNN time its convolution algorithms
    once per input shape, for the duration of the call.
    """
    epochs = _v.positive_int(epochs, "epochs", "fit")
    grad_clip = _v.positive_number(grad_clip, "grad_clip", "fit", allow_none=True)
    max_steps_per_epoch = _v.positive_int(max_steps_per_epoch, "max_steps_per_epoch", "fit",
                                          allow_none=True)
    metrics = _check_metrics(metrics, "fit")
    _check_loader(train_loader, "train_loader", "fit")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader", "fit")
    _check_optimizer(model, optimizer, "fit")
    if callback is not None and not callable(callback):
        raise _v.ArgumentTypeError(f"fit(callback=...): expected a function (history, model) -> "
                                   f"bool or None, got {_v.describe(callback)}")
    if not isinstance(compile, bool):
        raise _v.ArgumentTypeError(f"fit(compile=...): expected True or False, got "
                                   f"{_v.describe(compile)}")
    device = _device.resolve(device, "fit")
    if cudnn_benchmark is None:
        cudnn_benchmark = device.type == "cuda"
    benchmark_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
    try:
        return _fit(model, train_loader, loss_fn, optimizer, epochs, val_loader, scheduler,
                    device, amp, grad_clip, metrics, max_steps_per_epoch, channels_last,
                    callback, progress, compile)
    finally:
        torch.backends.cudnn.benchmark = benchmark_before


def _fit(model, train_loader, loss_fn, optimizer, epochs, val_loader, scheduler, device, amp,
         grad_clip, metrics, max_steps_per_epoch, channels_last, callback, progress,
         compile) -> dict[str, list]:
    """:func:`fit` after its argument checks."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    distributed, eval_model = _is_distributed(), model
    if distributed:                 # one DDP replica per process, each on its shard of the data
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        model = _wrap_ddp(model, device)
        eval_model = getattr(model, "module", model)
        train_loader = _shard_loader(train_loader, for_eval=False)
        if val_loader is not None:
            val_loader = _shard_loader(val_loader, for_eval=True)
    run_model = torch.compile(model) if compile else model    # shares model's parameters
    run_eval = run_model if not distributed else (torch.compile(eval_model) if compile
                                                  else eval_model)
    history: dict[str, list] = {"epoch": []}
    steps_done = [0]                # optimizer steps so far (names the steps in a nan/inf error)
    start = time.perf_counter()
    # one bar for the whole run (a bar per epoch would leave dozens of bars in a notebook)
    steps = len(train_loader) if hasattr(train_loader, "__len__") else None
    if steps is not None and max_steps_per_epoch is not None:
        steps = min(steps, max_steps_per_epoch)
    # no step rate in the bar: with the epoch's metrics the line stays short enough to read
    bar = progress_bar(total=epochs * steps if steps is not None else None, desc="train",
                       unit="step", disable=not progress or _rank() != 0,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                  "[{elapsed}<{remaining}{postfix}]")
    for epoch in _epochs(epochs, distributed, train_loader):
        row = {"epoch": epoch}
        row.update(train_epoch(run_model, train_loader, loss_fn, optimizer, scheduler=scheduler,
                               device=device, amp=amp, grad_clip=grad_clip, metrics=metrics,
                               max_steps=max_steps_per_epoch, channels_last=channels_last,
                               progress=progress, _bar=bar, _epoch=epoch,
                               _steps=steps_done))
        if epoch == 1 and "train_loss" not in row:        # a loader without len() gave nothing
            bar.close()
            raise _no_batches("train_loader", "fit")
        if val_loader is not None:
            scores = evaluate(run_eval, val_loader, loss_fn, device=device, amp=amp,
                              metrics=metrics, channels_last=channels_last)
            row.update({f"val_{k}": v for k, v in scores.items()})
        row["time_s"] = time.perf_counter() - start
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        bar.set_postfix({"epoch": f"{epoch}/{epochs}", **_bar_metrics(row)}, refresh=False)
        if callback is not None and callback(history, eval_model):
            break
    if bar.total is not None and bar.n < bar.total:
        bar.total = bar.n          # stopped early on purpose: not a failed bar
    bar.refresh()
    bar.close()
    return history

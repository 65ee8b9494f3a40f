"""Training beyond one device: memory, communication and compute by formula, and launchers.

Memory of training (chapter 9):

* :func:`bytes_per_parameter` -- parameters, gradients and optimizer states per parameter
  for fp32 or mixed-precision training (16 bytes for Adam either way);
* :func:`training_memory_bytes` -- the same for a whole model, plus activations;
* :func:`zero_memory_bytes` -- model states per device under ZeRO stages 0-3
  (Rajbhandari et al. 2020);
* :class:`SavedTensors` -- measures the bytes autograd keeps for the backward pass.

Communication and compute: :func:`ring_allreduce_bytes`, :func:`allreduce_seconds`,
:func:`scaling_efficiency`, :func:`micro_batches`, :func:`mfu`, :func:`training_cost`.

Launching: :func:`free_port` and :func:`launch` run a module of this package (by default
:mod:`handson.scaling_ddp`) under ``torchrun`` on this machine (loopback only, bounded time).
"""
from __future__ import annotations

import json
import numbers
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: bytes of one number in each precision
BYTES_PER_ELEMENT = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}

#: moment buffers each optimizer keeps per parameter
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd_momentum": 1, "sgd": 0}

PRECISIONS = ("fp32", "mixed", "bf16")


# --------------------------------------------------------------------------- validation

def _count(value, name: str, *, minimum: int = 0) -> int:
    """An integer count >= minimum (bools and floats with a fraction are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif float(value).is_integer():
        value = int(value)
    else:
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _positive(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


# --------------------------------------------------------------------------- memory

def bytes_per_parameter(precision: str = "fp32", optimizer: str = "adam") -> dict[str, int]:
    """Bytes per parameter of the model states: ``{"parameters", "gradients", "optimizer", "total"}``.

    ``precision``:

    * ``"fp32"`` -- weights, gradients and optimizer moments in fp32 (Adam: 4 + 4 + 8 = 16);
    * ``"mixed"`` -- fp16/bf16 weights and gradients for the forward and backward pass, plus an
      fp32 master copy of the weights and fp32 moments in the optimizer
      (Micikevicius et al. 2018; Adam: 2 + 2 + (4 + 4 + 4) = 16);
    * ``"bf16"`` -- everything in bf16, no master copy (Adam: 2 + 2 + 4 = 8).

    ``optimizer``: ``"adam"``/``"adamw"`` (two moments), ``"sgd_momentum"`` (one), ``"sgd"`` (none).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZER_STATES)}, got {optimizer!r}")
    states = OPTIMIZER_STATES[optimizer]
    if precision == "fp32":
        weight, grad, opt = 4, 4, 4 * states
    elif precision == "mixed":
        weight, grad, opt = 2, 2, 4 + 4 * states       # fp32 master weights + fp32 moments
    else:
        weight, grad, opt = 2, 2, 2 * states
    return {"parameters": weight, "gradients": grad, "optimizer": opt,
            "total": weight + grad + opt}


def training_memory_bytes(num_params, precision: str = "fp32", optimizer: str = "adam",
                          activation_bytes=0) -> dict[str, int]:
    """Bytes of training memory on one device without sharding.

    Returns ``{"parameters", "gradients", "optimizer", "activations", "total"}``; the first
    three are ``num_params`` times :func:`bytes_per_parameter`, activations are passed in
    (measure them with :class:`SavedTensors`, or use a formula for your model).
    """
    n = _count(num_params, "num_params")
    act = _count(activation_bytes, "activation_bytes")
    per = bytes_per_parameter(precision, optimizer)
    out = {k: n * per[k] for k in ("parameters", "gradients", "optimizer")}
    out["activations"] = act
    out["total"] = sum(out.values())
    return out


def zero_memory_bytes(num_params, num_devices, stage, optimizer_bytes_per_param=12,
                      param_bytes=2, grad_bytes=2) -> float:
    r"""Bytes of model states per device with ZeRO data parallelism (Rajbhandari et al. 2020).

    With :math:`\Psi` parameters, :math:`N_d` devices and :math:`K` optimizer bytes per
    parameter (12 for mixed-precision Adam), fp16 weights and gradients:

    * stage 0 (plain data parallelism): :math:`(2 + 2 + K)\Psi`;
    * stage 1 (optimizer states sharded): :math:`(2 + 2)\Psi + K\Psi/N_d`;
    * stage 2 (+ gradients sharded): :math:`2\Psi + (2 + K)\Psi/N_d`;
    * stage 3 (+ parameters sharded): :math:`(2 + 2 + K)\Psi/N_d`.

    Activations and temporary buffers are not included.
    """
    psi = _count(num_params, "num_params")
    nd = _count(num_devices, "num_devices", minimum=1)
    stage = _count(stage, "stage")
    if stage > 3:
        raise ValueError(f"ZeRO has stages 0, 1, 2 and 3, got {stage}")
    k = _positive(optimizer_bytes_per_param, "optimizer_bytes_per_param", allow_zero=True)
    p = _positive(param_bytes, "param_bytes")
    g = _positive(grad_bytes, "grad_bytes")
    shards = [(p, g, k), (p, g), (p,), ()][stage]          # what every device still holds whole
    whole = sum(shards)
    return whole * psi + (p + g + k - whole) * psi / nd


class SavedTensors:
    """Measure what autograd saves for the backward pass inside a ``with`` block.

    ``with SavedTensors(exclude=model.parameters()) as saved: loss = model(x).sum()``;
    then ``saved.bytes`` is the size of the distinct storages saved (a tensor saved by
    two operations, or two views of one storage, counts once) and ``saved.count`` their
    number. Tensors in ``exclude`` (usually the parameters, which exist anyway) are not
    counted. Uses :func:`torch.autograd.graph.saved_tensors_hooks`.
    """

    def __init__(self, exclude=()):
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._storages: dict[int, int] = {}
        self._hooks = None

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self._exclude:
            self._storages[key] = max(self._storages.get(key, 0), storage.nbytes())
        return tensor

    def __enter__(self) -> "SavedTensors":
        import torch
        self._storages.clear()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self._hooks = None

    @property
    def bytes(self) -> int:
        return int(sum(self._storages.values()))

    @property
    def count(self) -> int:
        return len(self._storages)


# --------------------------------------------------------------------------- communication

def ring_allreduce_bytes(num_bytes, world_size) -> float:
    """Bytes each rank sends (and receives) in a ring all-reduce: ``2 (W - 1) / W`` times the buffer."""
    b = _positive(num_bytes, "num_bytes", allow_zero=True)
    w = _count(world_size, "world_size", minimum=1)
    return 2.0 * (w - 1) / w * b


def allreduce_seconds(num_bytes, world_size, bandwidth_bytes_per_s, latency_s=0.0) -> float:
    """Time of a ring all-reduce: ``2 (W - 1)`` steps of latency plus the bytes over the bandwidth."""
    bw = _positive(bandwidth_bytes_per_s, "bandwidth_bytes_per_s")
    lat = _positive(latency_s, "latency_s", allow_zero=True)
    w = _count(world_size, "world_size", minimum=1)
    return ring_allreduce_bytes(num_bytes, w) / bw + 2 * (w - 1) * lat


def scaling_efficiency(compute_s, comm_s, overlap=0.0) -> float:
    """Fraction of ideal speed-up: ``compute / (compute + (1 - overlap) comm)`` per step.

    ``compute_s`` is one device's compute time per step, ``comm_s`` the all-reduce time,
    ``overlap`` the fraction of it hidden behind the backward pass (DDP overlaps buckets).
    """
    c = _positive(compute_s, "compute_s")
    m = _positive(comm_s, "comm_s", allow_zero=True)
    o = _positive(overlap, "overlap", allow_zero=True)
    if o > 1:
        raise ValueError(f"overlap must be in [0, 1], got {o}")
    return c / (c + (1 - o) * m)


def micro_batches(global_batch, micro_batch, world_size=1) -> int:
    """Gradient-accumulation steps so that ``micro_batch * world_size * steps == global_batch``."""
    gb = _count(global_batch, "global_batch", minimum=1)
    mb = _count(micro_batch, "micro_batch", minimum=1)
    w = _count(world_size, "world_size", minimum=1)
    if gb % (mb * w):
        raise ValueError(f"global batch {gb} is not a multiple of micro_batch x world_size "
                         f"= {mb} x {w} = {mb * w}")
    return gb // (mb * w)


# --------------------------------------------------------------------------- compute and cost

def mfu(num_params, tokens, seconds, peak_flops) -> float:
    """Model FLOPs utilisation: ``6 N D / (time x peak FLOP/s)`` (Chowdhery et al. 2022's definition)."""
    n = _positive(num_params, "num_params", allow_zero=True)
    d = _positive(tokens, "tokens", allow_zero=True)
    t = _positive(seconds, "seconds")
    p = _positive(peak_flops, "peak_flops")
    return 6.0 * n * d / (t * p)


def training_cost(num_params, tokens, *, peak_flops, mfu, num_gpus=1,
                  price_per_gpu_hour=None) -> dict[str, float]:
    """Compute, GPU-hours, wall-clock days and (optionally) cost of training with ``C = 6 N D``.

    ``peak_flops`` is one GPU's peak FLOP/s in the precision used, ``mfu`` the fraction of it
    the run achieves. Returns ``{"flops", "gpu_hours", "days", "cost"}`` (``cost`` only with a price).
    """
    n = _positive(num_params, "num_params")
    d = _positive(tokens, "tokens")
    peak = _positive(peak_flops, "peak_flops")
    u = _positive(mfu, "mfu")
    if u > 1:
        raise ValueError(f"mfu is a fraction of the peak, at most 1, got {u}")
    gpus = _count(num_gpus, "num_gpus", minimum=1)
    flops = 6.0 * n * d
    gpu_hours = flops / (peak * u) / 3600.0
    out = {"flops": flops, "gpu_hours": gpu_hours, "days": gpu_hours / gpus / 24.0}
    if price_per_gpu_hour is not None:
        out["cost"] = gpu_hours * _positive(price_per_gpu_hour, "price_per_gpu_hour",
                                            allow_zero=True)
    return out


# --------------------------------------------------------------------------- launching

def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(nproc: int, port: int, module: str = "handson.scaling_ddp",
                     args=()) -> list[str]:
    """The ``torchrun`` command line (run as ``python -m torch.distributed.run``, the same program)."""
    nproc = _count(nproc, "nproc", minimum=1)
    port = _count(port, "port", minimum=1)
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={port}",
            "-m", module, *map(str, args)]


def accelerate_command(nproc: int, port: int) -> list[str]:
    """``accelerate launch`` for ``nproc`` processes on this machine, ending in ``-m``.

    Accelerate starts several processes only in its ``--multi_gpu`` mode (it then calls
    torchrun); the script picks the CPU and gloo itself when there is no GPU.
    """
    nproc = _count(nproc, "nproc", minimum=1)
    port = _count(port, "port", minimum=1)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            f"--num_processes={nproc}", "--num_machines=1", "--mixed_precision=no",
            "--dynamo_backend=no", "--main_process_ip=127.0.0.1", f"--main_process_port={port}",
            "-m"]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def launch(task, nproc: int = 2, *, args=(), timeout: float = 120.0,
           module: str = "handson.scaling_ddp", launcher: list[str] | None = None,
           threads: int = 1) -> dict:
    """Run ``module --task TASK --out FILE ARGS`` under torchrun with ``nproc`` CPU processes.

    ``task`` is one task name or several (a list, or comma-separated); the script runs them
    in one process group and writes ``{task: result}``.

    Loopback only (``127.0.0.1``, a free port), ``threads`` OpenMP threads per process, at
    most ``timeout`` seconds (then the whole process group is killed and ``TimeoutError``
    raised). Returns the JSON the script's rank 0 wrote, plus ``"wall_s"`` (launch to exit)
    and ``"command"`` (the command line, as ``torchrun ...``). ``launcher`` replaces the
    torchrun part (e.g. an ``accelerate launch`` command ending in ``-m``).
    """
    if not isinstance(task, str):
        task = ",".join(task)
    if not task or any(not t for t in task.split(",")):
        raise ValueError("task must name one or more tasks, e.g. 'check' or 'check,fit'")
    _positive(timeout, "timeout")
    nproc = _count(nproc, "nproc", minimum=1)
    with tempfile.TemporaryDirectory(prefix="handson-ddp-") as tmp:
        out = Path(tmp) / "result.json"
        script_args = ["--task", task, "--out", str(out), *map(str, args)]
        if launcher is None:
            cmd = torchrun_command(nproc, free_port(), module, script_args)
        else:
            cmd = [*launcher, module, *script_args]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   PYTHONUNBUFFERED="1", TORCH_CPP_LOG_LEVEL="ERROR")
        if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            output, _ = proc.communicate()
            raise TimeoutError(f"{task!r} with {nproc} processes did not finish in {timeout:.0f} s; "
                               f"last output:\n{output[-2000:]}") from None
        finally:
            _kill_group(proc)                    # nothing may outlive the launch
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{task!r} with {nproc} processes failed (exit code "
                               f"{proc.returncode}); last output:\n{output[-3000:]}")
        result = json.loads(out.read_text())
    shown = cmd[:]
    if cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]:
        shown = ["torchrun", *cmd[3:]]
    elif cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]:
        shown = ["accelerate", "launch", *cmd[3:]]
    result["command"] = " ".join(a if "handson-ddp-" not in a else "result.json" for a in shown)
    result["wall_s"] = wall
    return result

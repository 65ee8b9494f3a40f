"""Chapter 9's multi-process training script: run it with torchrun (or ``accelerate launch``).

    torchrun --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=29500 \\
        -m handson.scaling_ddp --task check --out result.json

On a laptop the processes are CPU processes talking over loopback with the ``gloo`` backend;
on a multi-GPU node the same command uses one GPU per process and ``nccl``. Rank 0 writes
the results as JSON to ``--out``. Tasks:

* ``check`` -- after DDP's all-reduce every rank's gradient equals the one-process gradient on
  the union of the ranks' batches; DDP training (with a ``DistributedSampler``) equals
  one-process training; ZeRO-1 (``ZeroRedundancyOptimizer``) and FSDP2 (``fully_shard``)
  give the same weights as DDP while each rank holds only part of the states (measured);
* ``fit`` -- :func:`handson.train.fit` under the process group (run it with 1 and 2 processes
  and compare);
* ``timing`` -- time per step, compute alone and one gradient all-reduce;
* ``accelerate`` -- the same training with Hugging Face Accelerate's ``Accelerator`` API.

The data are scikit-learn's handwritten digits (1,797 images of 8 x 8 pixels, 10 classes).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

N_TRAIN = 1280          # a multiple of every global batch we use, so no batch is ragged


# --------------------------------------------------------------------------- setup

def init() -> torch.device:
    """Join the process group torchrun describes in the environment; return this rank's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = use_gpus()
    if cuda:
        torch.cuda.set_device(local_rank)
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=60))
    return torch.device("cuda", local_rank) if cuda else torch.device("cpu")


def use_gpus() -> bool:
    """One GPU per process if there are enough of them (else CPU processes and gloo)."""
    need = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return torch.cuda.is_available() and torch.cuda.device_count() >= need


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def digits(dtype=torch.float64):
    """Digits as ``(x_train, y_train, x_val, y_val)``: a fixed shuffle, first 1,280 for training."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.data, dtype=dtype) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    mean, std = x[:N_TRAIN].mean(0), x[:N_TRAIN].std(0).clamp_min(1e-3)
    x = (x - mean) / std
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def mlp(width: int = 64, depth: int = 2, dtype=torch.float64, seed: int = 0) -> nn.Sequential:
    """64 -> width (-> width)* -> 10 with ReLU, the same weights on every rank (same seed)."""
    torch.manual_seed(seed)
    layers, d_in = [], 64
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    layers.append(nn.Linear(d_in, 10))
    return nn.Sequential(*layers).to(dtype)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).cpu() for t in tensors])


def gather(obj):
    """Every rank's ``obj`` as a list, on every rank."""
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def state_bytes(model: nn.Module, optimizer) -> dict[str, int]:
    """Bytes this rank holds of parameters, gradients and optimizer state (local shards only)."""
    def local(t):
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()
    params = sum(local(p) for p in model.parameters())
    grads = sum(local(p.grad) for p in model.parameters() if p.grad is not None)
    opt = 0
    for state in optimizer.state.values():
        opt += sum(local(v) for v in state.values() if torch.is_tensor(v) and v.numel() > 1)
    return {"parameters": params, "gradients": grads, "optimizer": opt,
            "total": params + grads + opt}


# --------------------------------------------------------------------------- tasks

def task_check(args, device) -> dict:
    """Gradient equality, DDP == one process, ZeRO-1 and FSDP2 == DDP with per-rank memory."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    r, w = rank(), world()
    gb = args.global_batch
    if gb % w:
        raise ValueError(f"--global-batch {gb} must be a multiple of the {w} processes")
    xt, yt, _, _ = digits()
    loss_fn = nn.CrossEntropyLoss()
    ids = lambda m: None if device.type == "cpu" else [device.index]  # noqa: E731
    out: dict = {"world_size": w, "backend": dist.get_backend(), "global_batch": gb}

    # 1. one step: every rank's all-reduced gradient vs one process on the union of batches
    model = mlp(args.width).to(device)
    ddp = DDP(model, device_ids=ids(model))
    local = slice(r * gb // w, (r + 1) * gb // w)                 # rank r's part of batch 0
    loss_fn(ddp(xt[local].to(device)), yt[local].to(device)).backward()
    grads = gather(flat(p.grad for p in model.parameters()).tolist())
    local_grads = flat(p.grad for p in model.parameters())
    ref = mlp(args.width)
    loss_fn(ref(xt[:gb]), yt[:gb]).backward()
    g_ref = flat(p.grad for p in ref.parameters())
    out["grad_max_diff_per_rank"] = [float((torch.tensor(g, dtype=torch.float64) - g_ref).abs().max()) for g in grads]
    out["grad_max_abs"] = float(g_ref.abs().max())
    out["grad_bytes"] = int(local_grads.numel() * model[0].weight.element_size())
    # without the all-reduce each rank's gradient is only its own half's
    solo = mlp(args.width)
    loss_fn(solo(xt[local]), yt[local]).backward()
    out["local_grad_max_diff"] = float((flat(p.grad for p in solo.parameters()) - g_ref).abs().max())

    # 2. DDP training with a DistributedSampler vs one process on the same global batches
    data = TensorDataset(xt, yt)
    sampler = DistributedSampler(data, num_replicas=w, rank=r, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=gb // w, sampler=sampler)
    out["sampler_first_indices"] = gather(list(sampler)[:8])
    model = mlp(args.width).to(device)
    ddp = DDP(model, device_ids=ids(model))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    ref = mlp(args.width)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    steps = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)              # a new shuffle each epoch, the same on every rank
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch))
        for k, (x, y) in enumerate(loader):
            opt.zero_grad()
            loss_fn(ddp(x.to(device)), y.to(device)).backward()
            opt.step()
            batch = order[k * gb:(k + 1) * gb]          # the union of the ranks' batches
            opt_ref.zero_grad()
            loss_fn(ref(xt[batch]), yt[batch]).backward()
            opt_ref.step()
            steps += 1
    w_ddp = flat(model.parameters())
    out["train_steps"] = steps
    out["ddp_vs_single_max_diff"] = float((w_ddp - flat(ref.parameters())).abs().max())
    out["ranks_agree_max_diff"] = max(float((torch.tensor(v, dtype=torch.float64) - w_ddp).abs().max())
                                      for v in gather(w_ddp.tolist()))

    # 3. DDP, ZeRO-1 and FSDP2 (ZeRO-3) with Adam, the same batches: weights and memory
    def run(kind):
        model = mlp(args.width, depth=args.depth).to(device)
        if kind == "fsdp":
            for layer in model:
                if isinstance(layer, nn.Linear):
                    fully_shard(layer)               # each Linear's weights become one shard
            fully_shard(model)
            net = model
        else:
            net = DDP(model, device_ids=ids(model))
        if kind == "zero1":
            opt = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=torch.optim.Adam,
                                          lr=1e-3)
        else:
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for k, (x, y) in enumerate(loader):
            if k == args.shard_steps:
                break
            opt.zero_grad(set_to_none=False)
            loss_fn(net(x.to(device)), y.to(device)).backward()
            opt.step()
        inner = opt.optim if kind == "zero1" else opt
        mem = state_bytes(model, inner)
        weights = flat(p.full_tensor() if hasattr(p, "full_tensor") else p
                       for p in model.parameters())
        return weights, mem

    sampler.set_epoch(0)
    results = {kind: run(kind) for kind in ("ddp", "zero1", "fsdp")}
    out["num_params_sharded_model"] = int(results["ddp"][0].numel())
    out["shard_steps"] = args.shard_steps
    out["zero1_vs_ddp_max_diff"] = float((results["zero1"][0] - results["ddp"][0]).abs().max())
    out["fsdp_vs_ddp_max_diff"] = float((results["fsdp"][0] - results["ddp"][0]).abs().max())
    out["memory_per_rank"] = {kind: gather(mem) for kind, (_, mem) in results.items()}
    return out


def task_fit(args, device) -> dict:
    """:func:`handson.train.fit` on the digits, per-process batch = global batch / processes."""
    from torch.utils.data import DataLoader, TensorDataset

    from handson import metrics, train
    w = world()
    if args.global_batch % w:
        raise ValueError(f"--global-batch {args.global_batch} must be a multiple of {w}")
    xt, yt, xv, yv = digits()
    train_loader = DataLoader(TensorDataset(xt, yt), batch_size=args.global_batch // w)
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=256)
    model = mlp(args.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    start = time.perf_counter()
    history = train.fit(model, train_loader, nn.CrossEntropyLoss(), opt, epochs=args.epochs,
                        val_loader=val_loader, device=device,
                        metrics={"accuracy": metrics.accuracy}, progress=False)
    return {"world_size": w, "history": history, "seconds": time.perf_counter() - start,
            "weights": flat(model.parameters()).tolist(),
            "steps_per_epoch_per_rank": len(train_loader) // w if w > 1 else len(train_loader)}


def task_timing(args, device) -> dict:
    """Median time per DDP step, the same step without communication, and one all-reduce."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    torch.set_num_threads(1)
    r, w = rank(), world()
    gb = args.timing_batch
    if gb % w:
        raise ValueError(f"--timing-batch {gb} must be a multiple of the {w} processes")
    xt, yt, _, _ = digits(torch.float32)
    model = mlp(args.timing_width, depth=2, dtype=torch.float32).to(device)
    ddp = DDP(model, device_ids=None if device.type == "cpu" else [device.index])
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    b = gb // w
    x, y = xt[r * b:(r + 1) * b].to(device), yt[r * b:(r + 1) * b].to(device)

    def step(sync: bool):
        opt.zero_grad()
        if sync:
            loss_fn(ddp(x), y).backward()
        else:
            with ddp.no_sync():                       # skip the gradient all-reduce
                loss_fn(ddp(x), y).backward()
        opt.step()

    def timed(fn):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    n_params = sum(p.numel() for p in model.parameters())
    buf = torch.zeros(n_params, dtype=torch.float32, device=device)
    kinds = {"step_s": lambda: step(True), "compute_s": lambda: step(False),
             "allreduce_s": lambda: dist.all_reduce(buf)}
    times = {k: [] for k in kinds}
    for i in range(args.steps + 2):            # interleaved, so a busy moment hits all three
        for key, fn in kinds.items():
            t = timed(fn)
            if i >= 2:                         # two warm-up rounds
                times[key].append(t)
    out = {"world_size": w, "global_batch": gb, "per_rank_batch": b, "num_params": n_params,
           "grad_bytes": n_params * 4, "steps": args.steps}
    for key, values in times.items():          # median per rank, the slowest rank counts
        out[key] = max(gather(sorted(values)[len(values) // 2]))
    return out


def task_accelerate(args, device) -> dict:
    """The fit recipe written with Accelerate's API: ``prepare`` wraps model, optimizer, loader."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, TensorDataset
    accelerator = Accelerator(cpu=not use_gpus())
    w = accelerator.num_processes
    xt, yt, _, _ = digits()
    loader = DataLoader(TensorDataset(xt, yt), batch_size=args.global_batch // w)
    model = mlp(args.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model, opt, loader = accelerator.prepare(model, opt, loader)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        for x, y in loader:
            opt.zero_grad()
            accelerator.backward(loss_fn(model(x), y))
            opt.step()
    inner = accelerator.unwrap_model(model)
    return {"world_size": w, "distributed_type": str(accelerator.distributed_type).split(".")[-1],
            "backend": dist.get_backend() if dist.is_initialized() else "none",
            "weights": flat(inner.parameters()).tolist(),
            "steps_per_epoch_per_rank": len(loader)}


TASKS = {"check": task_check, "fit": task_fit, "timing": task_timing,
         "accelerate": task_accelerate}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True,
                        help=f"one or more of {', '.join(sorted(TASKS))}, comma-separated")
    parser.add_argument("--out", required=True, help="JSON file rank 0 writes")
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (timing)")
    parser.add_argument("--tag", default="", help="ignored (lets a test find its processes)")
    parser.add_argument("--timing-width", type=int, default=1024)
    parser.add_argument("--timing-batch", type=int, default=512, help="global batch (timing)")
    parser.add_argument("--shard-steps", type=int, default=10, help="Adam steps (check)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tasks = args.task.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    # Accelerate's Accelerator joins the process group itself, so it must come first
    device = None
    try:
        result = {}
        for task in tasks:
            if device is None and task != "accelerate":
                device = init()              # (after Accelerate, this only picks the device)
            result[task] = TASKS[task](args, device)
        if rank() == 0:
            with open(args.out, "w") as f:
                json.dump(result, f)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()

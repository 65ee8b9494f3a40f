#!/usr/bin/env python3
"""Milliseconds per training step of the book's GPT (``handson.lm.fit_lm``), optionally next to
nanoGPT's ``train.py`` on the same machine, at nanoGPT's shakespeare-char CPU configuration:

    4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0.0, AdamW lr 1e-3 (betas 0.9/0.99,
    weight decay 0.1, warmup 100, cosine), gradient clipping 1.0, float32, one thread.

    python3 tools/bench_gpt_step.py                          # the book only
    python3 tools/bench_gpt_step.py --nanogpt ~/nanoGPT      # both, and the ratio

The two take turns (``--rounds``), so that a burst of load on a shared machine slows both alike;
the report is the median over all timed steps of each (a step: from one training forward to
the next, which is what nanoGPT's ``iter ... time`` measures). ``--clock cpu`` (the default)
times steps in CPU seconds of the process (``time.process_time``; nanoGPT's ``time.time`` is
pointed at it for the run), which a loaded machine disturbs far less than wall time; ``--clock
wall`` uses wall time for both. The nanoGPT checkout gets its
``data/shakespeare_char/{train,val}.bin`` and ``meta.pkl`` written from the book's copy of Tiny
Shakespeare when they are missing (the same encoding as its ``prepare.py``).
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CONFIG = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
              lr=1e-3, min_lr=1e-4, warmup=100, decay_steps=2000, weight_decay=0.1,
              betas=(0.9, 0.99), grad_clip=1.0)


def book_step_ms(steps: int, skip: int = 5, clock=time.perf_counter) -> list[float]:
    """Per-step wall times (ms) of ``steps`` optimizer steps of the book's GPT via fit_lm."""
    import torch
    from handson import data, lm
    text = data.load_tiny_shakespeare()
    tok = lm.CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = lm.split_by_position(ids, 0.9)
    torch.manual_seed(0)
    c = CONFIG
    model = lm.GPT(tok.vocab_size, c["block_size"], c["n_layer"], c["n_head"], c["n_embd"],
                   dropout=c["dropout"])
    stamps: list[float] = []

    def stamp(module, args):
        if module.training and torch.is_grad_enabled():
            stamps.append(clock())
    hook = model.register_forward_pre_hook(stamp)
    try:
        lm.fit_lm(model, train_ids, val_ids, block_size=c["block_size"],
                  batch_size=c["batch_size"], max_steps=steps + 1, lr=c["lr"],
                  min_lr=c["min_lr"], warmup_steps=c["warmup"], weight_decay=c["weight_decay"],
                  betas=c["betas"], grad_clip=c["grad_clip"], eval_every=steps + 1,
                  eval_windows=4, device="cpu", amp=False, progress=False)
    finally:
        hook.remove()
    return [1e3 * (b - a) for a, b in zip(stamps, stamps[1:])][skip:]


def prepare_nanogpt_data(checkout: Path) -> None:
    """data/shakespeare_char/{train,val}.bin and meta.pkl as nanoGPT's prepare.py makes them."""
    import numpy as np
    from handson import data
    folder = checkout / "data" / "shakespeare_char"
    if (folder / "train.bin").exists() and (folder / "val.bin").exists():
        return
    text = data.load_tiny_shakespeare()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = len(text)
    train, val = text[:int(n * 0.9)], text[int(n * 0.9):]
    folder.mkdir(parents=True, exist_ok=True)
    np.array([stoi[ch] for ch in train], dtype=np.uint16).tofile(folder / "train.bin")
    np.array([stoi[ch] for ch in val], dtype=np.uint16).tofile(folder / "val.bin")
    with open(folder / "meta.pkl", "wb") as fh:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, fh)


def nanogpt_step_ms(checkout: Path, steps: int, skip: int = 5, cpu_clock: bool = True
                    ) -> list[float]:
    """Per-iteration times (ms) that nanoGPT's train.py prints, at the same configuration."""
    c = CONFIG
    patch = "import time; time.time = time.process_time; " if cpu_clock else ""
    run = (f"import runpy, sys; {patch}sys.argv = sys.argv[1:]; "
           f"runpy.run_path('train.py', run_name='__main__')")
    args = [sys.executable, "-c", run, "train.py", "config/train_shakespeare_char.py",
            "--device=cpu",
            "--compile=False", "--dtype=float32", "--eval_iters=4", "--log_interval=1",
            f"--block_size={c['block_size']}", f"--batch_size={c['batch_size']}",
            f"--n_layer={c['n_layer']}", f"--n_head={c['n_head']}", f"--n_embd={c['n_embd']}",
            f"--dropout={c['dropout']}", f"--max_iters={steps + 1}",
            f"--lr_decay_iters={c['decay_steps']}", "--eval_interval=1000000",
            "--always_save_checkpoint=False", f"--out_dir={checkout / 'out-bench'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=checkout, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"nanoGPT failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    times = [float(t) for it, t in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms",
                                              proc.stdout) if int(it) > 0]
    return times[skip:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanogpt", type=Path, default=None, help="a nanoGPT checkout")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="CPU time of the process (default) or wall time")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    if args.nanogpt is not None:
        prepare_nanogpt_data(args.nanogpt)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    book, nano = [], []
    for r in range(args.rounds):
        book += book_step_ms(args.steps, clock=clock)
        print(f"round {r + 1}: book {statistics.median(book):.1f} ms/step", end="", flush=True)
        if args.nanogpt is not None:
            nano += nanogpt_step_ms(args.nanogpt, args.steps, cpu_clock=args.clock == "cpu")
            print(f" | nanoGPT {statistics.median(nano):.1f} ms/iter", end="", flush=True)
        print(flush=True)
    print(f"clock: {args.clock} time | book (handson.lm.fit_lm): median "
          f"{statistics.median(book):.2f} ms/step over {len(book)} steps")
    if nano:
        ratio = statistics.median(book) / statistics.median(nano)
        print(f"nanoGPT train.py: median {statistics.median(nano):.2f} ms/iter over {len(nano)} "
              f"iterations\nratio book / nanoGPT: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

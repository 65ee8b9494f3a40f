#!/usr/bin/env python3
"""Measure every chapter's ``gpu`` numbers with one command and write them to results/gpu/.

    python3 tools/gpu.py                        # all chapters (4, 5, 6, 7) -> results/gpu/
    python3 tools/gpu.py --chapters 5 --out DIR # one chapter, another folder
    python3 tools/gpu.py --dry-run              # imports and data only, trains nothing
    python3 tools/gpu.py --pack carry           # data + float16 BERT to carry to a GPU machine
    HANDSON_SCALE=smoke python3 tools/gpu.py --out /tmp/x   # the same code, tiny, on a CPU

Each chapter's recipe runs through the same ``handson`` functions its notebook uses, with every
size taken from ``handson.scale.pick``: without ``HANDSON_SCALE`` the scale is ``gpu`` on a machine
with CUDA (``cpu`` otherwise), and ``HANDSON_SCALE=smoke`` runs the whole script in seconds (the
test ``tests/test_gpu_script.py`` does, so the script cannot rot). It needs torch, torchvision and
(chapter 6) transformers; not ``datasets``, ``nbclient`` or ``optuna``.

One JSON file per chapter, ``NN_name.json``: ``schema``, ``chapter``, ``title``, ``scale``,
``device`` (the GPU's name, or ``"cpu"``), ``torch``, ``cuda``, ``date`` (UTC, ISO 8601),
``wall_s`` (the chapter's whole wall time), ``config`` (the recipe used), ``runs`` (one dict per
seed or setting: its numbers and wall time), ``summary`` (means, spreads, targets met) and
``notes``. ``handson.results.gpu_table(chapter)`` turns such a file into the table the chapter
shows. See results/gpu/README.md for running it on a rented GPU.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))          # the checkout's handson, installed or not

SCHEMA = 1
CHAPTERS = {4: "04_attention", 5: "05_cnn_image_classification", 6: "06_bert_fine_tuning",
            7: "07_language_models"}
TITLES = {4: "naive vs fused attention: time and peak memory",
          5: "CIFAR-10: small CNN and fast ResNet",
          6: "all-MiniLM-L6-v2 fully fine-tuned on SST-2",
          7: "character-level GPT vs LSTM on Tiny Shakespeare"}


# --------------------------------------------------------------------------- helpers

def _sync(dev) -> None:
    import torch
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _spread(values: list[float]) -> dict:
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def environment(dev) -> dict:
    """Where and with what the numbers were measured."""
    import torch
    from handson import scale
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return {"scale": scale.current(), "device": name, "torch": torch.__version__,
            "cuda": torch.version.cuda if dev.type == "cuda" else None,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# --------------------------------------------------------------------------- chapter 4

def chapter_04(dev) -> dict:
    """Naive attention (stores n x n) vs PyTorch SDPA vs the flash backend (CUDA only), one
    sequence, 4 heads of 64, the same dtype for all (bfloat16 on a GPU, float32 on a CPU)."""
    import torch
    import torch.nn.functional as F
    from handson import attention, scale

    seq_lens = scale.pick(smoke=[64, 128], cpu=[128, 256, 512, 1024, 2048, 4096],
                          gpu=[1024, 2048, 4096, 8192, 16384])
    num_heads, head_dim, repeats = 4, 64, scale.pick(smoke=2, cpu=3, gpu=5)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32

    def naive(q, k, v):
        return attention.scaled_dot_product_attention(q, k, v)[0]

    methods = {"naive": naive, "sdpa": F.scaled_dot_product_attention}
    if dev.type == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def flash(q, k, v):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v)
        methods["flash"] = flash
    runs = []
    for n in seq_lens:
        row = {"n": n}
        for name, fn in methods.items():
            q, k, v = (torch.randn(1, num_heads, n, head_dim, device=dev, dtype=dtype)
                       for _ in range(3))
            try:
                row[f"{name}_ms"] = 1e3 * attention.time_call(fn, q, k, v, repeats=repeats)
                row[f"{name}_peak_mib"] = attention.peak_memory(fn, q, k, v) / 2 ** 20
            except RuntimeError as exc:              # e.g. out of memory: record, go on
                row[f"{name}_ms"] = row[f"{name}_peak_mib"] = None
                row[f"{name}_error"] = str(exc).splitlines()[0][:200]
            del q, k, v
        runs.append(row)
    last = runs[-1]
    summary = {"max_n": last["n"]}
    if last.get("naive_ms") and last.get("sdpa_ms"):
        summary["sdpa_speedup_at_max_n"] = last["naive_ms"] / last["sdpa_ms"]
        summary["naive_over_sdpa_memory_at_max_n"] = last["naive_peak_mib"] / max(
            last["sdpa_peak_mib"], 1e-9)
    return {"config": {"seq_lens": seq_lens, "num_heads": num_heads, "head_dim": head_dim,
                       "dtype": str(dtype).replace("torch.", ""), "batch": 1,
                       "repeats": repeats, "methods": list(methods)},
            "runs": runs, "summary": summary,
            "notes": "median time of `repeats` calls and peak extra memory of one call "
                     "(handson.attention.time_call / peak_memory)"}


# --------------------------------------------------------------------------- chapter 5

def chapter_05(dev) -> dict:
    """The small CNN (10 epochs at gpu scale) and the fast ResNet (>= 3 seeds) of chapter 5,
    through vision.recipe / train_small_cnn / train_fast_resnet, test accuracy with flip TTA."""
    import torch
    from handson import data, metrics, train, vision

    sizes = vision.recipe("data")
    full = data.load_cifar10("train", limit=sizes["n_train"], seed=0)
    test_set = data.load_cifar10("test", limit=sizes["n_test"], seed=0)
    frac = sizes["n_val"] / len(full)
    train_idx, val_idx = data.split_indices(full.labels.numpy(), (1 - frac, frac), seed=0)
    train_set, val_set = full.subset(train_idx), full.subset(val_idx)
    mean, std = vision.channel_stats(train_set.images)
    amp = "bf16" if dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_bf16_supported()) \
        else ("fp16" if dev.type == "cuda" else False)
    test_loader = vision.ImageLoader(test_set, batch_size=sizes["eval_batch"], mean=mean, std=std,
                                     device=dev, channels_last=True)
    accuracy = {"accuracy": metrics.accuracy}

    def test_accuracy(net, tta):
        model = vision.FlipTTA(net) if tta else net
        return train.evaluate(model, test_loader, device=dev, amp=amp, channels_last=True,
                              metrics=accuracy)["accuracy"]

    runs = []
    small = vision.recipe("small_cnn")
    start = time.perf_counter()
    net, hist = vision.train_small_cnn(train_set, val_set, mean, std, run_seed=0, device=dev,
                                       amp=amp, progress=False)
    _sync(dev)
    runs.append({"model": "small_cnn", "seed": 0, "epochs": small["epochs"],
                 "val_accuracy": hist["val_accuracy"], "train_time_s": hist["time_s"][-1],
                 "test_accuracy": test_accuracy(net, False),
                 "wall_s": time.perf_counter() - start})
    fast = vision.recipe("fast_resnet")
    for s in fast["seeds"]:
        start = time.perf_counter()
        net, hist = vision.train_fast_resnet(train_set, val_set, mean, std, run_seed=s,
                                             device=dev, amp=amp, progress=False)
        _sync(dev)
        runs.append({"model": "fast_resnet", "seed": s, "epochs": fast["epochs"],
                     "val_accuracy": hist["val_accuracy"], "epoch_time_s": hist["time_s"],
                     "train_time_s": hist["time_s"][-1],
                     "test_accuracy": test_accuracy(net, False),
                     "test_accuracy_tta": test_accuracy(net, True),
                     "time_to_94_val_s": vision.time_to_accuracy(hist, 0.94),
                     "wall_s": time.perf_counter() - start})
    fast_runs = [r for r in runs if r["model"] == "fast_resnet"]
    tta = _spread([r["test_accuracy_tta"] for r in fast_runs])
    summary = {"small_cnn_test_accuracy": runs[0]["test_accuracy"],
               "small_cnn_target": 0.70,
               "small_cnn_target_met": runs[0]["test_accuracy"] >= 0.70,
               "fast_test_accuracy_tta": tta,
               "fast_test_accuracy": _spread([r["test_accuracy"] for r in fast_runs]),
               "fast_train_time_s": _spread([r["train_time_s"] for r in fast_runs]),
               "fast_target": 0.94, "fast_target_met": tta["mean"] >= 0.94}
    return {"config": {"data": {**sizes, "n_train_used": len(train_set),
                                "n_val_used": len(val_set), "n_test_used": len(test_set),
                                "source": full.source},
                       "small_cnn": small, "fast_resnet": fast, "amp": str(amp)},
            "runs": runs, "summary": summary,
            "notes": "train_time_s is fit's clock (per-epoch validation and, with compile, the "
                     "first epoch's compilation included); test accuracy with flip TTA"}


# --------------------------------------------------------------------------- chapter 6

def _bert_path(explicit: str | None) -> str:
    from handson import models
    return explicit or os.environ.get("HANDSON_BERT") or models.bert_checkpoint()


def chapter_06(dev, bert: str | None = None) -> dict:
    """all-MiniLM-L6-v2 (or the checkpoint given) fully fine-tuned on SST-2 as in chapter 6:
    AdamW with linear warmup/decay, batch 32, length-grouped batches, 3 epochs at gpu scale,
    max_len 128, dev accuracy."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging
    from handson import data, metrics, scale, seed, text, train

    logging.set_verbosity_error()
    checkpoint = _bert_path(bert)
    sst2_train, sst2_dev = data.load_sst2("train"), data.load_sst2("dev")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    # the chapter's sizes (notebooks/06_bert_fine_tuning.md, section 6.5 and 6.6)
    max_len = scale.pick(smoke=64, cpu=64, gpu=128)
    n_dev = scale.pick(smoke=64, cpu=None, gpu=None)
    batch_size, warmup_ratio, weight_decay, grad_clip = 32, 0.1, 0.01, 1.0
    n_train = scale.pick(smoke=64, cpu=7_168, gpu=None)        # None = all but the held out
    n_holdout = scale.pick(smoke=32, cpu=256, gpu=1_000)
    epochs = scale.pick(smoke=1, cpu=1, gpu=3)
    lr = scale.pick(smoke=2e-4, cpu=2e-4, gpu=2e-5)
    train_perm = np.random.default_rng(0).permutation(len(sst2_train))
    rows = train_perm[:-n_holdout] if n_train is None else train_perm[:n_train]
    train_set = sst2_train.select(rows)
    dev_set = text.sort_by_length(sst2_dev.select(range(n_dev or len(sst2_dev))), tokenizer)
    loaders = text.text_loaders({"train": train_set, "dev": dev_set}, tokenizer,
                                max_len=max_len, batch_size=batch_size, eval_batch_size=128,
                                seed=0, group_by_length=True)
    total_steps, warmup_steps = text.training_steps(len(train_set), batch_size, epochs,
                                                    warmup_ratio)
    seed.set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(   # float32 weights to train,
        checkpoint, num_labels=2, dtype=torch.float32)             # also from a float16 copy
    optimizer, scheduler = text.optimizer_and_scheduler(model, lr, total_steps, warmup_steps,
                                                        weight_decay)
    start = time.perf_counter()
    history = train.fit(model, loaders["train"], None, optimizer, epochs, scheduler=scheduler,
                        device=dev, amp=None, grad_clip=grad_clip,
                        metrics={"accuracy": metrics.accuracy}, progress=False)
    scores = train.evaluate(model, loaders["dev"], None, device=dev,
                            metrics={"accuracy": metrics.accuracy})
    _sync(dev)
    run = {"seed": 0, "epochs": epochs, "train_loss": history["train_loss"],
           "train_time_s": history["time_s"][-1], "dev_loss": scores["loss"],
           "dev_accuracy": scores["accuracy"], "wall_s": time.perf_counter() - start}
    from handson import models
    label = models.CHOSEN[-1] if models.CHOSEN and not bert else Path(checkpoint).name
    return {"config": {"checkpoint": label, "max_len": max_len,
                       "batch_size": batch_size, "epochs": epochs, "lr": lr,
                       "warmup_steps": warmup_steps, "total_steps": total_steps,
                       "weight_decay": weight_decay, "n_train": len(train_set),
                       "n_dev": len(dev_set)},
            "runs": [run],
            "summary": {"dev_accuracy": scores["accuracy"], "expected": 0.88,
                        "expected_met": scores["accuracy"] >= 0.88},
            "notes": "dev = the 872 GLUE SST-2 validation sentences"}


# --------------------------------------------------------------------------- chapter 7

def chapter_07(dev) -> dict:
    """The GPT at nanoGPT's shakespeare-char size (6 layers, 6 heads, 384 wide, block 256,
    dropout 0.2, AdamW lr 1e-3 cosine to 1e-4, beta2 0.99, warmup 100, 5,000 steps of 64 windows)
    and a 2-layer LSTM with the same number of parameters, through lm.fit_lm."""
    import torch
    from handson import data, lm, scale, seed, train

    text = data.load_tiny_shakespeare()
    tok = lm.CharTokenizer(text)
    all_ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = lm.split_by_position(all_ids, 0.9)
    V = tok.vocab_size if hasattr(tok, "vocab_size") else len(tok)
    cfg = dict(block_size=scale.pick(smoke=32, cpu=64, gpu=256),
               batch_size=scale.pick(smoke=8, cpu=12, gpu=64),
               n_layer=scale.pick(smoke=2, cpu=4, gpu=6), n_head=scale.pick(smoke=2, cpu=4, gpu=6),
               n_embd=scale.pick(smoke=32, cpu=128, gpu=384),
               dropout=scale.pick(smoke=0.0, cpu=0.0, gpu=0.2),
               steps=scale.pick(smoke=20, cpu=2000, gpu=5000),
               warmup_steps=scale.pick(smoke=3, cpu=100, gpu=100),
               eval_every=scale.pick(smoke=10, cpu=250, gpu=500),
               eval_windows=scale.pick(smoke=8, cpu=200, gpu=200),
               gpt_lr=1e-3, lstm_lr=scale.pick(smoke=1e-2, cpu=3e-3, gpu=3e-3), lstm_layers=2)
    gpt_params = lm.gpt_num_parameters(V, cfg["block_size"], cfg["n_layer"], cfg["n_embd"])
    cfg["lstm_hidden"] = min(range(8, 4096), key=lambda h: abs(
        lm.lstm_num_parameters(V, cfg["n_embd"], h, cfg["lstm_layers"]) - gpt_params))
    makers = {
        "GPT": lambda: lm.GPT(V, cfg["block_size"], cfg["n_layer"], cfg["n_head"],
                              cfg["n_embd"], dropout=cfg["dropout"]),
        "LSTM": lambda: lm.LSTMLanguageModel(V, cfg["n_embd"], cfg["lstm_hidden"],
                                             cfg["lstm_layers"], dropout=cfg["dropout"]),
    }
    full_val = lm.window_loader(val_ids, cfg["block_size"], 64)     # every val character once
    runs = []
    for name, make in makers.items():
        seed.set_seed(0)
        model = make()
        start = time.perf_counter()
        history = lm.fit_lm(model, train_ids, val_ids, block_size=cfg["block_size"],
                            batch_size=cfg["batch_size"], max_steps=cfg["steps"],
                            lr=cfg["gpt_lr" if name == "GPT" else "lstm_lr"],
                            warmup_steps=cfg["warmup_steps"], eval_every=cfg["eval_every"],
                            eval_windows=cfg["eval_windows"], device=dev, seed=0,
                            progress=False)
        nats = train.evaluate(model, full_val, lm.lm_loss, device=dev)["loss"]
        _sync(dev)
        runs.append({"model": name, "seed": 0, "params": lm.count_parameters(model),
                     "steps": history["step"][-1], "tokens": history["tokens"][-1],
                     "val_curve": history["val_loss"], "val_nats_per_char": nats,
                     "train_time_s": history["time_s"][-1],
                     "ms_per_step": 1e3 * history["time_s"][-1] / history["step"][-1],
                     "wall_s": time.perf_counter() - start})
    gpt = runs[0]["val_nats_per_char"]
    return {"config": {**cfg, "vocab_size": V, "gpt_params": gpt_params},
            "runs": runs,
            "summary": {"gpt_val_nats": gpt, "lstm_val_nats": runs[1]["val_nats_per_char"],
                        "gpt_target": 1.50, "gpt_target_met": gpt <= 1.50,
                        "nanogpt_reference": 1.47},
            "notes": "val = the whole validation split in non-overlapping windows; "
                     "train_time_s includes the periodic evaluations"}


RUNNERS = {4: chapter_04, 5: chapter_05, 6: chapter_06, 7: chapter_07}


# --------------------------------------------------------------------------- dry run

def dry_run(chapters: list[int], dev, bert: str | None) -> list[str]:
    """Check imports and data for ``chapters`` without training; return the problems."""
    import importlib
    from handson import data
    problems = []
    need = {4: ["torch"], 5: ["torch", "torchvision"], 6: ["torch", "transformers", "tokenizers"],
            7: ["torch"]}
    files = {5: ["cifar10/cifar10-jpeg.npz"],
             6: ["sst2/train.tsv", "sst2/dev.tsv"], 7: ["tinyshakespeare/input.txt"]}
    for ch in chapters:
        for mod in need[ch]:
            try:
                importlib.import_module(mod)
            except ImportError as exc:
                problems.append(f"chapter {ch}: cannot import {mod} ({exc})")
        for rel in files.get(ch, []):
            if data.local_file(rel) is None:
                problems.append(f"chapter {ch}: no local {rel} under {data.data_dir()} "
                                f"(set HANDSON_DATA to the book's data folder)")
        if ch == 6:
            try:
                path = _bert_path(bert)
                if not (Path(path) / "config.json").is_file():
                    problems.append(f"chapter 6: {path} has no config.json")
            except Exception as exc:                        # noqa: BLE001 - report, go on
                problems.append(f"chapter 6: no BERT checkpoint ({exc}); pass --bert PATH")
    return problems


# --------------------------------------------------------------------------- pack

PACK_FILES = {4: [], 5: ["cifar10/cifar10-jpeg.npz"], 6: ["sst2/train.tsv", "sst2/dev.tsv"],
              7: ["tinyshakespeare/input.txt"]}


def pack(folder: Path, chapters: list[int], bert: str | None) -> dict[str, int]:
    """Copy what ``chapters`` need into ``folder``: ``data/`` (the files and their SHA256SUMS
    lines; use it as HANDSON_DATA) and, for chapter 6, ``all-MiniLM-L6-v2/`` (the encoder
    saved as float16 safetensors with its tokenizer: half the bytes; chapter 6 loads it as
    float32 and adds a fresh head). The folder's name is what the results call the model.
    Returns the bytes written per part."""
    import shutil
    from handson import data
    source = data.data_dir()
    sums = (source / "SHA256SUMS").read_text().splitlines()
    wanted = [rel for ch in chapters for rel in PACK_FILES[ch]]
    target = folder / "data"
    sizes = {"data": 0}
    for rel in wanted:
        if data.local_file(rel) is None:                 # verifies the checksum
            raise FileNotFoundError(f"no verified local {rel} under {source}")
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)
        sizes["data"] += (target / rel).stat().st_size
    target.mkdir(parents=True, exist_ok=True)
    (target / "SHA256SUMS").write_text("".join(
        line + "\n" for line in sums if line.split()[-1] in wanted))
    if 6 in chapters:
        import torch
        from transformers import AutoModel, AutoTokenizer
        checkpoint = _bert_path(bert)
        out = folder / "all-MiniLM-L6-v2"
        model = AutoModel.from_pretrained(checkpoint)      # the encoder: no head (a fresh one
        model.to(torch.float16).save_pretrained(out, safe_serialization=True)   # per run)
        AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
        sizes["bert"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return sizes


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu"),
                        help="folder for the NN_name.json files (default: results/gpu)")
    parser.add_argument("--chapters", default="4,5,6,7", help="comma-separated, e.g. 5,7")
    parser.add_argument("--dry-run", action="store_true",
                        help="only check imports and data presence")
    parser.add_argument("--pack", default=None, metavar="DIR",
                        help="copy the data (and a float16 BERT) the chapters need into DIR")
    parser.add_argument("--bert", default=None,
                        help="checkpoint folder for chapter 6 (default: HANDSON_BERT or "
                             "handson.models.bert_checkpoint())")
    args = parser.parse_args(argv)
    try:
        chapters = [int(c) for c in args.chapters.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--chapters: expected numbers such as 4,5,6,7, got {args.chapters!r}")
    unknown = [c for c in chapters if c not in CHAPTERS]
    if unknown or not chapters:
        parser.error(f"--chapters: choose from {sorted(CHAPTERS)}, got {args.chapters!r}")

    import torch
    from handson import device, scale
    dev = device.pick()
    env = environment(dev)
    print(f"{scale.describe()} | device {env['device']} | torch {env['torch']}", flush=True)
    if args.pack:
        sizes = pack(Path(args.pack), chapters, args.bert)
        print("packed", ", ".join(f"{k}: {v / 2 ** 20:.1f} MiB" for k, v in sizes.items()),
              "->", args.pack)
        return 0
    if args.dry_run:
        problems = dry_run(chapters, dev, args.bert)
        for p in problems:
            print("PROBLEM:", p)
        print("dry run:", "ok" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    if env["scale"] != "gpu":
        print(f"note: scale {env['scale']}, not gpu: these are not the gpu numbers", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for ch in chapters:
        start = time.perf_counter()
        print(f"chapter {ch}: {TITLES[ch]} ...", flush=True)
        try:
            result = RUNNERS[ch](dev, args.bert) if ch == 6 else RUNNERS[ch](dev)
        except Exception as exc:                            # noqa: BLE001 - next chapter
            import traceback
            traceback.print_exc()
            print(f"chapter {ch} FAILED: {exc}", flush=True)
            failed += 1
            continue
        payload = {"schema": SCHEMA, "chapter": CHAPTERS[ch], "title": TITLES[ch], **env,
                   "wall_s": time.perf_counter() - start, **result}
        path = out / f"{CHAPTERS[ch]}.json"
        path.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")
        print(f"chapter {ch}: {payload['wall_s']:.1f} s -> {path}", flush=True)
        print("  summary:", json.dumps(result["summary"], default=_jsonable), flush=True)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return 1 if failed else 0


def _jsonable(value):
    """numpy / torch scalars and NaN-free floats for json."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())

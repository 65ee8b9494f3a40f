"""tools/gpu.py (every chapter's gpu numbers) end to end at smoke scale on a CPU, its JSON
schema, the reader handson.results, and handson.data.Table (SST-2 without `datasets`)."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, needs_data
from handson import results

SCRIPT = ROOT / "tools" / "gpu.py"
# the device image has no `datasets`: run the script as if it were not installed
NO_DATASETS = ("import runpy, sys; sys.modules['datasets'] = None; "
               f"sys.argv = [{str(SCRIPT)!r}] + sys.argv[1:]; "
               f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")


def _run(*args, timeout=300, env=None):
    env = {**os.environ, "HANDSON_SCALE": "smoke", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", NO_DATASETS, *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


COMMON = {"schema", "chapter", "title", "scale", "device", "torch", "cuda", "date", "wall_s",
          "config", "runs", "summary", "notes"}


@needs_data
def test_gpu_script_runs_every_chapter_at_smoke_and_writes_the_schema(tmp_path):
    start = time.perf_counter()
    proc = _run("--out", str(tmp_path))
    took = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert names == ["04_attention.json", "05_cnn_image_classification.json",
                     "06_bert_fine_tuning.json", "07_language_models.json"]
    runs = {name[:2]: json.loads((tmp_path / name).read_text()) for name in names}
    for key, run in runs.items():
        assert COMMON <= run.keys(), (key, COMMON - run.keys())
        assert run["schema"] == 1 and run["scale"] == "smoke" and run["device"] == "cpu"
        assert run["chapter"].startswith(key) and run["date"].startswith("20")
        assert run["wall_s"] > 0 and run["runs"] and all("n" in r or "wall_s" in r
                                                         for r in run["runs"])
    ch4 = runs["04"]
    assert ch4["config"]["methods"] == ["naive", "sdpa"] and ch4["config"]["dtype"] == "float32"
    assert [r["n"] for r in ch4["runs"]] == ch4["config"]["seq_lens"]
    assert all(r["naive_peak_mib"] > r["sdpa_peak_mib"] > 0 for r in ch4["runs"])
    ch5 = runs["05"]
    models = [r["model"] for r in ch5["runs"]]
    assert models[0] == "small_cnn" and models.count("fast_resnet") == len(
        ch5["config"]["fast_resnet"]["seeds"])
    for r in ch5["runs"]:
        assert 0 <= r["test_accuracy"] <= 1 and r["train_time_s"] > 0
        assert len(r["val_accuracy"]) == r["epochs"]
    s5 = ch5["summary"]
    assert set(s5["fast_test_accuracy_tta"]) == {"mean", "std", "min", "max", "n"}
    assert s5["fast_target"] == 0.94 and s5["small_cnn_target"] == 0.70
    ch6 = runs["06"]
    assert 0 <= ch6["summary"]["dev_accuracy"] <= 1 and ch6["config"]["n_dev"] == 64
    ch7 = runs["07"]
    gpt, lstm = ch7["runs"]
    assert (gpt["model"], lstm["model"]) == ("GPT", "LSTM")
    assert abs(lstm["params"] / gpt["params"] - 1) < 0.02      # equal parameters
    assert gpt["steps"] == ch7["config"]["steps"] and gpt["val_nats_per_char"] > 0
    assert ch7["summary"]["gpt_target"] == 1.50
    # the chapters' reader turns every file into a table
    for key in runs:
        table = results.gpu_table(int(key), folder=tmp_path)
        assert table.startswith("Measured on cpu at the smoke scale") and "\n| " in table
        summary = results.gpu_summary(int(key), folder=tmp_path)
        assert summary.startswith("measured on cpu at the smoke scale") and "\n" not in summary
    assert took < 120, f"the smoke run should take well under a minute, took {took:.0f} s"


@needs_data
def test_gpu_script_dry_run_and_bad_arguments(tmp_path):
    proc = _run("--dry-run", "--chapters", "5,7", "--out", str(tmp_path))
    assert proc.returncode == 0 and "dry run: ok" in proc.stdout, proc.stdout + proc.stderr
    assert not list(tmp_path.iterdir())                        # nothing trained or written
    bad = _run("--chapters", "3")
    assert bad.returncode == 2 and "choose from" in bad.stderr
    bad = _run("--chapters", "five")
    assert bad.returncode == 2 and "expected numbers" in bad.stderr


def test_results_reader_without_a_file(tmp_path):
    assert results.gpu_table(5, folder=tmp_path) == results.NOT_MEASURED
    assert results.gpu_status("05_cnn_image_classification", folder=tmp_path) == \
        results.NOT_MEASURED
    assert results.load_gpu(7, folder=tmp_path) is None
    assert results.gpu_summary(4, folder=tmp_path) == results.NOT_MEASURED
    assert "tools/gpu.py" in results.NOT_MEASURED
    with pytest.raises(TypeError, match="chapter"):
        results.gpu_table(None, folder=tmp_path)


def test_results_reader_marks_a_non_gpu_run(tmp_path):
    run = {"schema": 1, "chapter": "06_bert_fine_tuning", "scale": "cpu", "device": "cpu",
           "torch": "2.x", "date": "2026-12-01T10:00:00+00:00", "wall_s": 3.0,
           "config": {"checkpoint": "m", "max_len": 64, "n_train": 10},
           "runs": [{"epochs": 1, "dev_accuracy": 0.5, "train_time_s": 1.0}], "summary": {}}
    (tmp_path / "06_bert_fine_tuning.json").write_text(json.dumps(run))
    status = results.gpu_status(6, folder=tmp_path)
    assert status.startswith("measured on cpu at the cpu scale (not the gpu recipe)")
    assert "| m | 1 | 64 | 10 | 50.00% | 1.0 |" in results.gpu_table(6, folder=tmp_path)


def test_table_is_the_part_of_a_dataset_the_book_uses():
    from handson import data
    t = data.Table({"sentence": ["a b", "c", "d e f"], "label": [1, 0, 1]})
    assert len(t) == 3 and t.column_names == ["sentence", "label"]
    assert t[1] == {"sentence": "c", "label": 0} and t["label"] == [1, 0, 1]
    picked = t.select([2, 0])
    assert picked["sentence"] == ["d e f", "a b"] and len(t) == 3
    mapped = t.map(lambda b: {"n": [len(s.split()) for s in b["sentence"]]}, batched=True,
                   batch_size=2, remove_columns=["sentence"])
    assert mapped.column_names == ["label", "n"] and mapped["n"] == [2, 1, 3]
    assert mapped.rename_column("label", "labels").column_names == ["labels", "n"]
    with pytest.raises(ValueError, match="same length"):
        data.Table({"a": [1], "b": [1, 2]})
    with pytest.raises(ValueError, match="batched"):
        t.map(lambda row: row)


@needs_data
def test_load_sst2_without_datasets_gives_the_same_rows(monkeypatch):
    from handson import data
    with_lib = data.load_sst2("dev")
    monkeypatch.setitem(sys.modules, "datasets", None)
    table = data.load_sst2("dev")
    assert isinstance(table, data.Table) and len(table) == len(with_lib) == 872
    assert table["sentence"] == list(with_lib["sentence"])
    assert table["label"] == list(with_lib["label"])
    assert table.column_names == with_lib.column_names


@needs_data
def test_bench_gpt_step_times_the_book_and_prepares_nanogpt_data(tmp_path):
    import importlib.util
    import pickle

    import numpy as np
    spec = importlib.util.spec_from_file_location("bench_gpt_step",
                                                  ROOT / "tools" / "bench_gpt_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    times = bench.book_step_ms(8, skip=2, clock=time.process_time)
    assert len(times) == 6 and all(t > 0 for t in times)
    bench.prepare_nanogpt_data(tmp_path)
    folder = tmp_path / "data" / "shakespeare_char"
    meta = pickle.loads((folder / "meta.pkl").read_bytes())
    train = np.fromfile(folder / "train.bin", dtype=np.uint16)
    val = np.fromfile(folder / "val.bin", dtype=np.uint16)
    assert meta["vocab_size"] == 65 and len(train) + len(val) == 1_115_394
    assert "".join(meta["itos"][int(i)] for i in train[:14]) == "First Citizen:"


@needs_data
def test_pack_gives_a_data_folder_and_checkpoint_the_script_runs_on(tmp_path):
    packed = tmp_path / "carry"
    proc = _run("--pack", str(packed), "--chapters", "6,7")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (packed / "data" / "SHA256SUMS").read_text().count("\n") == 3
    weights = packed / "all-MiniLM-L6-v2" / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 50 * 2 ** 20      # float16
    env = {"HANDSON_DATA": str(packed / "data")}
    bert = str(packed / "all-MiniLM-L6-v2")
    dry = _run("--dry-run", "--chapters", "6,7", "--bert", bert, env=env)
    assert dry.returncode == 0 and "dry run: ok" in dry.stdout, dry.stdout + dry.stderr
    out = tmp_path / "out"
    run = _run("--chapters", "6", "--bert", bert, "--out", str(out), env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads((out / "06_bert_fine_tuning.json").read_text())
    assert result["config"]["checkpoint"] == "all-MiniLM-L6-v2"
    assert 0 <= result["summary"]["dev_accuracy"] <= 1

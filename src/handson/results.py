"""Read the measured ``gpu`` numbers that ``tools/gpu.py`` writes to ``results/gpu/``.

A chapter shows them next to its stored ``cpu`` outputs::

    from handson import results
    print(results.gpu_table(5))      # a table, or the one line NOT_MEASURED
    results.gpu_status(5)            # "measured on NVIDIA H200 (torch 2.11.0, 2026-12-01)"
    results.gpu_summary(5)           # that line and the headline numbers, for the prose

Files: ``results/gpu/NN_name.json`` (the schema is in ``tools/gpu.py``). ``folder`` (or the
environment variable ``HANDSON_RESULTS``) points elsewhere, e.g. at a run's ``--out`` folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import validate as _v

#: what a chapter prints while no file exists
NOT_MEASURED = "not measured yet: run python3 tools/gpu.py on a machine with a GPU"

_ROOT = Path(__file__).resolve().parents[2]


def results_dir(folder: str | os.PathLike | None = None) -> Path:
    """The folder of the JSON files: ``folder``, else ``HANDSON_RESULTS``, else results/gpu."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get("HANDSON_RESULTS")
    return Path(env) if env else _ROOT / "results" / "gpu"


def _prefix(chapter) -> str:
    if _v.is_int(chapter) and 0 <= chapter < 100:
        return f"{chapter:02d}_"
    if isinstance(chapter, str) and chapter[:2].isdigit():
        return chapter[:2] + "_"
    raise _v.ArgumentTypeError(f"chapter: expected a chapter number such as 5 or a name such as "
                               f"'05_cnn_image_classification', got {_v.describe(chapter)}")


def gpu_file(chapter, folder=None) -> Path | None:
    """The JSON file of ``chapter`` (a number or ``NN_name``), or None if there is none."""
    found = sorted(results_dir(folder).glob(_prefix(chapter) + "*.json"))
    return found[0] if found else None


def load_gpu(chapter, folder=None) -> dict | None:
    """The parsed JSON of ``chapter``'s measured run, or None if there is none."""
    path = gpu_file(chapter, folder)
    if path is None:
        return None
    return json.loads(path.read_text())


def gpu_status(chapter, folder=None) -> str:
    """One line: where and when the numbers were measured, or :data:`NOT_MEASURED`."""
    run = load_gpu(chapter, folder)
    if run is None:
        return NOT_MEASURED
    where = "measured on " + str(run.get("device", "?"))
    if run.get("scale") != "gpu":
        where += f" at the {run.get('scale')} scale (not the gpu recipe)"
    return f"{where} (torch {run.get('torch', '?')}, {str(run.get('date', '?'))[:10]})"


def _fmt(value, spec: str) -> str:
    if value is None:
        return "n/a"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rows_04(run: dict):
    methods = run["config"]["methods"]
    header = ["n"] + [f"{m} {what}" for m in methods for what in ("ms", "MiB")]
    rows = [[f"{r['n']:,}"] + [_fmt(r.get(f"{m}_{key}"), ".2f") for m in methods
                               for key in ("ms", "peak_mib")] for r in run["runs"]]
    return header, rows


def _rows_05(run: dict):
    header = ["model", "seed", "epochs", "test acc.", "test acc. (flip TTA)", "train time (s)"]
    rows = [[r["model"].replace("_", " "), str(r["seed"]), str(r["epochs"]),
             _fmt(r["test_accuracy"], ".2%"), _fmt(r.get("test_accuracy_tta"), ".2%"),
             _fmt(r["train_time_s"], ".1f")] for r in run["runs"]]
    s = run["summary"]
    tta, t = s["fast_test_accuracy_tta"], s["fast_train_time_s"]
    rows.append(["fast resnet, mean ± std", f"{tta['n']} seeds", "",
                 f"{s['fast_test_accuracy']['mean']:.2%}",
                 f"{tta['mean']:.2%} ± {tta['std']:.2%}", f"{t['mean']:.1f} ± {t['std']:.1f}"])
    return header, rows


def _rows_06(run: dict):
    c = run["config"]
    header = ["checkpoint", "epochs", "max_len", "train sentences", "dev acc.", "train time (s)"]
    rows = [[c["checkpoint"], str(r["epochs"]), str(c["max_len"]), f"{c['n_train']:,}",
             _fmt(r["dev_accuracy"], ".2%"), _fmt(r["train_time_s"], ".1f")]
            for r in run["runs"]]
    return header, rows


def _rows_07(run: dict):
    header = ["model", "parameters", "steps", "val nats/char", "ms/step", "train time (s)"]
    rows = [[r["model"], f"{r['params']:,}", f"{r['steps']:,}",
             _fmt(r["val_nats_per_char"], ".3f"), _fmt(r["ms_per_step"], ".1f"),
             _fmt(r["train_time_s"], ".1f")] for r in run["runs"]]
    return header, rows


_ROWS = {"04": _rows_04, "05": _rows_05, "06": _rows_06, "07": _rows_07}


def _measured(chapter, folder, renderers: dict, what: str):
    """``(run, renderer)`` for a chapter's results file, or ``(None, None)`` without one."""
    run = load_gpu(chapter, folder)
    if run is None:
        return None, None
    key = _prefix(chapter)[:2]
    if key not in renderers:
        raise ValueError(f"no {what} for chapter {key}; chapters with gpu results: "
                         f"{', '.join(sorted(renderers))}")
    return run, renderers[key]


def gpu_table(chapter, folder=None) -> str:
    """``chapter``'s measured numbers as a markdown table under a line saying where and when
    they were measured; :data:`NOT_MEASURED` (one line) while there is no file."""
    run, render = _measured(chapter, folder, _ROWS, "table layout")
    if run is None:
        return NOT_MEASURED
    header, rows = render(run)
    return (f"{gpu_status(chapter, folder)[0].upper()}{gpu_status(chapter, folder)[1:]}, "
            f"{run.get('wall_s', 0):.0f} s in all:\n\n" + _table(header, rows))


def _summary_04(run: dict) -> str:
    last, methods = run["runs"][-1], run["config"]["methods"]
    parts = [f"{m} {_fmt(last.get(f'{m}_ms'), '.2f')} ms and "
             f"{_fmt(last.get(f'{m}_peak_mib'), ',.1f')} MiB" for m in methods]
    return (f"at n = {last['n']:,} in {run['config']['dtype']}: " + ", ".join(parts))


def _summary_05(run: dict) -> str:
    s = run["summary"]
    tta, t = s["fast_test_accuracy_tta"], s["fast_train_time_s"]
    return (f"the fast ResNet reached {tta['mean']:.2%} test accuracy with flip TTA (std "
            f"{tta['std']:.2%} over {tta['n']} seeds) in {t['mean']:.0f} s of training per "
            f"seed, so the 94% target was {'met' if s['fast_target_met'] else 'missed'}; the "
            f"small CNN reached {s['small_cnn_test_accuracy']:.1%} (target 70%)")


def _summary_06(run: dict) -> str:
    r, c = run["runs"][0], run["config"]
    return (f"{c['checkpoint']} fine-tuned for {c['epochs']} epochs (max_len {c['max_len']}) "
            f"reached {r['dev_accuracy']:.2%} dev accuracy in {r['train_time_s']:.0f} s")


def _summary_07(run: dict) -> str:
    gpt, lstm = run["runs"][0], run["runs"][1]
    s = run["summary"]
    return (f"after {gpt['steps']:,} steps the GPT reached {gpt['val_nats_per_char']:.3f} "
            f"nats/char on the validation split (target 1.50: "
            f"{'met' if s['gpt_target_met'] else 'missed'}) and the LSTM with as many "
            f"parameters {lstm['val_nats_per_char']:.3f}")


_SUMMARIES = {"04": _summary_04, "05": _summary_05, "06": _summary_06, "07": _summary_07}


def gpu_summary(chapter, folder=None) -> str:
    """One sentence for the prose: where and when, then the headline numbers; or
    :data:`NOT_MEASURED` while there is no file."""
    run, render = _measured(chapter, folder, _SUMMARIES, "summary")
    if run is None:
        return NOT_MEASURED
    return f"{gpu_status(chapter, folder)}: {render(run)}"

#!/usr/bin/env python3
"""Build, test and re-execute the book.  Standard library only.

    python3 tools/book.py build                    # website -> _build/html
    python3 tools/book.py test                     # every test (what CI runs)
    python3 tools/book.py sync                     # pair notebooks/NN.md <-> NN.ipynb
    python3 tools/book.py execute --scale cpu [notebooks/NN_x.md ...]

A chapter is one hand-edited Jupytext MyST file, ``notebooks/NN_name.md``, paired with
its executed ``notebooks/NN_name.ipynb`` (see jupytext.toml). ``sync`` brings the older
of each pair up to date from the newer one, keeping the stored outputs; ``execute``
syncs, then re-runs a notebook only if its code (or the scale) changed since the run
whose outputs it stores -- an edit to the prose alone keeps the outputs.

Each command first makes sure ``.venv`` holds the package with its book and
test extras (versions pinned by ``constraints.txt``) and that the offline
JavaScript (MathJax, the Jupyter widget manager, RequireJS) is in
``book/_vendor`` -- both are skipped when already up to date.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
VENDOR = ROOT / "book" / "_vendor"
NPM_DIR = ROOT / ".cache" / "npm"
NPM_PACKAGES = ["mathjax@3", "@jupyter-widgets/html-manager@1", "requirejs@2"]
EXTRAS = "book,test,offline,chapters"

WIDGET_FONTS = VENDOR / "@jupyter-widgets" / "html-manager" / "dist"
REQUIREJS_CONFIG = """// Resolve AMD modules (and the widget manager's fonts) from the site's static folder.
require.config({baseUrl: new URL(".", document.currentScript.src).href});
"""

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def say(msg: str) -> None:
    print(f"[book] {msg}", flush=True)


def run(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> None:
    say("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], cwd=cwd, env={**os.environ, **(env or {})}, check=True)


def _stamp() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create .venv and install ``-e .[extras]`` pinned by constraints.txt (once per change)."""
    stamp_file = VENV / ".handson-stamp"
    if stamp_file.exists() and stamp_file.read_text() == _stamp():
        return
    if not PY.exists():
        if sys.version_info[:2] < (3, 11):
            sys.exit("Python >= 3.11 is needed (the book is tested with 3.11).")
        run([sys.executable, "-m", "venv", VENV])
    # PIP_CONSTRAINT replaces any machine-wide constraint file with the book's pins
    env = {"PIP_CONSTRAINT": str(ROOT / "constraints.txt"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.time()
    run([PY, "-m", "pip", "install", "--quiet", "-e", f".[{EXTRAS}]"], env=env)
    stamp_file.write_text(_stamp())
    say(f"environment ready in {time.time() - started:.0f} s")


def ensure_vendor() -> None:
    """Copy MathJax 3, the widget HTML manager and RequireJS into book/_vendor (offline site)."""
    wanted = [VENDOR / "mathjax" / "tex-chtml.js", VENDOR / "mathjax" / "output" / "chtml" / "fonts", VENDOR / "embed-amd.js", VENDOR / "require.min.js",
              VENDOR / "requirejs-config.js", WIDGET_FONTS]
    if all(p.exists() for p in wanted):
        return
    modules = NPM_DIR / "node_modules"
    if not (modules / "mathjax" / "es5" / "tex-chtml.js").exists() or \
            not (modules / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js").exists():
        if shutil.which("npm") is None:
            sys.exit("npm is needed once to fetch MathJax and the widget manager "
                     "(Debian: apt-get install nodejs npm).")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        run(["npm", "install", "--no-audit", "--no-fund", "--prefix", NPM_DIR, *NPM_PACKAGES])
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    VENDOR.mkdir(parents=True)
    # only the MathJax parts the pages use: the tex-chtml bundle, its fonts, the TeX
    # extensions it autoloads and the menu (not the 24 MB of other bundles and speech rules)
    mathjax = modules / "mathjax" / "es5"
    (VENDOR / "mathjax").mkdir()
    shutil.copy(mathjax / "tex-chtml.js", VENDOR / "mathjax")
    for part in ("output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y"):
        shutil.copytree(mathjax / part, VENDOR / "mathjax" / part)
    # embed-amd.js, and the icon fonts it loads relative to RequireJS's baseUrl, which
    # requirejs-config.js points at the static folder (else each page's own folder)
    shutil.copy(modules / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js", VENDOR)
    WIDGET_FONTS.mkdir(parents=True)
    for item in (modules / "@jupyter-widgets" / "html-manager" / "dist").iterdir():
        if item.suffix in (".woff", ".woff2", ".eot", ".svg", ".ttf"):
            shutil.copy(item, WIDGET_FONTS)
    (VENDOR / "requirejs-config.js").write_text(REQUIREJS_CONFIG)
    shutil.copy(modules / "requirejs" / "require.js", VENDOR / "require.min.js")
    say(f"vendored MathJax, html-manager and RequireJS into {VENDOR.relative_to(ROOT)}")


def ensure_chromium() -> None:
    """Debian's chromium for the browser check (installed once if missing)."""
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return
    if shutil.which("apt-get") is None:
        sys.exit("The browser test needs Chromium; install it (Debian: apt-get install chromium).")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run([*sudo, "apt-get", "update", "-qq"], env=env)
    run([*sudo, "apt-get", "install", "-y", "-qq", "chromium"], env=env)


def build(_args) -> None:
    ensure_venv()
    ensure_vendor()
    run([VENV / "bin" / "jupyter-book", "build", ".", "-W", "--keep-going"])
    say(f"website: {ROOT / '_build' / 'html' / 'index.html'}")


def test(args) -> int:
    ensure_venv()
    ensure_vendor()
    ensure_chromium()
    env = {"HANDSON_SCALE": "smoke", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1", **OFFLINE_ENV}
    started = time.time()
    # --nbval-lax --nbval-current-env -p no:cacheprovider come from pyproject.toml (addopts)
    cmd = [PY, "-m", "pytest",
           "--durations=15", *(args.pytest_args or ["tests", "notebooks"])]
    say("$ " + " ".join(map(str, cmd)))
    code = subprocess.run([str(c) for c in cmd], cwd=ROOT, env={**os.environ, **env}).returncode
    say(f"tests finished in {time.time() - started:.0f} s with exit code {code}")
    return code


def _pairs(names) -> list[Path]:
    """The .ipynb of each named chapter (given as .md, .ipynb or stem); default: all."""
    if not names:
        return sorted((ROOT / "notebooks").glob("*.ipynb")) + [
            p.with_suffix(".ipynb") for p in sorted((ROOT / "notebooks").glob("*.md"))
            if not p.with_suffix(".ipynb").exists()]
    paths = []
    for name in names:
        path = (ROOT / name).resolve() if not Path(name).is_absolute() else Path(name)
        paths.append(path.with_suffix(".ipynb"))
    return paths


def sync(args) -> None:
    """Bring each notebook and its text twin into agreement (the newer one wins)."""
    ensure_venv()
    for nb in _pairs(args.notebooks):
        source = nb if nb.exists() else nb.with_suffix(".md")
        run([VENV / "bin" / "jupytext", "--sync", "--quiet", source.relative_to(ROOT)])


def execute(args) -> None:
    """Re-execute notebooks in place at a scale, keeping widget state for the website."""
    ensure_venv()
    sync(args)
    env = {"HANDSON_SCALE": args.scale, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if args.offline:
        env.update(OFFLINE_ENV)
    for nb in _pairs(args.notebooks):
        rel = nb.relative_to(ROOT)
        run([PY, "-c", EXECUTE_SNIPPET, rel, str(args.timeout), args.scale, "1" if args.force else "0"],
            env=env)
        run([VENV / "bin" / "jupytext", "--sync", "--quiet", rel])


EXECUTE_SNIPPET = r"""
import hashlib, json, sys, time, nbformat
from nbclient import NotebookClient
path, timeout, scale, force = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
nb = nbformat.read(path, as_version=4)
code = [(c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells if c.cell_type == "code"]
stamp = {"code_sha256": hashlib.sha256(json.dumps(code).encode()).hexdigest(), "scale": scale}
stored = nb.metadata.get("handson", {}).get("executed", {})
if not force and {k: stored.get(k) for k in stamp} == stamp and         all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
    print(f"[book] {path}: only the prose changed since its {scale} run; outputs kept (--force re-runs)")
    sys.exit(0)
start = time.time()
NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
               resources={"metadata": {"path": "notebooks"}}).execute()
for cell in nb.cells:  # timestamps are noise in diffs
    cell.metadata.pop("execution", None)
nb.metadata["handson"] = {"executed": {**stamp, "wall_time_s": round(time.time() - start)}}
nbformat.write(nb, path)
print(f"[book] executed {path} in {time.time() - start:.0f} s")
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the website into _build/html").set_defaults(func=build)
    p_test = sub.add_parser("test", help="run every test (CI)")
    p_test.add_argument("pytest_args", nargs="*", help="optional pytest targets/flags (default: everything)")
    p_test.set_defaults(func=test)
    p_sync = sub.add_parser("sync", help="pair each notebooks/NN.md with its .ipynb (newer wins)")
    p_sync.add_argument("notebooks", nargs="*")
    p_sync.set_defaults(func=sync)
    p_exec = sub.add_parser("execute", help="re-execute notebooks in place and store their outputs")
    p_exec.add_argument("--scale", choices=["smoke", "cpu", "gpu"], required=True)
    p_exec.add_argument("--offline", action="store_true", help="use only local data and models")
    p_exec.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    p_exec.add_argument("--force", action="store_true", help="re-run even if only the prose changed")
    p_exec.add_argument("notebooks", nargs="*", help="chapters (.md or .ipynb); default: all")
    p_exec.set_defaults(func=execute)
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())

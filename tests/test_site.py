"""Build the website and look at it in headless Chromium, as a reader would (offline)."""
import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.site


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("Chromium is not installed; `python3 tools/book.py test` installs Debian's chromium package")


@pytest.fixture(scope="module")
def site():
    """Build the book once (warnings are errors) and serve it on 127.0.0.1, recording every request."""
    build = subprocess.run([str(BIN / "jupyter-book"), "build", ".", "-W", "--keep-going"],
                           cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, "book build failed (warnings count):\n" + build.stdout[-6000:] + build.stderr[-3000:]
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code) if str(code).isdigit() else code))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def render(url: str, screenshot: Path | None = None) -> str:
    """The page's DOM after scripts ran (virtual time lets MathJax and widgets finish)."""
    with tempfile.TemporaryDirectory() as profile:
        flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--virtual-time-budget=20000", "--window-size=1280,1800"]
        if screenshot is not None:
            subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=180)
        result = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert result.stdout.strip(), f"Chromium rendered nothing for {url}: {result.stderr[-2000:]}"
    return result.stdout


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"<[^>]+>", " ", dom)


def test_first_notebook_page_has_typeset_maths_outputs_and_widgets(site):
    base, _ = site
    dom = render(f"{base}/notebooks/00_using_this_book.html", screenshot=ROOT / "_build" / "screenshot-00.png")
    assert "mjx-container" in dom, "MathJax did not typeset the maths (is book/_vendor/mathjax served?)"
    assert "$$" not in visible_text(dom), "raw $$ maths left on the page"
    assert "cell_output" in dom and "provenance" in dom, "stored outputs are not rendered"
    assert "widget-slider" in dom or "jupyter-widgets" in dom, "the ipywidgets slider did not render"
    assert (ROOT / "_build" / "screenshot-00.png").exists()


def test_colab_launch_link_points_at_the_notebook(site):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    html = (HTML / "notebooks" / "00_using_this_book.html").read_text()
    expected = (f"https://colab.research.google.com/github/{repo}/blob/"
                f"{config['repository']['branch']}/notebooks/00_using_this_book.ipynb")
    assert expected in html, "Colab launch button does not point at this notebook"


def test_pages_load_without_missing_local_assets(site):
    base, requests = site
    for page in ("index.html", "book/intro.html", "book/glossary.html", "book/references.html", "book/setup.html"):
        dom = render(f"{base}/{page}")
        assert "<article" in dom, page
    # /favicon.ico is the browser's own guess, not something a page asks for
    missing = sorted({path for path, code in requests if code == 404 and path != "/favicon.ico"})
    assert not missing, f"local assets answered 404: {missing}"


def test_search_page_finds_a_term(site):
    base, requests = site
    dom = render(f"{base}/search.html?q=checkpoint")
    assert 'id="search-results"' in dom
    assert any(path.startswith("/searchindex.js") and code == 200 for path, code in requests)
    assert "glossary" in dom.lower(), "search for 'checkpoint' should list the glossary page"


def chapter_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("notebooks/")]


@pytest.mark.parametrize("page", chapter_pages())
def test_every_chapter_page_renders_maths_outputs_and_hidden_solutions(site, page):
    base, _ = site
    dom = render(f"{base}/{page}.html")
    assert "<article" in dom and "cell_output" in dom, f"{page}: no stored outputs on the page"
    assert "mjx-container" in dom, f"{page}: MathJax did not typeset the maths"
    text = visible_text(dom)
    assert "$$" not in text and "\\frac" not in text, f"{page}: raw LaTeX left on the page"
    assert "Traceback" not in dom, f"{page}: a stored output holds a Python traceback"
    assert dom.count("exercise admonition") >= 4, f"{page}: fewer than 4 exercises rendered"
    assert dom.count("solution dropdown") >= 4, f"{page}: solutions are not hidden behind a toggle"

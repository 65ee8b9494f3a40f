"""Build the website and look at it in headless Chromium, as a reader would (offline).

Chromium is driven over the DevTools protocol (loopback only) so that the test sees what a
reader's browser sees: console errors, failed requests, the laid-out page at a desktop and a
phone width, and the DOM after MathJax and the widget manager ran.
"""
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.site

DESKTOP, PHONE = (1400, 900), (390, 844)


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


class Page:
    """One browser tab over the DevTools protocol."""

    def __init__(self, ws_url: str):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def pump(self, seconds: float, until: str | None = None) -> None:
        """Collect events for ``seconds`` (or until the event ``until`` arrives)."""
        import websocket
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.time()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            self.events.append(message)
            if until and message.get("method") == until:
                break
        self.ws.settimeout(60)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def size(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        self.pump(1.0)

    def open(self, url: str, settle: float = 4.0) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.pump(60, until="Page.loadEventFired")
        self.pump(settle)  # MathJax typesetting and widget rendering

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"{params['entry']['text']} {params['entry'].get('url', '')}")
        return [e for e in found if "favicon.ico" not in e]

    def close(self):
        self.ws.close()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium listening for DevTools on 127.0.0.1; yields a function opening tabs."""
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                            stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 60
    while port is None and time.time() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if match:
            port = int(match.group(1))
    assert port, "Chromium did not start its DevTools endpoint"

    def new_page() -> Page:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            return Page(json.loads(response.read())["webSocketDebuggerUrl"])

    yield new_page
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
    shutil.rmtree(profile, ignore_errors=True)


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"<[^>]+>", " ", dom)


def chapter_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("notebooks/")]


BOOK_PAGES = ["index", "book/intro", "book/setup", "book/glossary", "book/references"]

# how wide the page is beyond the window, and the rendered outputs' text
LAYOUT_JS = """(() => ({
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  outputs: Array.from(document.querySelectorAll('.cell_output')).map(e => e.innerText).join('\\n'),
  openSolutions: document.querySelectorAll('details[open]').length,
  solutions: Array.from(document.querySelectorAll('details > summary'))
      .filter(s => s.textContent.trim() === 'Solution').length,
  hiddenSolutionText: Array.from(document.querySelectorAll('details'))
      .every(d => Array.from(d.children).filter(c => c.tagName !== 'SUMMARY')
                   .every(c => c.checkVisibility ? !c.checkVisibility() : c.getBoundingClientRect().height === 0)),
  // finished progress bars hidden with visibility: hidden still take their height
  hiddenBands: Array.from(document.querySelectorAll('.cell_output .jupyter-widgets'))
      .filter(e => getComputedStyle(e).visibility === 'hidden' && e.getBoundingClientRect().height > 0
                   && !(e.parentElement && getComputedStyle(e.parentElement).visibility === 'hidden'))
      .length,
  // display equations wider than the column (they scroll, with a shadow as the cue)
  wideEquations: Array.from(document.querySelectorAll('mjx-container[display="true"]'))
      .filter(e => e.scrollWidth > e.clientWidth + 2).map(e => e.textContent.slice(0, 50)),
  // every output image: natural and displayed width, and the caption of its figure
  images: Array.from(document.querySelectorAll('.cell_output img')).map(i => ({
      natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
      widget: !!i.closest('.jupyter-widgets'),
      caption: ((i.closest('figure') || {}).querySelector ?
                (i.closest('figure').querySelector('figcaption') || {}).textContent || '' : '').trim()})),
}))()"""


def test_first_notebook_page_has_typeset_maths_outputs_and_widgets(site, browser):
    base, _ = site
    page = browser()
    page.size(*DESKTOP)
    page.open(f"{base}/notebooks/00_using_this_book.html", settle=6)
    dom = page.js("document.documentElement.outerHTML")
    assert "mjx-container" in dom, "MathJax did not typeset the maths (is book/_vendor/mathjax served?)"
    assert "$$" not in visible_text(dom), "raw $$ maths left on the page"
    assert "cell_output" in dom and "provenance" in dom, "stored outputs are not rendered"
    # a rendered widget view, not just the widget-state script that is there before any JS runs
    assert page.js("document.querySelectorAll('.widget-slider, .jupyter-widgets.widget-inline-hbox').length") > 0, \
        "the ipywidgets slider did not render"
    page.close()


def test_colab_launch_link_points_at_the_notebook(site):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    html = (HTML / "notebooks" / "00_using_this_book.html").read_text()
    expected = (f"https://colab.research.google.com/github/{repo}/blob/"
                f"{config['repository']['branch']}/notebooks/00_using_this_book.ipynb")
    assert expected in html, "Colab launch button does not point at this notebook"


SCREENSHOTS = ROOT / "_build" / "screenshots"


def screenshot(page: Page, page_name: str, view: str) -> None:
    """Keep what the reader sees (``_build/screenshots/<page>-<view>.png``) for a person to look at."""
    import base64
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = page.call("Page.captureScreenshot", format="png")["data"]
    (SCREENSHOTS / f"{page_name.replace('/', '_')}-{view}.png").write_bytes(base64.b64decode(shot))


@pytest.fixture(scope="module")
def rendered(site, browser):
    """Each page loaded once: desktop layout, phone layout, console errors and the final DOM."""
    base, _ = site
    cache = {}

    def load(page_name):
        if page_name not in cache:
            page = browser()
            page.size(*DESKTOP)
            page.open(f"{base}/{page_name}.html")
            result = {"has_article": page.js("!!document.querySelector('article')"),
                      "errors": page.errors(), "desktop": page.js(LAYOUT_JS),
                      "dom": page.js("document.documentElement.outerHTML")}
            screenshot(page, page_name, "desktop")
            if page.js("!!document.querySelector('.cell_output figure')"):
                page.js("document.querySelector('.cell_output figure').scrollIntoView()")
                page.pump(0.5)
                screenshot(page, page_name, "desktop-figure")
                page.js("window.scrollTo(0, 0)")
            page.size(*PHONE)
            result["phone"] = page.js(LAYOUT_JS)
            screenshot(page, page_name, "phone")
            page.close()
            cache[page_name] = result
        return cache[page_name]

    return load


@pytest.mark.parametrize("page_name", BOOK_PAGES + chapter_pages())
def test_every_page_loads_cleanly_at_desktop_and_phone_width(site, rendered, page_name):
    _, requests = site
    page = rendered(page_name)
    assert page["has_article"], f"{page_name}: no article"
    assert not page["errors"], f"{page_name}: console errors or failed loads: {page['errors'][:5]}"
    desktop, phone = page["desktop"], page["phone"]
    assert desktop["overflow"] <= 1, f"{page_name}: the page scrolls sideways by {desktop['overflow']} px at 1400 px"
    assert phone["overflow"] <= 1, f"{page_name}: the page scrolls sideways by {phone['overflow']} px on a phone"
    assert desktop["hiddenBands"] == 0, \
        f"{page_name}: {desktop['hiddenBands']} hidden progress bars leave blank bands in the outputs"
    assert not desktop["wideEquations"], \
        f"{page_name}: display equations wider than the column at 1400 px: {desktop['wideEquations'][:3]}"
    outputs = desktop["outputs"]
    assert "NBVAL" not in outputs, f"{page_name}: nbval markers shown in outputs"
    leaked = re.findall(r"(?:/work/|/root/|/home/\w+/|/tmp/\w+)\S*", outputs)
    assert not leaked, f"{page_name}: build-machine paths in outputs: {leaked[:3]}"
    missing = sorted({path for path, code in requests if code == 404 and path != "/favicon.ico"})
    assert not missing, f"local assets answered 404: {missing}"


@pytest.mark.parametrize("page_name", chapter_pages())
def test_every_chapter_page_renders_maths_outputs_and_collapsed_solutions(rendered, page_name):
    page = rendered(page_name)
    dom, layout = page["dom"], page["desktop"]
    assert "<article" in dom and "cell_output" in dom, f"{page_name}: no stored outputs on the page"
    assert "mjx-container" in dom, f"{page_name}: MathJax did not typeset the maths"
    text = visible_text(dom)
    assert "$$" not in text and "\\frac" not in text, f"{page_name}: raw LaTeX left on the page"
    assert "Traceback" not in dom, f"{page_name}: a stored output holds a Python traceback"
    assert dom.count("exercise admonition") >= 4, f"{page_name}: fewer than 4 exercises rendered"
    assert layout["solutions"] >= 4 and layout["solutions"] == dom.count("exercise admonition"), \
        f"{page_name}: every exercise needs a <details> solution"
    assert layout["openSolutions"] == 0 and layout["hiddenSolutionText"], \
        f"{page_name}: a solution is visible before the reader opens it"
    chapter = int(re.search(r"/(\d+)_", page_name).group(1))
    numbers = re.findall(r'<span class="caption-number">Exercise ([\d.]+)', dom)
    assert numbers and all(n.startswith(f"{chapter}.") for n in numbers), \
        f"{page_name}: exercises must be numbered within the chapter ({chapter}.k), got {sorted(set(numbers))}"


# an image shown at less than 1 / 1.6 of its natural width shrinks 9-pt text below 9 pt
MAX_SHRINK = 1.6


@pytest.mark.parametrize("page_name", chapter_pages())
def test_every_chapter_figure_is_captioned_numbered_and_legible(rendered, page_name):
    page = rendered(page_name)
    chapter = int(re.search(r"/(\d+)_", page_name).group(1))
    images = page["desktop"]["images"]
    assert images, f"{page_name}: no output images"
    unloaded = [i for i in images if not i["natural"]]
    assert not unloaded, f"{page_name}: {len(unloaded)} output images did not load"
    figures = [i for i in images if not i["widget"]]    # a widget's own view is not a figure
    uncaptioned = [i for i in figures if not re.match(rf"Fig\. {chapter}\.\d+ \S", i["caption"])]
    assert not uncaptioned, f"{page_name}: {len(uncaptioned)} figures without a 'Fig. {chapter}.k' caption"
    squeezed = [(i["natural"], round(i["shown"])) for i in images
                if i["shown"] and i["natural"] / i["shown"] > MAX_SHRINK]
    assert not squeezed, (f"{page_name}: images shrunk more than {MAX_SHRINK}x at 1400 px, so their "
                          f"text is below 9 pt (natural, shown px): {squeezed[:5]}")


def test_search_page_finds_a_term(site, browser):
    base, requests = site
    page = browser()
    page.open(f"{base}/search.html?q=checkpoint", settle=4)
    dom = page.js("document.documentElement.outerHTML")
    page.close()
    assert 'id="search-results"' in dom
    assert any(path.startswith("/searchindex.js") and code == 200 for path, code in requests)
    assert "glossary" in dom.lower(), "search for 'checkpoint' should list the glossary page"


def test_references_link_their_arxiv_ids_and_dois():
    text = (ROOT / "book" / "references.md").read_text()
    bare = [m for m in re.findall(r"(?<![\[/])arXiv:\d{4}\.\d{4,5}", text)]
    assert not bare, f"references with an arXiv id that is not a link: {bare[:5]}"
    bare_doi = re.findall(r"(?<![\[/(])\bdoi:\s*10\.\S+", text, flags=re.I)
    assert not bare_doi, f"references with a DOI that is not a link: {bare_doi[:5]}"

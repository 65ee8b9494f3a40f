"""Small Sphinx extension for the book's website (loaded from _config.yml).

* Drops the second copy of inline config scripts that sphinx-thebe and
  sphinx-togglebutton add when their setup runs twice (``const THEBE_JS_URL`` declared
  twice is a SyntaxError in every page's console).
* Adds the book's stylesheet (``assets/handson.css``: no duplicate header, CJK font
  stack for the glossary, scrollable wide equations and outputs).
* Numbers exercises and figures within their chapter ("Exercise 5.4"), from the chapter
  number in the notebook's file name, instead of running on across the book.
* Gives the Jupyter widget manager the MathJax 2 entry point it calls
  (``MathJax.Hub.Queue``), forwarding to MathJax 3's ``typesetPromise``.
"""
import re
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"

MATHJAX2_SHIM = """
(function () {
  // the widget manager was written for MathJax 2 and calls MathJax.Hub.Queue; MathJax 3
  // replaces window.MathJax when it loads, so the entry point is set before and after
  var hub = {
    Queue: function () {
      var mj = window.MathJax;
      if (mj && mj.typesetPromise) { mj.typesetPromise().catch(function () {}); }
    },
    Config: function () {}
  };
  var mj = window.MathJax = window.MathJax || {};
  mj.Hub = hub;
  mj.startup = mj.startup || {};
  var ready = mj.startup.ready;
  mj.startup.ready = function () {
    if (ready) { ready(); } else { window.MathJax.startup.defaultReady(); }
    window.MathJax.Hub = hub;
  };
})();
"""


def _dedupe(files):
    seen, kept = set(), []
    for item in files:
        # an inline script may come back from the pickled environment with filename ''
        # instead of None: compare what the page would contain
        name = getattr(item, "filename", item) or ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in getattr(item, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(item)
    return kept


def _page_context(app, pagename, templatename, context, doctree):
    for name in ("script_files", "css_files"):
        if isinstance(context.get(name), list):
            context[name][:] = _dedupe(context[name])  # in place: later handlers append to it


CHAPTER = re.compile(r"(?:^|/)(\d+)_[^/]*$")


def _chapter_relative_numbers(app, env):
    """Renumber every enumerable (exercise, figure, table, code block) as (chapter, k)."""
    for docname, by_type in getattr(env, "toc_fignumbers", {}).items():
        match = CHAPTER.search(docname)
        if not match:
            continue
        chapter = int(match.group(1))
        for ids in by_type.values():
            for k, (node_id, _) in enumerate(sorted(ids.items(), key=lambda item: item[1]), 1):
                ids[node_id] = (chapter, k)
    return []


def _add_static(app):
    app.config.html_static_path.append(str(ASSETS))


def setup(app):
    app.connect("builder-inited", _add_static)
    # after Sphinx's own TocTreeCollector has assigned the book-wide numbers
    app.connect("env-get-updated", _chapter_relative_numbers, priority=900)
    app.add_css_file("handson.css")
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=999)
    # early: html-page-context stops at the first handler that returns a template name
    app.connect("html-page-context", _page_context, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

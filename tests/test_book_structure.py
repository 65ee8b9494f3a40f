"""The book's shape: toc <-> notebooks, setup and provenance cells, dependency lists agree."""
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def toc_files():
    files = [TOC["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in TOC.get("parts", []):
        walk(part["chapters"])
    walk(TOC.get("chapters", []))
    return files


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_notebook_is_in_the_toc_and_back():
    listed = {f for f in toc_files() if f.startswith("notebooks/")}
    present = {f"notebooks/{p.stem}" for p in NOTEBOOKS}
    assert present - listed == set(), f"notebooks missing from _toc.yml: {present - listed}"
    assert listed - present == set(), f"_toc.yml lists missing notebooks: {listed - present}"
    for f in toc_files():
        assert (ROOT / f"{f}.md").exists() or (ROOT / f"{f}.ipynb").exists(), f


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_uses_the_configured_repository(path):
    nb = nbformat.read(path, as_version=4)
    first = code_cells(nb)[0].source
    url = CONFIG["repository"]["url"]
    assert f'REPO = "{url}"' in first, (
        f"{path.name}: the first code cell must set REPO = \"{url}\" (the URL in _config.yml)")
    assert "google.colab" in first and "import handson" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_last_cell_is_provenance_with_stored_output(path):
    nb = nbformat.read(path, as_version=4)
    last = code_cells(nb)[-1]
    assert "handson.provenance.report(" in last.source, f"{path.name}: last code cell must call provenance.report"
    text = "".join(o.get("text", "") for o in last.get("outputs", []) if o.output_type == "stream")
    assert text.startswith("provenance"), f"{path.name}: commit the notebook with the outputs of a real run"
    from handson import provenance
    info = provenance.parse(text)
    assert info["scale"] in {"cpu", "gpu"}, f"{path.name}: committed outputs must come from the cpu or gpu scale"
    for key in ("device", "torch", "wall_time_s", "data"):
        assert key in info


SOLUTION_OPEN = "<details>\n<summary>Solution</summary>"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opening_and_exercises(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    markdown_cells = [c.source for c in nb.cells if c.cell_type == "markdown"]
    markdown = "\n".join(markdown_cells)
    exercises = len(re.findall(r":::\{exercise\}", markdown))
    assert exercises >= 4, f"{path.name}: needs 4+ exercises"
    # Solutions collapse on the site, in JupyterLab and in Colab: an HTML <details> block,
    # never a MyST directive (Lab and Colab would show it in plain sight).
    assert ":::{solution}" not in markdown and "```{solution}" not in markdown, \
        f"{path.name}: use a <details> block for solutions, not the solution directive"
    solutions = [c for c in markdown_cells if c.lstrip().startswith(SOLUTION_OPEN)]
    assert len(solutions) == exercises, f"{path.name}: each exercise needs one <details> solution cell"
    for cell in solutions:
        assert ":::{exercise}" not in cell, f"{path.name}: keep each solution in its own cell"
        assert cell.rstrip().endswith("</details>"), f"{path.name}: a solution cell must end with </details>"
    # each exercise is followed by its own checker cell, before the next exercise starts
    in_exercise, calls = False, 0
    for cell in nb.cells:
        if cell.cell_type == "markdown" and ":::{exercise}" in cell.source:
            assert not in_exercise or calls >= 1, f"{path.name}: an exercise has no handson.check call"
            in_exercise, calls = True, 0
        elif cell.cell_type == "code" and re.search(r"check\.\w+\.\w+\(", cell.source):
            calls += 1
    assert calls >= 1, f"{path.name}: the last exercise has no handson.check call"
    assert all(c.get("execution_count") is not None for c in code_cells(nb)), f"{path.name}: not fully executed"


# ---- one source per chapter: the Jupytext MyST twin, glued numbers, no placeholders ----

def _text_twin(path):
    return path.with_suffix(".md")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_and_its_text_twin_agree(path):
    import jupytext
    twin = _text_twin(path)
    assert twin.exists(), f"{path.name} has no text twin {twin.name}: run `python3 tools/book.py sync`"
    text_nb = jupytext.read(twin)
    nb = nbformat.read(path, as_version=4)
    got = [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in text_nb.cells]
    want = [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]
    assert len(got) == len(want), f"{twin.name} has {len(got)} cells, {path.name} {len(want)}: run sync"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"cell {i} differs between {twin.name} and {path.name}: run `python3 tools/book.py sync`"


def test_every_text_twin_has_its_notebook():
    twins = sorted((ROOT / "notebooks").glob("*.md"))
    assert twins, "no chapter sources in notebooks/"
    for twin in twins:
        assert twin.with_suffix(".ipynb").exists(), f"{twin.name} has no executed .ipynb twin"


PLACEHOLDER = re.compile(r"PLACEHOLDER\w*|\bTODO\b|\bFIXME\b|\bXXX\b|\bTBD\b")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_placeholder_text_in_markdown(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = PLACEHOLDER.findall(cell.source)
            assert not found, f"{path.name} cell {i}: placeholder text {found} would be published"


GLUE_ROLE = re.compile(r"\{glue(?::\w*)?\}`([^`]+)`")
GLUE_DIRECTIVE = re.compile(r"^(?:```|:::)\{glue(?::\w*)?\}\s+(\S+)", re.M)


def glue_references(nb):
    keys = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            keys += [m.split(":")[0].split("::")[-1] for m in GLUE_ROLE.findall(cell.source)]
            keys += GLUE_DIRECTIVE.findall(cell.source)
    return keys


def glued_keys(nb):
    keys = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            scrap = out.get("metadata", {}).get("scrapbook")
            if scrap:
                keys.append(scrap["name"])
    return keys


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_glue_reference_is_in_the_stored_outputs(path):
    nb = nbformat.read(path, as_version=4)
    stored = glued_keys(nb)
    missing = sorted(set(glue_references(nb)) - set(stored))
    assert not missing, f"{path.name}: prose quotes {missing} but no stored output glues them; re-execute"
    dupes = sorted({k for k in stored if stored.count(k) > 1})
    assert not dupes, f"{path.name}: glue keys stored twice: {dupes}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_quotes_the_run_and_asserts_its_claims(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in code_cells(nb))
    assert len(glue_references(nb)) >= 3, f"{path.name}: numbers the text quotes from the run must be glued"
    assert len(re.findall(r"\bexpect\(", code)) >= 2, \
        f"{path.name}: conclusions drawn from outputs must be asserted with claims.expect"


def _names(requirements):
    return {re.split(r"[<>=!\[ ;@]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_list if not r.startswith(("-", "."))}
    assert {r.replace(" ", "") for r in declared} == {r.replace(" ", "") for r in listed}, (
        "environment.yml and pyproject.toml must list the same requirements")
    pinned = _names(l for l in (ROOT / "constraints.txt").read_text().splitlines() if "==" in l)
    assert _names(declared) <= pinned, f"constraints.txt lacks pins for {_names(declared) - pinned}"


def test_no_static_folder_and_offline_assets_configured():
    assert not (ROOT / "book" / "_static").exists() and not (ROOT / "_static").exists(), (
        "Jupyter Book 1 injects every .js/.css under _static into every page; use book/_vendor")
    config = CONFIG["sphinx"]["config"]
    assert config["html_static_path"] == ["book/_vendor"]
    assert "://" not in config["mathjax_path"]
    assert all("://" not in key for key in config["nb_ipywidgets_js"])
    assert CONFIG["execute"]["execute_notebooks"] == "off"


def test_glossary_and_references():
    rows = [l for l in (ROOT / "book" / "glossary.md").read_text().splitlines()
            if l.startswith("| ") and not l.startswith("| English") and not l.startswith("| ---")]
    assert len(rows) >= 30
    assert all(re.search(r"[\u4e00-\u9fff]", r) for r in rows), "every glossary row needs its Chinese term"
    refs = (ROOT / "book" / "references.md").read_text()
    for needle in ["Vaswani", "Kingma", "Loshchilov", "Srivastava", "Ioffe", "Devlin", "He et al. 2016",
                   "Krizhevsky 2009", "Socher", "Pang & Lee 2005", "Kaplan", "Brown et al. 2020"]:
        assert needle in refs, needle


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "python3 tools/book.py test" in readme and "python3 tools/book.py build" in readme
    assert "python3 tools/book.py test" in (ROOT / ".ci" / "run").read_text()


UNNUMBERED = {"Summary", "Exercises", "Provenance"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_sections_are_numbered_within_the_chapter(path):
    chapter = int(path.name.split("_")[0])
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for title in re.findall(r"^## (.+)$", cell.source, flags=re.M):
            if title in UNNUMBERED:
                continue
            assert re.match(rf"{chapter}\.\d+ \S", title), (
                f"{path.name}: section '## {title}' must be numbered '{chapter}.k Title' "
                "(or be Summary / Exercises / Provenance)")

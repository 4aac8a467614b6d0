"""Every public helper says where the course teaches it, and every such pointer leads to a real section.

The trail is a docstring line ``Taught in: notebook 03 §2.`` (several: ``notebook 03 §2, notebook 08 §4``; a deep
dive: ``notebook 05 deep dive "Memory on the machine"``), like d2l's "defined in section X".
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

import codellama_course
import codellama_course.lessons

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\s*Taught in: (.+?)\.?\s*$", re.MULTILINE)
REFERENCE = re.compile(r'notebook (\d\d)(?: §(\d+)| deep dive "([^"]+)")')


def _headings() -> dict[str, list[str]]:
    found = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        found[path.name[:2]] = re.findall(r"^## (.+?)\s*$", text, re.MULTILINE)
    return found


HEADINGS = _headings()


def _public_helpers() -> dict[str, object]:
    helpers = {}
    for package in (codellama_course, codellama_course.lessons):
        for name, module in package._EXPORTS.items():
            value = getattr(importlib.import_module(f"{package.__name__}.{module}"), name)
            if inspect.isfunction(value) or inspect.isclass(value):
                helpers[f"{package.__name__}.{name}"] = value
    return helpers


HELPERS = _public_helpers()


def check_reference(reference: str) -> str | None:
    """None when ``reference`` (one "notebook NN ..." item) names an existing section, else what is wrong."""
    m = REFERENCE.fullmatch(reference.strip())
    if m is None:
        return f"cannot read {reference!r}: write 'notebook 03 §2' or 'notebook 05 deep dive \"Title\"'"
    number, section, deep_dive = m.groups()
    if number not in HEADINGS:
        return f"{reference!r}: there is no notebook {number}"
    wanted = f"{section}. " if section else f"Deep dive: {deep_dive}"
    if not any(h.startswith(wanted) if section else h == wanted for h in HEADINGS[number]):
        return f"{reference!r}: notebook {number} has no section {wanted.strip()!r}"
    return None


def test_the_reference_check_can_fail():
    assert check_reference("notebook 00 §1") is None
    assert "no notebook" in check_reference("notebook 99 §1")
    assert "no section" in check_reference("notebook 00 §99")
    assert "cannot read" in check_reference("chapter 2")


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_every_public_helper_says_where_it_is_taught(name):
    doc = inspect.getdoc(HELPERS[name]) or ""
    lines = LINE.findall(doc)
    assert lines, f"{name}: its docstring needs a line 'Taught in: notebook NN §S.'"
    problems = [p for line in lines for ref in line.split(", ") if (p := check_reference(ref))]
    assert not problems, f"{name}: " + "; ".join(problems)

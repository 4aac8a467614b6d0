"""Every public helper says where the course teaches it, and every such pointer leads to a real section.

The trail is a docstring line ``Taught in: notebook 03 §2.`` (several: ``notebook 03 §2, notebook 08 §4``; a deep
dive: ``notebook 05 deep dive "pitfalls and fixes"``; only an exercise: ``notebook 00 exercises``), like d2l's "defined in section X".
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
REFERENCE = re.compile(r'notebook (\d\d)(?: §(\d+)| deep dive "([^"]+)"| (exercises))')


def _sections() -> dict[str, dict[str, str]]:
    """notebook number -> {"## heading" text: the section's markdown and code, up to the next heading}."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        sections: dict[str, str] = {}
        current = None
        for cell in json.loads(path.read_text())["cells"]:
            for line in "".join(cell["source"]).splitlines():
                m = re.match(r"^## (.+?)\s*$", line) if cell["cell_type"] == "markdown" else None
                if m:
                    current = m.group(1)
                    sections[current] = ""
                elif current is not None:
                    sections[current] += line + "\n"
        found[path.name[:2]] = sections
    return found


SECTIONS = _sections()
HEADINGS = {number: list(sections) for number, sections in SECTIONS.items()}


def _public_helpers() -> dict[str, object]:
    helpers = {}
    for package in (codellama_course, codellama_course.lessons):
        for name, module in package._EXPORTS.items():
            value = getattr(importlib.import_module(f"{package.__name__}.{module}"), name)
            if inspect.isfunction(value) or inspect.isclass(value):
                helpers[f"{package.__name__}.{name}"] = value
    return helpers


HELPERS = _public_helpers()


def references(line: str) -> list[str]:
    """The items of one "Taught in:" line (deep-dive titles may contain commas)."""
    found = [m.group(0) for m in REFERENCE.finditer(line)]
    return found if ", ".join(found) == line.strip() else [line]


def check_reference(reference: str) -> str | None:
    """None when ``reference`` (one "notebook NN ..." item) names an existing section, else what is wrong."""
    m = REFERENCE.fullmatch(reference.strip())
    if m is None:
        return f"cannot read {reference!r}: write 'notebook 03 §2' or 'notebook 05 deep dive \"Title\"'"
    number, section, deep_dive, exercises = m.groups()
    if number not in HEADINGS:
        return f"{reference!r}: there is no notebook {number}"
    wanted = f"{section}. " if section else (f"Deep dive: {deep_dive}" if deep_dive else "Exercises")
    if not any(h.startswith(wanted) if section else h == wanted for h in HEADINGS[number]):
        return f"{reference!r}: notebook {number} has no section {wanted.strip()!r}"
    return None


def test_the_reference_check_can_fail():
    assert check_reference("notebook 00 §1") is None
    assert "no notebook" in check_reference("notebook 99 §1")
    assert "no section" in check_reference("notebook 00 §99")
    assert "cannot read" in check_reference("chapter 2")
    assert references('notebook 02 §1, notebook 03 deep dive "a, b"') == ["notebook 02 §1", 'notebook 03 deep dive "a, b"']


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_every_public_helper_says_where_it_is_taught(name):
    doc = inspect.getdoc(HELPERS[name]) or ""
    lines = LINE.findall(doc)
    assert lines, f"{name}: its docstring needs a line 'Taught in: notebook NN §S.'"
    problems = [p for line in lines for ref in references(line) if (p := check_reference(ref))]
    assert not problems, f"{name}: " + "; ".join(problems)
    if inspect.isfunction(HELPERS[name]):  # a function is called where it is taught (a class may only be returned)
        short = name.rsplit(".", 1)[1]
        silent = [ref for line in lines for ref in references(line) if not re.search(rf"\b{short}\b", section_text(ref))]
        assert not silent, f"{name}: the section(s) {silent} never mention {short}: point to where it is taught"


def section_text(reference: str) -> str:
    number, section, deep_dive, exercises = REFERENCE.fullmatch(reference).groups()
    wanted = f"Deep dive: {deep_dive}" if deep_dive else "Exercises"
    return next(text for heading, text in SECTIONS[number].items()
                if (heading.startswith(f"{section}. ") if section else heading == wanted))

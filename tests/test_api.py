"""The public API: the names issues and notebooks rely on, the README's table of them, and the deprecations."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest

import codellama_course as cc

ROOT = Path(__file__).resolve().parents[1]
# named in the issues; notebooks and users rely on them
PROMISED = ["load", "variants", "estimate_memory", "infill_ids", "chat_ids", "chat_prompt", "pass_at_k"]


def _readme_rows() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The library", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", section, re.M)}


def test_the_promised_names_are_at_the_top_level():
    for name in PROMISED:
        assert name in cc._EXPORTS and callable(getattr(cc, name)), name
    assert importlib.util.find_spec("codellama_course.evaluation.__main__") is not None  # the evaluation CLI


def test_the_readme_table_lists_exactly_the_top_level_names():
    rows = _readme_rows()
    assert set(rows) == set(cc._EXPORTS), (
        f"README's '## The library' table: missing {sorted(set(cc._EXPORTS) - set(rows))}, "
        f"not exported {sorted(set(rows) - set(cc._EXPORTS))}")


@pytest.mark.parametrize("name", sorted(cc._EXPORTS))
def test_the_readme_says_where_each_name_is_taught_as_its_docstring_does(name):
    doc = inspect.getdoc(getattr(cc, name)) or ""
    taught = re.findall(r"^Taught in: (.+?)\.?$", doc, re.M)
    assert taught, f"{name}: no 'Taught in:' line"
    assert _readme_rows()[name][1] == taught[0], f"README row for {name}: write '{taught[0]}' in its last column"


@pytest.mark.parametrize("old", sorted(cc._MOVED))
def test_moved_names_still_work_with_a_warning_that_names_the_new_home(old):
    module_name, new_name = cc._MOVED[old].split(":")
    with pytest.warns(FutureWarning, match=re.escape(module_name)):
        value = getattr(cc, old)
    target = getattr(importlib.import_module(module_name), new_name.removesuffix("()"))
    assert value == (target() if new_name.endswith("()") else target)
    assert old not in cc.__all__


def test_the_top_level_never_warns_for_a_current_name():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in cc._EXPORTS:
            getattr(cc, name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        cc.lod  # noqa: B018


def test_no_notebook_uses_a_deprecated_name():
    """A moved name still works, but its FutureWarning would land in the stored stderr (and on learners)."""
    import json

    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", ""))
                assert "FutureWarning" not in text and "DeprecationWarning" not in text, f"{path.name}: {text[:300]}"

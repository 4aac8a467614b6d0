"""Self-contained, honest notebooks: nothing a learner sees points at the maintainers' checkout (``../shared``)
or at internal issue numbers, and the blog post's recorded outputs are quoted exactly, with attribution,
next to nano's where the notebooks run the post's examples."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# "../shared", "shared/reference/...", "issue #4", "#4" — but not a public "owner/repo#188"
LEAKS = re.compile(r"\.\./shared|shared/reference|\bissues? #\d+|(?<![\w/.-])#\d+\b", re.IGNORECASE)


def _texts(path: Path):
    """(where, text) for every cell source and every stored output of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        yield f"cell {i} source", "".join(cell["source"])
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            text += "".join(out.get("traceback", []))
            yield f"cell {i} output", text


def test_the_leak_pattern():
    for bad in ("../../shared/reference/codellama-tokenizers/x.model", "issue #4 measured it", "see #12",
                "Issues #3"):
        assert LEAKS.search(bad), bad
    for fine in ("meta-llama/codellama#188", "# NBVAL_IGNORE_OUTPUT", "color #fff", "x = a[#1]"[:5], "shared with"):
        assert not LEAKS.search(fine), fine


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_no_maintainer_paths_or_issue_numbers(path):
    hits = [f"{where}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
            for where, text in _texts(path) for m in LEAKS.finditer(text)]
    assert not hits, "\n".join(hits)


# ---- the blog's recorded outputs ------------------------------------------------------------------------


def test_blog_quotes_are_attributed_and_complete():
    from codellama_course.lessons.blog import blog_examples, blog_output

    assert blog_examples() == ("completion", "infilling", "chat", "4bit")
    for name in blog_examples():
        quote = blog_output(name)
        text = str(quote)
        assert text.startswith('Quoted from "Code Llama: Llama 2 learns to code", Hugging Face blog, 25 August 2023, '
                               "https://huggingface.co/blog/codellama")
        if quote.output is None:  # say so, never invent one
            assert "The post shows no output for this example." in text and quote.why_no_output
        else:
            assert quote.output in text
    with pytest.raises(KeyError, match="known: completion, infilling, chat, 4bit"):
        blog_output("fim")


def test_blog_quotes_match_the_examples_they_belong_to():
    from codellama_course.lessons.blog import blog_output

    completion = blog_output("completion")
    assert completion.output.startswith("Result: " + "def fibonacci(")  # the recipe printed the prompt too
    infill = blog_output("infilling")
    data = json.loads((ROOT / "codellama_course" / "lessons" / "data" / "blog_outputs.json").read_text(encoding="utf-8"))
    prefix, suffix = data["examples"]["infilling"]["prefix"], data["examples"]["infilling"]["suffix"]
    # the post decoded the whole sequence of the template f"<PRE> {prefix} <SUF>{suffix} <MID>" (decoding shows the
    # prefix's trailing space and the template's one as a single space)
    assert infill.output.startswith(f"<s> <PRE> {prefix.rstrip(' ')} <SUF>{suffix} <MID>")
    assert infill.output.endswith(" <EOT></s>")
    # notebook 03 infills the same example
    nb03 = json.loads((ROOT / "notebooks" / "03_infilling.ipynb").read_text(encoding="utf-8"))
    assigned = {}
    for cell in nb03["cells"]:
        if cell["cell_type"] == "code":
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    assigned.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    assert (assigned["prefix"], assigned["suffix"]) == (prefix, suffix)


@pytest.mark.parametrize("notebook, example", [("02_completion.ipynb", "completion"), ("03_infilling.ipynb", "infilling"),
                                               ("04_chat.ipynb", "chat")])
def test_notebooks_show_the_blog_output_beside_nanos(notebook, example):
    from codellama_course.lessons.blog import blog_output

    nb = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and f'print(blog_output("{example}"))' in "".join(c["source"])]
    assert len(cells) == 1, f"{notebook} should show the blog's {example} output once"
    stored = "".join("".join(o.get("text", "")) for o in cells[0]["outputs"])
    assert stored == str(blog_output(example)) + "\n"  # stored as the data file says (nbval re-checks it)

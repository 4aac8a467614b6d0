"""The sandbox worker's shape: small standard-library parts, its JavaScript in .js files (also in a built
wheel), started from text, and a candidate interpreter that serves without the zygote."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

import codellama_course
from codellama_course.evaluation import Sandbox, SandboxWarning, read_problems
from codellama_course.evaluation.worker import parts

from _evaluation_helpers import NAMESPACED, sandbox_under

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "codellama_course"
WORKER_DIR = PACKAGE_DIR / "evaluation" / "worker"
JS_FILES = sorted(p.name for p in (WORKER_DIR / "js").glob("*.js"))

# What JavaScript looks like, and Python strings do not (stop-sequence lists such as "\nfunction " are
# fine: no parenthesis or body follows them).
JS_SYNTAX = [
    r"\brequire\(\s*['\"]",
    r"\b(?:const|let|var)\s+[\w$]+\s*=",
    r"\bfunction\s*[\w$]*\s*\([^)]*\)\s*\{",
    r"=>\s*[{(\w]",
    r"\bprocess\.(?:argv|exit|stdout)\b",
    r"\.(?:readSync|writeSync)\(",
    r"\bglobalThis\b",
]


def _looks_like_javascript(text: str) -> list[str]:
    return [pattern for pattern in JS_SYNTAX if re.search(pattern, text)]


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_the_javascript_detector_can_fail():
    # every file the worker runs under node is recognised, and the old layout (a program in a string) is too
    for name in JS_FILES:
        assert _looks_like_javascript((WORKER_DIR / "js" / name).read_text()), name
    old = "const __cc_verdict_fs = require('fs');\n"
    assert _looks_like_javascript(old)
    assert not _looks_like_javascript("\nfunction ") and not _looks_like_javascript("\nconsole.log")


def test_no_javascript_inside_python_strings():
    found = [f"{path.relative_to(ROOT)}:{line}: {_looks_like_javascript(text)} {text[:60]!r}"
             for path in sorted(PACKAGE_DIR.rglob("*.py")) for line, text in _string_constants(path)
             if _looks_like_javascript(text)]
    assert not found, "JavaScript inside Python strings (put it in evaluation/worker/js/*.js):\n" + "\n".join(found)


def test_the_worker_is_small_standard_library_parts():
    stdlib = set(sys.stdlib_module_names)
    for path in sorted(WORKER_DIR.glob("*.py")):
        assert len(path.read_text().splitlines()) <= 600, path.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue  # relative imports: the worker's own parts
            outside = [n for n in names if n.split(".")[0] not in stdlib]
            assert not outside, f"{path.name} imports {outside}: the worker runs with the standard library only"


def test_every_part_travels_and_fits_on_a_command_line():
    sources = parts.collect()
    assert set(sources) == {p.name for p in WORKER_DIR.glob("*.py")} | {f"js/{n}" for n in JS_FILES}
    argv = parts.command("worker", "{}")
    assert argv[1:3] == ["-I", "-c"] and argv[3] == sources["boot.py"] and json.loads(argv[4]) == sources
    # Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN): keep a margin
    assert max(len(a.encode()) for a in argv) < 100 * 1024


def test_the_candidate_interpreter_serves_without_a_zygote(tmp_path):
    """The worker's fallback when no zygote starts: a fresh ``-I -S`` interpreter that builds the parts from
    text, defines the sample's function and answers calls with plain data."""
    from codellama_course.evaluation.worker.codec import decode, encode
    from codellama_course.evaluation.worker.framing import read_frame, write_frame

    to_cand_r, to_cand_w = os.pipe()
    from_cand_r, from_cand_w = os.pipe()
    argv = parts.command("candidate", to_cand_r, from_cand_w, site=False)
    proc = subprocess.Popen(argv, pass_fds=(to_cand_r, from_cand_w), cwd=tmp_path)
    os.close(to_cand_r)
    os.close(from_cand_w)
    try:
        write_frame(to_cand_w, {"prompt": "def add(a, b):\n", "completion": "    return a + b\n",
                                "entry_point": "add", "scratch": str(tmp_path), "sys_path": sys.path})
        assert read_frame(from_cand_r, deadline=None) == ["ready"]
        write_frame(to_cand_w, ["call", encode([2, 3]), encode({})])
        reply = read_frame(from_cand_r)
        assert reply[0] == "ok" and decode(reply[1]) == 5
        write_frame(to_cand_w, ["call", encode(["a", 1]), encode({})])
        assert read_frame(from_cand_r)[:2] == ["exc", "TypeError"]
    finally:
        os.close(to_cand_w)
        os.close(from_cand_r)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("kind", [*NAMESPACED, "none"])
def test_strict_mode_without_the_zygote(kind, monkeypatch):
    """Inside each sandbox, with the zygote switched off, strict mode starts the candidate interpreter and
    still tells an honest answer from a forged one."""
    from codellama_course.evaluation import sandbox

    def no_zygote(role, config):
        return parts.command(role, json.dumps(dict(json.loads(config), zygote=False)))

    monkeypatch.setattr(sandbox, "worker_command", no_zygote)
    problem = read_problems()["HumanEval/0"]  # its tests only compare with ==
    forged = "    class Anything(int):\n        def __eq__(self, other):\n            return True\n    return Anything(7)\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWarning)  # isolation none says it is unconfined
        with sandbox_under(kind, workers=1, timeout=5.0, quiet=True) as box:
            honest, fake = box.run([Sandbox.job(problem, problem["canonical_solution"], strict=True),
                                    Sandbox.job(problem, forged, strict=True)])
    assert honest["strict_result"] == "passed", honest
    assert fake["passed"] and fake["strict_result"] == "failed: AssertionError", fake


def test_renamed_names_warn_and_still_work():
    from codellama_course import evaluation as ev
    from codellama_course.evaluation import renamed, sampling

    assert renamed.REMOVED_IN == codellama_course.REMOVED_IN
    for old, new in [("PYTHON_STOP", "HUMANEVAL_STOP_SEQUENCES"), ("JS_STOP", "MULTIPL_E_JS_STOP_SEQUENCES"),
                     ("GenerationConfig", "SamplingConfig")]:
        with pytest.warns(FutureWarning, match=f"evaluation.{old} is deprecated.*import {new}"):
            assert getattr(ev, old) is getattr(ev, new)
    with pytest.warns(FutureWarning, match="TransformersBackend"):
        assert sampling.LocalBackend is sampling.TransformersBackend
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            ev.LocalBackend  # never exported by the package: no new name there either
        with pytest.raises(AttributeError):
            ev.no_such_name


def test_a_built_wheel_ships_the_javascript(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE_DIR, src / "codellama_course", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in JS_FILES:
        assert f"codellama_course/evaluation/worker/js/{name}" in names, name
    assert "codellama_course/evaluation/worker/boot.py" in names


def test_the_evaluation_helpers_point_at_real_sections_of_notebook_06():
    """Every ``Taught in:`` line in the evaluation package names a heading notebook 06 has."""
    cells = json.loads((ROOT / "notebooks" / "06_evaluation.ipynb").read_text())["cells"]
    headings = re.findall(r"^## (.+?)\s*$", "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"),
                          re.MULTILINE)
    lines = [(path.name, m) for path in sorted((PACKAGE_DIR / "evaluation").glob("*.py"))
             for m in re.findall(r"^\s*Taught in: (.+?)\.\s*$", path.read_text(), re.MULTILINE)]
    assert len(lines) >= 20 and any("deep dive" in line for _, line in lines)
    for name, line in lines:
        for ref in line.split(", "):
            m = re.fullmatch(r'notebook 06 (?:§(\d+)|deep dive "([^"]+)")', ref)
            assert m, (name, ref)
            section, dive = m.groups()
            assert any(h.startswith(f"{section}. ") for h in headings) if section else f"Deep dive: {dive}" in headings, (
                name, ref, headings)

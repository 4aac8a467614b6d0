#!/usr/bin/env python
"""Notebook maintenance for codellama-course: the one place that writes notebooks.

    python scripts/notebooks.py sync   [NOTEBOOK ...]   # canonical setup cell + Colab badge + clean metadata
    python scripts/notebooks.py execute [NOTEBOOK ...]  # run in place offline on nano, store outputs (for nbval)
    python scripts/notebooks.py course [--out build]    # run every notebook into build/notebooks + build/html
    python scripts/notebooks.py new 02_code_completion "Code completion"   # a skeleton with every section
    python scripts/notebooks.py check                   # exit 1 if a notebook needs `sync`
    python scripts/notebooks.py student [--out build/student]  # student copies: exercises without solutions
    python scripts/notebooks.py slides  [--out build/slides]   # reveal.js decks of each main path
    python scripts/notebooks.py set-repo owner/name     # the course's GitHub repository, everywhere it is named

Without NOTEBOOK arguments a command acts on every ``notebooks/NN_*.ipynb``.

Single sources of truth kept here (the hygiene tests import them):
- ``SETUP_TEMPLATE``/``setup_cell()``: the first code cell of every notebook (its extras per notebook from
  ``NOTEBOOK_EXTRAS``). Edit it here, then run ``sync``.
- ``GITHUB_REPO``: the repository the Colab badges and the Colab install point at (``set-repo`` changes it).
- ``QUIET_ENV``: the environment every notebook runs under in tests and ``execute``/``course``
  (one torch thread, no progress bars or library log noise), so that stored outputs are stable.
- ``OFFLINE_ENV``: added where the course decides a run needs no Hub (a nano-only run: no
  ``CODELLAMA_COURSE_MODEL``, or ``nano``; and the tests), never over a value the user set.
- The learning time in each title cell's ``**Time:**`` line and in the README course map, computed by
  ``scripts/teaching.py`` (which also holds the exercise convention, the structure and the slides).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_teaching():
    """scripts/teaching.py, loaded by path (this file is itself loaded by path by the tests)."""
    import importlib.util

    if "_teaching_tools" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_teaching_tools", Path(__file__).with_name("teaching.py"))
        sys.modules["_teaching_tools"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["_teaching_tools"])
    return sys.modules["_teaching_tools"]


teaching = _load_teaching()
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOK_NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")

# The GitHub repository ("owner/name") of the published course: the Colab badges, the setup cell's
# install source, README links and pyproject URLs name it. A placeholder until the course is published:
# `python scripts/notebooks.py set-repo owner/name` rewrites every place that names it.
PLACEHOLDER_REPO = "your-org/codellama-course"
GITHUB_REPO = "your-org/codellama-course"
GITHUB_BRANCH = "main"

# Environment for running notebooks non-interactively (tests, `execute`, `course`).
# Interactive learners keep their progress bars; only the stored/compared runs are silenced.
QUIET_ENV = {
    "OMP_NUM_THREADS": "1",  # 2-core CI boxes; also makes CPU timings comparable
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel debugger note on stderr
}

# Offline, but only where the run needs no Hub, and never over the user's own setting: the user's
# environment wins (`CODELLAMA_COURSE_MODEL=13b bash scripts/course.sh` downloads 13B).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1"}
MODEL_ENV_VAR = "CODELLAMA_COURSE_MODEL"  # codellama_course.loading.ENV_VAR (not imported: no package needed here)


def nano_only(env: dict[str, str]) -> bool:
    """Does a run with this environment use only the embedded nano model (no model chosen, or ``nano``)?"""
    return env.get(MODEL_ENV_VAR, "").strip().lower() in ("", "nano")


# Allowed metadata. Everything else (widgets, colab, execution timings, editor state) is stripped.
NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
CELL_METADATA_KEYS = {"tags"}

SETUP_MARKER = "# Setup: the same cell opens every notebook"
SOURCE_VARIABLE = "CODELLAMA_COURSE_SOURCE"

# Extras a notebook's setup cell installs on Colab (by notebook number), besides the package itself.
# "quant" (bitsandbytes) is added on any GPU runtime; notebooks 01 and 05 use it on the CPU as well.
NOTEBOOK_EXTRAS = {"01": ("quant",), "05": ("quant",), "06": ("eval",), "07": ("serve",), "08": ("eval",), "09": ("train",)}

SETUP_TEMPLATE = r'''# NBVAL_IGNORE_OUTPUT
{marker} (written by scripts/notebooks.py sync; edit it there).
# On Colab it installs the course package with what this notebook needs (+ bitsandbytes on a GPU) and never
# touches Colab's torch or NumPy. Locally it installs nothing (see README: `bash scripts/setup.sh`).
import importlib.metadata as _md
import os, pathlib, shutil, subprocess, sys, tempfile, warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: text bars are fine

# Where Colab installs the course from: {variable} (a git URL, a wheel file or a folder), else:
COURSE_SOURCE = os.environ.get("{variable}", "{default}")
EXTRAS = {extras} + (["quant"] if shutil.which("nvidia-smi") else [])


class SetupStopped(Exception):
    """Shown as its message only: IPython prints _render_traceback_() instead of a traceback."""

    def _render_traceback_(self):
        return str(self).splitlines()


def _stop(reason):
    raise SetupStopped(f"The course package is not installed: {{reason}}.\nSet {variable} to its git URL, wheel "
                       "file or folder, then run this cell again, e.g. %env {variable}=/content/<the .whl file>")


def _version(dist):
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def _missing():  # the course, or a package this notebook's EXTRAS need (in a version they accept), is not installed
    if _version("codellama-course") is None:
        return True
    from packaging.requirements import Requirement

    needs = [Requirement(r) for r in _md.requires("codellama-course") or []]
    return any(_version(r.name) is None or not r.specifier.contains(_version(r.name), prereleases=True)
               for r in needs if r.marker and any(r.marker.evaluate({{"extra": e}}) for e in EXTRAS))


if "google.colab" in sys.modules and _missing():
    if not COURSE_SOURCE:
        _stop("this copy of the course names no published repository")
    if "://" not in COURSE_SOURCE:  # a wheel file or a folder
        if not os.path.exists(COURSE_SOURCE):
            _stop(f"{{COURSE_SOURCE}} does not exist")
        COURSE_SOURCE = pathlib.Path(COURSE_SOURCE).resolve().as_uri()
    # Packages already imported by the running kernel: if pip changes them, a restart is needed.
    _before = {{d: _version(d) for d in ("numpy", "transformers", "tokenizers", "huggingface-hub")
               if d.replace("-", "_") in sys.modules}}
    # Hold Colab's own torch/NumPy where they are (a constraints file, not an upgrade).
    _keep = pathlib.Path(tempfile.gettempdir(), "codellama-course-keep.txt")
    _keep.write_text("".join(f"{{d}}=={{_version(d)}}\n" for d in ("torch", "torchvision", "torchaudio", "numpy")
                             if _version(d)))
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", str(_keep),
                           f"codellama-course[{{','.join(EXTRAS)}}] @ {{COURSE_SOURCE}}"],
                          capture_output=True, text=True, env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
    if _pip.returncode:  # say why in pip's (or git's) own words
        _why = [line.strip() for line in _pip.stderr.splitlines() if line.strip()] or ["no output"]
        _why = next((line for line in reversed(_why) if line.startswith(("ERROR:", "fatal:"))), _why[-1])
        _stop(f"pip could not install it from {{COURSE_SOURCE}} ({{_why}})")
    _changed = [d for d, v in _before.items() if _version(d) != v]
    if _changed:
        print("*" * 72)
        print(f"RESTART NEEDED: pip upgraded {{', '.join(_changed)}}, which this session had already imported.")
        print("Runtime > Restart session, then run this notebook again from the top (nothing is reinstalled).")
        print("*" * 72)
elif _version("codellama-course") is None and pathlib.Path("../codellama_course").is_dir():
    sys.path.insert(0, str(pathlib.Path("..").resolve()))  # a clone that was not pip-installed

import torch, transformers, codellama_course
print(f"python {{sys.version.split()[0]}} | torch {{torch.__version__}} | transformers {{transformers.__version__}}"
      f" | codellama_course {{codellama_course.__version__}} | GPU: "
      f"{{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (CPU)'}}")'''


def course_source() -> str:
    """The setup cell's default install source: the published repository, or "" while it is the placeholder."""
    return "" if GITHUB_REPO == PLACEHOLDER_REPO else f"git+https://github.com/{GITHUB_REPO}"


def setup_cell(name: str) -> str:
    """The canonical first code cell of notebook ``name`` (its extras come from ``NOTEBOOK_EXTRAS``)."""
    extras = list(NOTEBOOK_EXTRAS.get(name[:2], ()))
    return SETUP_TEMPLATE.format(marker=SETUP_MARKER, variable=SOURCE_VARIABLE, default=course_source(),
                                 extras=json.dumps(extras))


def colab_url(name: str) -> str:
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_BRANCH}/notebooks/{name}"


def colab_badge(name: str) -> str:
    return (f'<a href="{colab_url(name)}" target="_parent">'
            '<img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>')


BADGE_RE = re.compile(r'<a href="https://colab\.research\.google\.com/github/[^"]*" target="_parent">'
                      r'<img src="https://colab\.research\.google\.com/assets/colab-badge\.svg" alt="Open In Colab"/></a>')


# --------------------------------------------------------------------------------------------
# helpers


def _nbformat():
    import nbformat

    return nbformat


def notebook_paths(args: list[str] | None = None) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    return sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def is_setup_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and SETUP_MARKER in "".join(cell.get("source", ""))


def first_code_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            return cell
    return None


def clean(nb, name: str):
    """Canonical form: setup cell first among code cells, badge in the title cell, minimal metadata,
    stable cell ids. Returns the notebook (modified in place)."""
    nbf = _nbformat()
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = nbf.from_dict(copy.deepcopy(NOTEBOOK_METADATA))

    # setup cell: replace the existing one, or insert it before the first code cell
    setup_idx = [i for i, c in enumerate(nb.cells) if is_setup_cell(c)]
    if setup_idx:
        cell = nb.cells[setup_idx[0]]
        # Its outputs are never compared (NBVAL_IGNORE_OUTPUT), so a new version of the cell does not
        # force every notebook to be re-executed: the old outputs stay until the next `execute`.
        cell.source = setup_cell(name)
        for i in reversed(setup_idx[1:]):
            del nb.cells[i]
    else:
        pos = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(pos, nbf.v4.new_code_cell(setup_cell(name)))
    # the setup cell must be the first code cell
    idx = next(i for i, c in enumerate(nb.cells) if is_setup_cell(c))
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    if first != idx:
        nb.cells.insert(first, nb.cells.pop(idx))

    # Colab badge in the first markdown cell, right under the title
    title = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if title is not None:
        badge = colab_badge(name)
        if BADGE_RE.search(title.source):
            title.source = BADGE_RE.sub(badge, title.source)
        else:
            lines = title.source.split("\n")
            lines.insert(1, "\n" + badge)
            title.source = "\n".join(lines)
        title.source = teaching.with_learning_time(title.source, learning_time(nb))

    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:03d}"
        cell.metadata = nbf.from_dict({k: v for k, v in cell.get("metadata", {}).items()
                                       if k in CELL_METADATA_KEYS})
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if "metadata" in out and not out["metadata"]:
                    out["metadata"] = {}
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            if not cell.get("attachments"):
                cell.pop("attachments", None)
    return nb


def read(path: Path):
    return _nbformat().read(str(path), as_version=4)


def write(nb, path: Path) -> None:
    nbf = _nbformat()
    nbf.validate(nb)
    text = nbf.writes(nb) + "\n"
    path.write_text(text, encoding="utf-8")


def quiet_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a notebook runs under: ``base`` (default: this process's) + QUIET_ENV, and
    OFFLINE_ENV for a nano-only run where the user has not set those variables."""
    env = dict(os.environ if base is None else base)
    env.update(QUIET_ENV)
    if nano_only(env):
        for key, value in OFFLINE_ENV.items():
            env.setdefault(key, value)
    # let kernels import the package from this checkout even if it was not pip-installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def execute_notebook(nb, cwd: Path, timeout: int = 1200, allow_errors: bool = False):
    """Run a notebook top to bottom in a fresh kernel with :func:`quiet_env`. Raises on the first error
    (``allow_errors``: runs every cell and keeps the errors in the outputs)."""
    from nbclient import NotebookClient

    old = dict(os.environ)
    os.environ.update(quiet_env())  # the kernel inherits the environment of this process
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                allow_errors=allow_errors, resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


# --------------------------------------------------------------------------------------------
# commands


def cmd_sync(paths: list[Path]) -> int:
    for path in paths:
        nb = read(path)
        before = _nbformat().writes(nb)
        clean(nb, path.name)
        if _nbformat().writes(nb) != before:
            write(nb, path)
            print(f"synced   {path.relative_to(ROOT)}")
        else:
            print(f"ok       {path.relative_to(ROOT)}")
    _sync_readme()
    return 0


def _sync_readme() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    text = teaching.with_course_map_times(text, learning_times())
    new = re.sub(r"https://colab\.research\.google\.com/github/[^/\s\"')]+/[^/\s\"')]+/blob/[^/\s\"')]+/notebooks/",
                 f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_BRANCH}/notebooks/", text)
    if new != readme.read_text(encoding="utf-8"):
        readme.write_text(new, encoding="utf-8")
        print("synced   README.md (Colab links, learning times)")


def learning_times() -> dict:
    """Notebook number -> its learning time (scripts/teaching.py), for the README course map."""
    return {path.name[:2]: learning_time(read(path)) for path in notebook_paths()}


def learning_time(nb):
    """The notebook's learning time (scripts/teaching.py), counted without the title's own learning-time words
    (so that writing it changes nothing)."""
    title = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if title is None:
        return teaching.learning_minutes(nb, is_setup_cell)
    saved = title.source
    title.source = teaching.with_learning_time(saved, None)
    try:
        return teaching.learning_minutes(nb, is_setup_cell)
    finally:
        title.source = saved


# Files besides the notebooks that name the repository (links, badges, project URLs).
REPO_NAMED_IN = ("README.md", "pyproject.toml", "docs/DEVELOPING.md")


def cmd_set_repo(repo: str) -> int:
    """Point every place that names the repository at ``repo`` ("owner/name"), then ``sync`` the notebooks."""
    global GITHUB_REPO
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*)/[A-Za-z0-9._-]+", repo):
        print(f"bad repository {repo!r}: give it as owner/name, e.g. my-org/codellama-course", file=sys.stderr)
        return 2
    old, script = GITHUB_REPO, ROOT / "scripts" / "notebooks.py"
    text = script.read_text(encoding="utf-8")
    script.write_text(re.sub(r'^GITHUB_REPO = ".*"$', f'GITHUB_REPO = "{repo}"', text, count=1, flags=re.M),
                      encoding="utf-8")
    for rel in REPO_NAMED_IN:
        path = ROOT / rel
        if path.exists():
            text = path.read_text(encoding="utf-8")
            new = text.replace(f"github.com/{old}", f"github.com/{repo}").replace(f"/github/{old}/", f"/github/{repo}/")
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"set      {rel}")
    GITHUB_REPO = repo
    return cmd_sync(notebook_paths())


def cmd_check(paths: list[Path]) -> int:
    stale = []
    for path in paths:
        nb = read(path)
        before = _nbformat().writes(nb)
        if _nbformat().writes(clean(nb, path.name)) != before:
            stale.append(path.name)
    for name in stale:
        print(f"needs sync: {name}")
    return 1 if stale else 0


def cmd_execute(paths: list[Path]) -> int:
    failed = []
    for path in paths:
        t0 = time.time()
        nb = clean(read(path), path.name)
        try:
            execute_notebook(nb, path.parent)
        except Exception as exc:  # keep going, report at the end; never store an error output
            failed.append(path.name)
            print(f"FAILED   {path.relative_to(ROOT)}: {type(exc).__name__}: {str(exc)[-2000:]}")
            continue
        write(clean(nb, path.name), path)
        print(f"executed {path.relative_to(ROOT)} in {time.time() - t0:.0f} s")
    return 1 if failed else 0


def cmd_course(paths: list[Path], out: Path) -> int:
    from nbconvert import HTMLExporter

    nb_out, html_out = out / "notebooks", out / "html"
    nb_out.mkdir(parents=True, exist_ok=True)
    html_out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    failed, rows = [], []
    t_all = time.time()
    for path in paths:
        t0 = time.time()
        nb = clean(read(path), path.name)
        for cell in nb.cells:  # start from a clean slate: the build shows *this* machine's run
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        try:
            execute_notebook(nb, path.parent)
            status = "ok"
        except Exception as exc:
            failed.append(path.name)
            status = f"FAILED ({type(exc).__name__})"
            print(str(exc)[-3000:], file=sys.stderr)
        write(nb, nb_out / path.name)
        body, _ = exporter.from_notebook_node(nb)
        (html_out / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        write_slides(nb, path.name, out / "slides")
        rows.append((path.name, status, time.time() - t0))
        print(f"{status:8} {path.name} in {time.time() - t0:.0f} s")
    index = ["<!doctype html><meta charset='utf-8'><title>Code Llama course</title><h1>Code Llama course</h1><ul>"]
    index += [f"<li><a href='{Path(n).with_suffix('.html').name}'>{n}</a> ({s}, {t:.0f} s)</li>" for n, s, t in rows]
    (html_out / "index.html").write_text("\n".join(index + ["</ul>"]), encoding="utf-8")
    print("\n" + course_summary(rows, time.time() - t_all)
          + f"\nExecuted notebooks: {nb_out.relative_to(ROOT) if nb_out.is_relative_to(ROOT) else nb_out}"
          f"\nHTML:               {(html_out / 'index.html')}"
          f"\nSlides:             {_shown(out / 'slides')}/NN_x.slides.html (the main paths)")
    return 1 if failed else 0


def cmd_student(paths: list[Path], out: Path, check: bool = False, report: Path | None = None) -> int:
    """Write each notebook's student copy (exercises without solutions, their outputs cleared) to ``out``.
    ``check``: also run each copy (offline, as ``execute``): every exercise must fail with "not solved yet"
    and nothing else, every other cell must run; ``report``: the problems per notebook as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    problems = {}
    for path in paths:
        teacher = clean(read(path), path.name)
        nb = teaching.student_notebook(teacher)
        write(nb, out / path.name)
        problems[path.name] = [f"solution line in the student copy: {line}"
                               for line in teaching.solution_leaks(teacher, nb)]
        if check:
            t0 = time.time()
            execute_notebook(nb, path.parent, allow_errors=True)
            problems[path.name] += teaching.run_problems(nb)
            print(f"{'ok' if not problems[path.name] else 'FAILED':8} {_shown(out / path.name)} "
                  f"(ran in {time.time() - t0:.0f} s)")
        else:
            print(f"student  {_shown(out / path.name)}")
        for problem in problems[path.name]:
            print(f"         {problem}")
    if report is not None:
        report.write_text(json.dumps(problems, indent=1), encoding="utf-8")
    return 1 if any(problems.values()) else 0


def write_slides(nb, name: str, out: Path) -> Path:
    """The main path of ``nb`` (title to Summary, with the outputs it has) as ``out/NN_x.slides.html``."""
    from nbconvert import SlidesExporter

    out.mkdir(parents=True, exist_ok=True)
    body, _ = SlidesExporter(reveal_scroll=True).from_notebook_node(teaching.slides(nb, is_setup_cell))
    target = out / (Path(name).stem + ".slides.html")
    target.write_text(body, encoding="utf-8")
    return target


def cmd_slides(paths: list[Path], out: Path) -> int:
    for path in paths:
        print(f"slides   {_shown(write_slides(clean(read(path), path.name), path.name, out))}")
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def course_summary(rows: list[tuple[str, str, float]], total_seconds: float) -> str:
    """Two lines for the end of a course run: how many notebooks ran and the total time, and the slowest."""
    ok = sum(1 for _, status, _ in rows if status == "ok")
    name, _, slowest = max(rows, key=lambda row: row[2])
    return (f"{ok}/{len(rows)} notebooks ran in {_minutes(total_seconds)} in total.\n"
            f"Slowest: {name} ({_minutes(slowest)}).")


def _minutes(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


SKELETON = [
    ("markdown", "# {num} · {title}\n\n**Time:** CPU/nano < N min (measured: N s on 2 CPU cores) · T4/A100: ~N min (estimates) · **Hardware tier:** CPU/nano\n\n"
                 "## What you'll learn\n- ...\n"),
    ("code", None),  # the setup cell
    ("markdown", "## 1. ...\n"),
    ("code", "import codellama_course as cc\n"),
    ("markdown", "## Summary\n- ...\n"),
    ("markdown", "## Exercises\nEach exercise ends with an `assert` that checks your answer.\n"),
    ("code", "# your answer\nanswer = ...\n# check\nassert answer == ...\n"),  # tagged `exercise`
    ("markdown", "## What changed since the blog\n- ...\n"),
    ("markdown", "## Further reading\n- ...\n"),
]


def cmd_new(stem: str, title: str) -> int:
    nbf = _nbformat()
    name = stem if stem.endswith(".ipynb") else stem + ".ipynb"
    m = NOTEBOOK_NAME.match(name)
    if not m:
        print(f"bad name {name!r}: use NN_lower_snake.ipynb", file=sys.stderr)
        return 2
    path = NOTEBOOK_DIR / name
    if path.exists():
        print(f"{path} exists", file=sys.stderr)
        return 2
    nb = nbf.v4.new_notebook()
    for kind, src in SKELETON:
        if kind == "markdown":
            nb.cells.append(nbf.v4.new_markdown_cell(src.format(num=m.group(1), title=title)))
        else:
            nb.cells.append(nbf.v4.new_code_cell(setup_cell(name) if src is None else src))
            if src and src.startswith(teaching.ANSWER_MARK):
                nb.cells[-1].metadata["tags"] = [teaching.EXERCISE_TAG]
    NOTEBOOK_DIR.mkdir(exist_ok=True)
    write(clean(nb, name), path)
    print(f"created {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("sync", "execute", "check"):
        s = sub.add_parser(name)
        s.add_argument("notebooks", nargs="*")
    s = sub.add_parser("course")
    s.add_argument("notebooks", nargs="*")
    s.add_argument("--out", default=str(ROOT / "build"))
    for name, default in (("slides", "build/slides"), ("student", "build/student")):
        s = sub.add_parser(name)
        s.add_argument("notebooks", nargs="*")
        s.add_argument("--out", default=str(ROOT / default))
    s.add_argument("--check", action="store_true", help="run each student copy and check how its cells end")
    s.add_argument("--report", help="with --check: write the problems per notebook to this JSON file")
    s = sub.add_parser("set-repo", help="point badges, setup cells, README and pyproject at owner/name")
    s.add_argument("repo")
    s = sub.add_parser("new")
    s.add_argument("stem")
    s.add_argument("title")
    a = p.parse_args(argv)
    if a.cmd == "new":
        return cmd_new(a.stem, a.title)
    if a.cmd == "set-repo":
        return cmd_set_repo(a.repo)
    paths = notebook_paths(a.notebooks)
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    if a.cmd == "sync":
        return cmd_sync(paths)
    if a.cmd == "check":
        return cmd_check(paths)
    if a.cmd == "execute":
        return cmd_execute(paths)
    if a.cmd == "student":
        return cmd_student(paths, Path(a.out).resolve(), a.check, Path(a.report) if a.report else None)
    if a.cmd == "slides":
        return cmd_slides(paths, Path(a.out).resolve())
    return cmd_course(paths, Path(a.out).resolve())


def use_project_python(venv: Path = ROOT / ".venv") -> None:
    """These commands need the dev extra (nbformat, nbclient, nbconvert). Started by a Python without it
    (``python scripts/notebooks.py ...`` with the system python), run again with the project's ``.venv``;
    without one, exit with what to do."""
    import importlib.util

    if all(importlib.util.find_spec(m) is not None for m in ("nbformat", "nbclient", "nbconvert")):
        return
    venv_python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if venv_python.exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit(f"scripts/notebooks.py needs nbformat, nbclient and nbconvert, which {sys.executable} lacks. "
             "Run `bash scripts/setup.sh` once (it creates .venv with them); this script then uses .venv itself.")


if __name__ == "__main__":
    use_project_python()
    sys.exit(main())

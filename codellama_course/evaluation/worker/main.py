"""The worker's main loop (role ``worker``): set up once, say hello, then serve one request at a time.

Set-up: stdin / stdout move to private descriptors (a stray print cannot corrupt the protocol), the
worker becomes a child subreaper and undumpable, checks whether it has a private PID namespace and
may switch samples to their own uids, and guards itself once (:func:`.guard.guard_worker`) so that
every forked sample starts guarded. Requests: ``{"kind": "python" | "js", "strict": bool, ...}`` ->
``{"result": ..., "strict_result": ...}``, and ``{"kind": "stats"}`` -> CPU seconds used so far.
"""

import json
import os
import posix
import re
import resource
import sys

from . import preload  # noqa: F401  (warm imports for the samples)
from . import zygote
from .framing import read_frame, write_frame
from .guard import describe, guard_worker
from .javascript import run_js, run_js_strict
from .processes import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, child_env, cleanup, my_children, prctl, rlimit_values
from .python_runner import run_python, run_python_strict

def probe_uid(uid):
    """Can a child of ours switch to this uid (root in the initial user namespace)?"""
    if os.geteuid() != 0:
        return False
    pid = posix.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def writable_mounts():
    """The mount points this process sees that it could write to (not mounted read-only): the
    evaluator checks that a view it built itself has none outside the scratch directory."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            points = [line.split(" ")[4] for line in f if line.count(" ") >= 5]
    except OSError:
        return []
    out = []
    for point in dict.fromkeys(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in points):
        try:  # (the path resolves to the mount that is visible there; hidden ones are not seen)
            if not os.statvfs(point).f_flag & os.ST_RDONLY:
                out.append(point)
        except OSError:
            pass
    return out


def run(args):
    """The worker (role ``worker``): ``args`` is its config (JSON, from the evaluator)."""
    cfg = json.loads(args[0])
    sys.path[:] = cfg["sys_path"]
    infd, outfd = os.dup(0), os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # stray prints can never corrupt the protocol
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_DUMPABLE, 0)
    import gc

    gc.collect()
    gc.freeze()  # forked children never scan (and so never copy) the worker's own objects
    try:
        own_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        own_ns = None
    cfg["private_pidns"] = bool(cfg.get("expect_private_pidns")) and own_ns is not None and own_ns != cfg.get(
        "host_pidns"
    )
    if cfg.get("uid") is not None and not (probe_uid(cfg["uid"]) and probe_uid(cfg["judge_uid"])):
        cfg["uid"] = cfg["judge_uid"] = None
    os.makedirs(cfg["scratch"], exist_ok=True)
    cfg["_rlimits"], cfg["_rlimits_node"] = rlimit_values(cfg), rlimit_values(cfg, node=True)  # once, not per fork
    # the environment every Python sample gets: set here once, so a forked child need not
    # rebuild it (enter_child still makes sure it is exactly this, ~0.2 ms less per sample)
    cfg["_environ_scratch"] = os.path.join(os.path.normpath(cfg["scratch"]), cfg.get("sample_dir", "sample"))
    os.environ.clear()
    os.environ.update(child_env(cfg["_environ_scratch"]))
    guard_worker()  # once, for every Python sample this worker forks (see reliability_guard)
    write_frame(
        outfd,
        {
            "hello": True,
            "pid": os.getpid(),
            "euid": os.geteuid(),
            "private_pidns": cfg["private_pidns"],
            "uid": cfg.get("uid"),
            "python": sys.version.split()[0],
            "writable": writable_mounts(),
        },
    )
    handlers = {"python": run_python, "python-strict": run_python_strict, "js": run_js, "js-strict": run_js_strict}
    while True:
        try:
            req = read_frame(infd)
        except (EOFError, OSError):
            break
        if req.get("kind") == "stats":  # CPU seconds of this worker and every sample it ran
            me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
            if zygote.ZYGOTE is not None:  # alive, so not in RUSAGE_CHILDREN yet: it and its reaped children
                try:
                    with open(f"/proc/{zygote.ZYGOTE['pid']}/stat") as f:
                        ticks = f.read().rsplit(")", 1)[1].split()[11:15]
                    cpu += sum(int(t) for t in ticks) / os.sysconf("SC_CLK_TCK")
                except (OSError, ValueError, IndexError):
                    pass
            write_frame(outfd, {"id": req.get("id"), "cpu": cpu})
            continue
        kind = req.get("kind", "python") + ("-strict" if req.get("strict") else "")
        try:
            out = handlers[kind](cfg, req)
        except Exception as e:  # noqa: BLE001 - the worker reports, it does not die
            out = {"result": f"failed: sandbox error ({describe(e)})"}
            cleanup(cfg, my_children())
        out["id"] = req.get("id")
        try:
            write_frame(outfd, out)
        except OSError:
            break
    zygote.zygote_stop()
    cleanup(cfg, my_children())


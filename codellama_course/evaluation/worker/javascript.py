"""JavaScript samples (MultiPL-E humaneval-js) under node, in compatible and strict mode.

The node programs are the files in ``js/`` (:func:`.parts.javascript`): a one-line prologue and an
epilogue around prompt + completion + tests (the verdict pipe is fd 3, written only after the tests
returned, with a fresh token), and for strict mode a candidate and a judge that share ``codec.js``.
"""

import base64
import os
import posix
import re
import time

from .framing import write_frame
from .guard import MAX_REASON
from .parts import javascript
from .processes import cleanup, enter_child, fresh_scratch, signal_verdict, verdict_from, wait_child

def js_reason(stderr):
    text = stderr.decode("utf-8", "replace")
    m = re.search(r"^(\w*(?:Error|Exception))\b(?: \[(\w+)\])?(?::\s*(.*))?$", text, re.M)
    if m:
        reason = m.group(1)
        if m.group(3) and m.group(1) != "AssertionError":
            reason += ": " + m.group(3).strip()
        return reason[:MAX_REASON]
    m = re.search(r"^Uncaught (.*)$", text, re.M)
    if m:
        return ("uncaught " + m.group(1))[:MAX_REASON]
    return None


def run_js(cfg, req):
    node = cfg.get("node")
    if not node:
        return {"result": "failed: node.js not found in the sandbox"}
    scratch = fresh_scratch(cfg)
    timeout = float(req["timeout"])
    token = os.urandom(8).hex().encode()
    # fd 3 is the verdict pipe: written only after test() returned (see the epilogue).
    program = (javascript("prologue.js") + req["prompt"] + req["completion"] + "\n" + req["test"] + "\n"
               + javascript("epilogue.js").replace("__CC_TOKEN__", token.decode()))
    path = os.path.join(scratch, "program.js")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(program)
    rfd, wfd = os.pipe()
    er, ew = os.pipe()
    pid = posix.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.close(er)
            os.dup2(ew, 2)
            os.dup2(wfd, 3)
            enter_child(cfg, [2, 3], cfg.get("uid"), timeout, node=True, scratch=scratch)
            os.set_inheritable(3, True)
            os.set_inheritable(2, True)
            heap = max(64, int((cfg["limits"].get("memory") or (2 << 30)) / (1 << 20) * 0.6))
            os.execv(node, [node, f"--max-old-space-size={heap}", "--stack-size=2000", path])
        finally:
            os._exit(71)
    os.close(wfd)
    os.close(ew)
    status, data = wait_child(pid, time.monotonic() + timeout + 1.0, [rfd, er], limit=1 << 16)
    os.close(rfd)
    os.close(er)
    message, stderr = data[rfd], data[er]
    if status is None:
        result = "timed out"
    elif message == b"P" + token and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        result = "passed"
    elif os.WIFSIGNALED(status):
        result = signal_verdict(os.WTERMSIG(status))
    else:
        code = os.WEXITSTATUS(status)
        why = js_reason(stderr)
        if why:
            result = f"failed: {why}"
        elif message.startswith(b"P"):
            result = f"failed: exited with code {code} after the tests"
        else:
            result = f"failed: exited with code {code} before the tests finished"
    cleanup(cfg, [pid])
    return {"result": result}

# ----------------------------------------------------------------------------- strict mode
JS_FUNCTION = re.compile(r"function\s+([A-Za-z_$][\w$]*)\s*\(")


def run_js_strict(cfg, req):
    compat = run_js(cfg, req)
    node = cfg.get("node")
    names = JS_FUNCTION.findall(req["prompt"])
    if not node or not names:
        out = dict(compat)
        out["strict_result"] = "failed: strict mode needs node and a function in the prompt"
        return out
    scratch = fresh_scratch(cfg)
    timeout = float(req["timeout"])
    heap = max(64, int((cfg["limits"].get("memory") or (2 << 30)) / (1 << 20) * 0.6))
    j2c_r, j2c_w = os.pipe()
    c2j_r, c2j_w = os.pipe()
    cand = posix.fork()
    if cand == 0:
        try:
            os.close(j2c_w)
            os.close(c2j_r)
            enter_child(cfg, [j2c_r, c2j_w], cfg.get("uid"), timeout + 1, node=True, scratch=scratch)
            os.set_inheritable(j2c_r, True)
            os.set_inheritable(c2j_w, True)
            os.execv(node, [node, f"--max-old-space-size={heap}", "-e", javascript("codec.js", "candidate.js"), str(j2c_r), str(c2j_w)])
        finally:
            os._exit(71)
    os.close(j2c_r)
    os.close(c2j_w)
    try:
        write_frame(j2c_w, {"program": req["prompt"] + req["completion"], "name": names[-1]})
    except OSError:
        pass
    vr, vw = os.pipe()
    judge = posix.fork()
    if judge == 0:
        try:
            os.close(vr)
            enter_child(cfg, [j2c_w, c2j_r, vw], cfg.get("judge_uid"), timeout + 1, node=True, scratch=None)
            for fd in (j2c_w, c2j_r, vw):
                os.set_inheritable(fd, True)
            tests = base64.b64encode(req["test"].encode("utf-8")).decode("ascii")
            os.execv(node, [node, f"--max-old-space-size={heap}", "-e", javascript("codec.js", "judge.js"),
                            str(j2c_w), str(c2j_r), str(vw), names[-1], tests])
        finally:
            os._exit(72)
    os.close(vw)
    os.close(j2c_w)
    os.close(c2j_r)
    status, data = wait_child(judge, time.monotonic() + timeout + 2.0, [vr], limit=4096)
    os.close(vr)
    strict = verdict_from(status, data[vr])
    cleanup(cfg, [cand, judge])
    out = dict(compat)
    out["strict_result"] = strict
    return out

